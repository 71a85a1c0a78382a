import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Button, Card, Empty, Form, Input, List, Modal, Space, Tag, Typography, message } from "antd";
import { useState } from "react";
import { Link } from "react-router-dom";

import { api, unwrap, type components } from "../api/client";
import { useI18n } from "../i18n/I18n";
import { ProblemAlert, useProblemToast } from "../shell/Problem";
import { dateTime, money } from "./format";

type Step = components["schemas"]["ApprovalStep"];
type Decision = "approve" | "reject" | "return";

// Designed for the phone: one card per contract, three large buttons; reject and return ask why.
export default function Approvals() {
  const { t, language } = useI18n();
  const queryClient = useQueryClient();
  const toast = useProblemToast();
  const [asking, setAsking] = useState<{ step: Step; decision: Exclude<Decision, "approve"> } | null>(null);
  const [form] = Form.useForm<{ reason: string }>();
  const inbox = useQuery({ queryKey: ["approvals"], queryFn: () => unwrap(api.GET("/api/v1/approvals")) });

  const decide = useMutation({
    mutationFn: ({ step, decision, reason }: { step: Step; decision: Decision; reason?: string }) => {
      const options = {
        params: { path: { step_id: step.id } },
        body: reason ? { reason } : null,
        headers: { "Idempotency-Key": crypto.randomUUID() },
      };
      if (decision === "approve") return unwrap(api.POST("/api/v1/approvals/{step_id}/approve", options));
      if (decision === "reject") return unwrap(api.POST("/api/v1/approvals/{step_id}/reject", options));
      return unwrap(api.POST("/api/v1/approvals/{step_id}/return", options));
    },
    onSuccess: () => {
      void message.success(t("approvals.done"));
      setAsking(null);
      form.resetFields();
    },
    onError: toast,
    // Decided elsewhere meanwhile (409) or done here: either way the inbox is read again.
    onSettled: () => queryClient.invalidateQueries({ queryKey: ["approvals"] }),
  });

  const pending = (inbox.data?.items ?? []).filter((s) => s.state === "pending");
  return (
    <>
      <Typography.Title level={1} style={{ fontSize: 22 }}>
        {t("approvals.title")}
      </Typography.Title>
      {inbox.error ? (
        <ProblemAlert error={inbox.error} onReload={() => void inbox.refetch()} />
      ) : (
        <List
          loading={inbox.isLoading}
          dataSource={pending}
          locale={{ emptyText: <Empty description={t("approvals.none")} /> }}
          renderItem={(step) => (
            <List.Item style={{ display: "block", border: 0, padding: "0 0 12px" }}>
              <Card
                size="small"
                title={
                  <Space wrap>
                    <span>{step.contract_number ?? step.contract_id.slice(0, 8)}</span>
                    <Tag>{step.name}</Tag>
                  </Space>
                }
                extra={<strong>{money(step.amount, language)}</strong>}
              >
                <Typography.Paragraph type="secondary" style={{ marginBottom: 12 }}>
                  {step.customer_id && (
                    <Link to={`/customers/${step.customer_id}`} style={{ textDecoration: "underline" }}>
                      {t("customers.title")}
                    </Link>
                  )}
                  {step.due_at && ` · ${t("approvals.due")} ${dateTime(step.due_at, language)}`}
                </Typography.Paragraph>
                <Space wrap style={{ width: "100%" }}>
                  <Button
                    type="primary"
                    size="large"
                    loading={decide.isPending && decide.variables?.step.id === step.id}
                    onClick={() => decide.mutate({ step, decision: "approve" })}
                  >
                    {t("approvals.approve")}
                  </Button>
                  <Button size="large" onClick={() => setAsking({ step, decision: "return" })}>
                    {t("approvals.return")}
                  </Button>
                  <Button size="large" danger onClick={() => setAsking({ step, decision: "reject" })}>
                    {t("approvals.reject")}
                  </Button>
                </Space>
              </Card>
            </List.Item>
          )}
        />
      )}
      <Modal
        open={!!asking}
        title={asking ? t(asking.decision === "reject" ? "approvals.reject" : "approvals.return") : ""}
        okText={asking ? t(asking.decision === "reject" ? "approvals.reject" : "approvals.return") : ""}
        okButtonProps={{ danger: asking?.decision === "reject", loading: decide.isPending }}
        cancelText={t("common.cancel")}
        onCancel={() => setAsking(null)}
        onOk={() => form.submit()}
        destroyOnClose
      >
        <Form
          form={form}
          layout="vertical"
          onFinish={({ reason }) => asking && decide.mutate({ ...asking, reason: reason.trim() })}
        >
          <Form.Item
            name="reason"
            label={t("approvals.reason")}
            rules={[{ required: true, whitespace: true, message: t("approvals.reasonRequired") }]}
          >
            <Input.TextArea autoSize={{ minRows: 3 }} autoFocus />
          </Form.Item>
        </Form>
      </Modal>
    </>
  );
}
