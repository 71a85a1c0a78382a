import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Button, Card, Form, Input, Radio, Typography, message } from "antd";
import { useNavigate, useParams } from "react-router-dom";

import { api, unwrap, type components } from "../api/client";
import { ApiProblem, classify, fieldErrors } from "../api/problem";
import { useI18n } from "../i18n/I18n";
import type { MessageKey } from "../i18n/messages";
import { ProblemAlert, useProblemToast } from "../shell/Problem";

type Fields = Pick<components["schemas"]["FollowUpCreate"], "kind" | "summary">;
const KINDS = ["call", "visit", "wechat", "meeting", "email", "other"] as const;

// Phone first: big targets, the kind as buttons, one text box; the time defaults to now.
export default function FollowUpForm() {
  const { customerId = "" } = useParams();
  const { t } = useI18n();
  const [form] = Form.useForm<Fields>();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const toast = useProblemToast();
  const customer = useQuery({
    queryKey: ["customer", customerId],
    queryFn: () => unwrap(api.GET("/api/v1/customers/{customer_id}", { params: { path: { customer_id: customerId } } })),
  });
  const save = useMutation({
    mutationFn: (body: Fields) =>
      unwrap(
        api.POST("/api/v1/customers/{customer_id}/follow-ups", {
          params: { path: { customer_id: customerId } },
          body: { ...body, summary: body.summary.trim() },
          headers: { "Idempotency-Key": crypto.randomUUID() },
        }),
      ),
    onSuccess: async () => {
      void message.success(t("followUp.saved"));
      await queryClient.invalidateQueries({ queryKey: ["follow-ups", customerId] });
      navigate(`/customers/${customerId}`);
    },
    onError: (error) =>
      error instanceof ApiProblem && classify(error) === "fields" ? form.setFields(fieldErrors(error) as Parameters<typeof form.setFields>[0]) : toast(error),
  });
  if (customer.error) return <ProblemAlert error={customer.error} />;
  return (
    <Card style={{ maxWidth: 560 }}>
      <Typography.Title level={1} style={{ fontSize: 20, marginTop: 0 }}>
        {t("followUp.log")} · {customer.data?.name}
      </Typography.Title>
      <Form<Fields> form={form} layout="vertical" initialValues={{ kind: "call" }} onFinish={(v) => save.mutate(v)}>
        <Form.Item name="kind" label={t("followUp.kind")}>
          <Radio.Group
            optionType="button"
            buttonStyle="solid"
            size="large"
            options={KINDS.map((kind) => ({ value: kind, label: t(`followUp.kind.${kind}` as MessageKey) }))}
          />
        </Form.Item>
        <Form.Item name="summary" label={t("followUp.summary")} rules={[{ required: true, whitespace: true, max: 500 }]}>
          <Input.TextArea autoSize={{ minRows: 4, maxRows: 10 }} />
        </Form.Item>
        <Button type="primary" htmlType="submit" size="large" block loading={save.isPending}>
          {t("common.save")}
        </Button>
      </Form>
    </Card>
  );
}
