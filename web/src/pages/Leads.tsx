import { PhoneOutlined } from "@ant-design/icons";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Button, Card, Form, Input, InputNumber, List, Modal, Segmented, Space, Tag, Typography, message } from "antd";
import { useState } from "react";
import { useNavigate } from "react-router-dom";

import { api, unwrap, type components } from "../api/client";
import { ApiProblem, classify, fieldErrors } from "../api/problem";
import { useI18n } from "../i18n/I18n";
import type { MessageKey } from "../i18n/messages";
import { ProblemAlert, useProblemToast } from "../shell/Problem";

type Lead = components["schemas"]["Lead"];
type Status = "new" | "working" | "qualified" | "unqualified" | "converted";
interface Conversion {
  customer_name: string;
  tax_id?: string;
  opportunity_name: string;
  amount?: number;
}
const STATUSES: Status[] = ["new", "working", "qualified", "unqualified", "converted"];

// The leads inbox: one card per lead, phone first; converting makes customer + contact +
// opportunity in one step (POST /leads/{id}/convert) and opens the new customer.
export default function Leads() {
  const { t } = useI18n();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const toast = useProblemToast();
  const [status, setStatus] = useState<Status>("new");
  const [cursors, setCursors] = useState<string[]>([""]);
  const [converting, setConverting] = useState<Lead | null>(null);
  const [form] = Form.useForm<Conversion>();
  const cursor = cursors[cursors.length - 1] ?? "";
  const page = useQuery({
    queryKey: ["leads", status, cursor],
    placeholderData: keepPreviousData,
    queryFn: () => unwrap(api.GET("/api/v1/leads", { params: { query: { status, cursor, limit: 20 } } })),
  });

  const changeStatus = useMutation({
    mutationFn: ({ lead, to }: { lead: Lead; to: Exclude<Status, "converted"> }) =>
      unwrap(api.POST("/api/v1/leads/{lead_id}/status", { params: { path: { lead_id: lead.id } }, body: { status: to } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["leads"] }),
    onError: toast,
  });
  const convert = useMutation({
    mutationFn: ({ lead, values }: { lead: Lead; values: Conversion }) =>
      unwrap(
        api.POST("/api/v1/leads/{lead_id}/convert", {
          params: { path: { lead_id: lead.id } },
          headers: { "Idempotency-Key": crypto.randomUUID() },
          body: {
            customer_name: values.customer_name.trim(),
            ...(values.tax_id ? { tax_id: values.tax_id.trim() } : {}),
            opportunity: {
              name: values.opportunity_name.trim(),
              ...(values.amount ? { amount: { amount: String(values.amount), currency: "CNY" } } : {}),
            },
          },
        }),
      ),
    onSuccess: async (done) => {
      void message.success(t("leads.converted"));
      setConverting(null);
      await queryClient.invalidateQueries({ queryKey: ["leads"] });
      navigate(`/customers/${done.customer.id}`);
    },
    onError: (error) =>
      error instanceof ApiProblem && classify(error) === "fields"
        ? form.setFields(
            fieldErrors(error).map((f) => ({
              ...f,
              name: f.name[0] === "opportunity" ? ["opportunity_name"] : f.name,
            })) as Parameters<typeof form.setFields>[0],
          )
        : toast(error),
  });

  const open = (lead: Lead) => {
    form.setFieldsValue({
      customer_name: lead.company || lead.name,
      tax_id: "",
      opportunity_name: `${lead.company || lead.name} ${t("leads.opportunitySuffix")}`,
      amount: undefined,
    });
    setConverting(lead);
  };

  return (
    <Space direction="vertical" size={16} style={{ width: "100%" }}>
      <Typography.Title level={1} style={{ fontSize: 22, margin: 0 }}>
        {t("leads.title")}
      </Typography.Title>
      <Segmented
        value={status}
        onChange={(value) => {
          setStatus(value as Status);
          setCursors([""]);
        }}
        options={STATUSES.map((s) => ({ value: s, label: t(`leads.status.${s}` as MessageKey) }))}
        style={{ maxWidth: "100%", overflowX: "auto" }}
      />
      {page.error ? (
        <ProblemAlert error={page.error} onReload={() => void page.refetch()} />
      ) : (
        <List
          loading={page.isFetching}
          dataSource={page.data?.items ?? []}
          locale={{ emptyText: t("common.empty") }}
          grid={{ gutter: 12, xs: 1, md: 2, xl: 3 }}
          renderItem={(lead) => (
            <List.Item>
              <Card
                size="small"
                title={lead.name}
                extra={<Tag>{t(`leads.status.${lead.status}` as MessageKey)}</Tag>}
              >
                <Typography.Paragraph style={{ marginBottom: 8 }}>
                  {[lead.company, lead.title, lead.region].filter(Boolean).join(" · ")}
                  <br />
                  {[lead.source, lead.campaign].filter(Boolean).join(" / ")}
                </Typography.Paragraph>
                <Space wrap>
                  {lead.phone && (
                    <Button icon={<PhoneOutlined />} href={`tel:${lead.phone}`}>
                      {lead.phone}
                    </Button>
                  )}
                  {lead.status !== "converted" && (
                    <Button type="primary" onClick={() => open(lead)}>
                      {t("leads.convert")}
                    </Button>
                  )}
                  {lead.status === "new" && (
                    <Button onClick={() => changeStatus.mutate({ lead, to: "working" })}>
                      {t("leads.startWorking")}
                    </Button>
                  )}
                  {(lead.status === "new" || lead.status === "working") && (
                    <Button danger onClick={() => changeStatus.mutate({ lead, to: "unqualified" })}>
                      {t("leads.status.unqualified")}
                    </Button>
                  )}
                  {lead.customer_id && (
                    <Button type="link" onClick={() => navigate(`/customers/${lead.customer_id}`)}>
                      {t("customers.title")}
                    </Button>
                  )}
                </Space>
              </Card>
            </List.Item>
          )}
        />
      )}
      <Space>
        <Button disabled={cursors.length <= 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
          {t("common.previous")}
        </Button>
        <Button
          disabled={!page.data?.next_cursor}
          onClick={() => page.data?.next_cursor && setCursors((c) => [...c, page.data.next_cursor as string])}
        >
          {t("common.next")}
        </Button>
      </Space>
      <Modal
        open={!!converting}
        title={`${t("leads.convert")} · ${converting?.name ?? ""}`}
        okText={t("leads.convert")}
        cancelText={t("common.cancel")}
        okButtonProps={{ loading: convert.isPending }}
        onCancel={() => setConverting(null)}
        onOk={() => form.submit()}
        forceRender
      >
        <Form<Conversion>
          form={form}
          layout="vertical"
          onFinish={(values) => converting && convert.mutate({ lead: converting, values })}
        >
          <Form.Item name="customer_name" label={t("customers.name")} rules={[{ required: true, whitespace: true }]}>
            <Input />
          </Form.Item>
          <Form.Item name="tax_id" label={`${t("customers.taxId")} (${t("common.optional")})`}>
            <Input maxLength={18} />
          </Form.Item>
          <Form.Item name="opportunity_name" label={t("opportunity.name")} rules={[{ required: true, whitespace: true }]}>
            <Input />
          </Form.Item>
          <Form.Item name="amount" label={`${t("opportunity.amount")} (CNY, ${t("common.optional")})`}>
            <InputNumber min={0} style={{ width: "100%" }} />
          </Form.Item>
        </Form>
      </Modal>
    </Space>
  );
}
