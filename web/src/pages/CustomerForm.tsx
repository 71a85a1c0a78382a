import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Alert, Button, Card, Collapse, Form, Input, Radio, Select, Space, Typography, message } from "antd";
import { useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";

import { api, unwrap, type components } from "../api/client";
import { ApiProblem, classify, fieldErrors } from "../api/problem";
import { useI18n } from "../i18n/I18n";
import { ProblemAlert, useProblemText, useProblemToast } from "../shell/Problem";

type Fields = Pick<components["schemas"]["CustomerCreate"], "name" | "tax_id" | "industry" | "region" | "origin">;

// R-UX-01: only the name is required; the rest is optional, folded away, and defaulted by the
// server (owner and team: the person creating it).
export default function CustomerForm() {
  const { customerId } = useParams();
  const editing = !!customerId;
  const { t, language } = useI18n();
  const [form] = Form.useForm<Fields>();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const toast = useProblemToast();
  const text = useProblemText();
  const [duplicate, setDuplicate] = useState<ApiProblem | null>(null);
  const [stale, setStale] = useState<ApiProblem | null>(null);

  const existing = useQuery({
    queryKey: ["customer-for-edit", customerId],
    enabled: editing,
    gcTime: 0,
    queryFn: async () => {
      const { data, error, response } = await api.GET("/api/v1/customers/{customer_id}", {
        params: { path: { customer_id: customerId ?? "" } },
      });
      if (error || !data) throw new ApiProblem(response.status, error ?? {});
      return { customer: data, etag: response.headers.get("etag") ?? "" };
    },
  });
  useEffect(() => {
    if (existing.data) form.setFieldsValue(existing.data.customer);
  }, [existing.data, form]);
  const industries = useQuery({
    queryKey: ["industries"],
    staleTime: Infinity,
    queryFn: () => unwrap(api.GET("/api/v1/industries")),
  });

  const save = useMutation({
    mutationFn: async (values: Fields) => {
      const body = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined && v !== "")) as Fields;
      if (editing && existing.data) {
        return unwrap(
          api.PATCH("/api/v1/customers/{customer_id}", {
            params: { path: { customer_id: customerId ?? "" }, header: { "If-Match": existing.data.etag } },
            body,
          }),
        );
      }
      return unwrap(
        api.POST("/api/v1/customers", { body, headers: { "Idempotency-Key": crypto.randomUUID() } }),
      );
    },
    onSuccess: async (customer) => {
      void message.success(t("customers.saved"));
      await queryClient.invalidateQueries({ queryKey: ["customers"] });
      await queryClient.invalidateQueries({ queryKey: ["customer", customer.id] });
      navigate(`/customers/${customer.id}`);
    },
    onError: (error) => {
      if (!(error instanceof ApiProblem)) return toast(error);
      const kind = classify(error);
      if (kind === "fields") {
        form.setFields(fieldErrors(error) as Parameters<typeof form.setFields>[0]);
        if (error.reason === "DUPLICATE_TAX_ID") {
          // The existing customer is named only when the person may see it.
          const name = error.body.existing_customer_name;
          form.setFields([
            { name: "tax_id", errors: [name ? t("customers.duplicate", { name }) : t("customers.duplicateHidden")] },
          ]);
          setDuplicate(error);
        }
        return;
      }
      if (kind === "stale") return setStale(error);
      toast(error);
    },
  });

  if (existing.error) return <ProblemAlert error={existing.error} onReload={() => void existing.refetch()} />;
  return (
    <Card style={{ maxWidth: 640 }}>
      <Typography.Title level={1} style={{ fontSize: 20, marginTop: 0 }}>
        {editing ? t("customers.edit") : t("customers.new")}
      </Typography.Title>
      {stale && (
        <Alert
          type="warning"
          showIcon
          style={{ marginBottom: 16 }}
          message={text(stale)}
          action={
            <Button size="small" onClick={() => void existing.refetch().then(() => setStale(null))}>
              {t("common.reload")}
            </Button>
          }
        />
      )}
      {duplicate?.body.existing_customer_id && (
        <Alert
          type="warning"
          showIcon
          style={{ marginBottom: 16 }}
          message={
            <>
              {t("customers.duplicate", { name: duplicate.body.existing_customer_name ?? "" })}{" "}
              <Link
                to={`/customers/${duplicate.body.existing_customer_id}`}
                style={{ textDecoration: "underline" }}
              >
                {t("customers.openExisting")}
              </Link>
            </>
          }
        />
      )}
      <Form<Fields>
        form={form}
        layout="vertical"
        onFinish={(values) => save.mutate(values)}
        onValuesChange={(changed) => "tax_id" in changed && setDuplicate(null)}
        initialValues={{ origin: "domestic" }}
        disabled={editing && existing.isLoading}
      >
        <Form.Item name="name" label={t("customers.name")} rules={[{ required: true, whitespace: true, max: 200 }]}>
          <Input size="large" autoFocus />
        </Form.Item>
        <Form.Item name="tax_id" label={`${t("customers.taxId")} (${t("common.optional")})`}>
          <Input maxLength={18} autoCapitalize="characters" />
        </Form.Item>
        <Collapse
          ghost
          items={[
            {
              key: "more",
              label: t("common.more"),
              forceRender: true,
              children: (
                <>
                  <Form.Item name="industry" label={t("customers.industry")}>
                    <Select
                      allowClear
                      showSearch
                      optionFilterProp="label"
                      options={(industries.data?.items ?? []).map((i) => ({
                        value: i.code,
                        label: language === "en-US" ? i.name : i.name_zh || i.name,
                      }))}
                    />
                  </Form.Item>
                  <Form.Item name="region" label={t("customers.region")}>
                    <Input />
                  </Form.Item>
                  <Form.Item name="origin" label={t("customers.origin")}>
                    <Radio.Group
                      options={[
                        { value: "domestic", label: t("customers.domestic") },
                        { value: "foreign", label: t("customers.foreign") },
                      ]}
                    />
                  </Form.Item>
                </>
              ),
            },
          ]}
        />
        <Space>
          <Button type="primary" htmlType="submit" loading={save.isPending} size="large">
            {t("common.save")}
          </Button>
          <Button size="large" onClick={() => navigate(-1)}>
            {t("common.cancel")}
          </Button>
        </Space>
      </Form>
    </Card>
  );
}
