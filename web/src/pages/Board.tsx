import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Button, Card, Empty, Form, Input, Modal, Select, Space, Typography, message } from "antd";
import { useState, type DragEvent } from "react";
import { Link } from "react-router-dom";

import { api, unwrap, type components } from "../api/client";
import { useI18n } from "../i18n/I18n";
import { ProblemAlert, useProblemToast } from "../shell/Problem";
import { money } from "./format";

type Opportunity = components["schemas"]["Opportunity"];
type Stage = components["schemas"]["Stage"];

const ifMatch = (o: Opportunity) => ({ "If-Match": `"v${o.version}"` });

// Open opportunities of the default pipeline by stage. Drag a card to another column, or use its
// stage menu (keyboard and phone); won and lost close it, lost with a reason from the list.
export default function Board() {
  const { t, language } = useI18n();
  const queryClient = useQueryClient();
  const toast = useProblemToast();
  const [losing, setLosing] = useState<Opportunity | null>(null);
  const [form] = Form.useForm<{ reason: string; note?: string }>();
  const pipelines = useQuery({ queryKey: ["pipelines"], queryFn: () => unwrap(api.GET("/api/v1/pipelines")) });
  const pipeline = pipelines.data?.items.find((p) => p.is_default) ?? pipelines.data?.items[0];
  const open = useQuery({
    queryKey: ["opportunities", "board", pipeline?.id],
    enabled: !!pipeline,
    queryFn: () =>
      unwrap(
        api.GET("/api/v1/opportunities", {
          params: { query: { pipeline_id: pipeline?.id, status: "open", limit: 200 } },
        }),
      ),
  });
  const reasons = useQuery({
    queryKey: ["lost-reasons"],
    enabled: !!losing,
    staleTime: Infinity,
    queryFn: () => unwrap(api.GET("/api/v1/lost-reasons")),
  });
  const settle = () => queryClient.invalidateQueries({ queryKey: ["opportunities"] });
  const move = useMutation({
    mutationFn: ({ o, stage }: { o: Opportunity; stage: string }) =>
      unwrap(
        api.POST("/api/v1/opportunities/{opportunity_id}/stage", {
          params: { path: { opportunity_id: o.id }, header: ifMatch(o) },
          body: { stage_id: stage },
        }),
      ),
    onError: toast,
    onSettled: settle,
  });
  const won = useMutation({
    mutationFn: (o: Opportunity) =>
      unwrap(
        api.POST("/api/v1/opportunities/{opportunity_id}/won", {
          params: { path: { opportunity_id: o.id }, header: ifMatch(o) },
        }),
      ),
    onSuccess: () => void message.success(t("board.won")),
    onError: toast,
    onSettled: settle,
  });
  const lost = useMutation({
    mutationFn: ({ o, reason, note }: { o: Opportunity; reason: string; note?: string }) =>
      unwrap(
        api.POST("/api/v1/opportunities/{opportunity_id}/lost", {
          params: { path: { opportunity_id: o.id }, header: ifMatch(o) },
          body: { reason, note: note ?? "" },
        }),
      ),
    onSuccess: () => {
      setLosing(null);
      form.resetFields();
    },
    onError: toast,
    onSettled: settle,
  });

  if (pipelines.error) return <ProblemAlert error={pipelines.error} onReload={() => void pipelines.refetch()} />;
  const stages = (pipeline?.stages ?? []).filter((s) => !s.is_won && !s.is_lost).sort((a, b) => a.order - b.order);
  const items = open.data?.items ?? [];
  const drop = (stage: Stage) => (event: DragEvent) => {
    event.preventDefault();
    const o = items.find((i) => i.id === event.dataTransfer.getData("text/plain"));
    if (o && o.stage_id !== stage.id) move.mutate({ o, stage: stage.id });
  };

  return (
    <>
      <Typography.Title level={1} style={{ fontSize: 22 }}>
        {t("menu.board")}
      </Typography.Title>
      {open.error && <ProblemAlert error={open.error} onReload={() => void open.refetch()} />}
      <div style={{ display: "flex", gap: 12, overflowX: "auto", paddingBottom: 8 }}>
        {stages.map((stage) => {
          const here = items.filter((o) => o.stage_id === stage.id);
          return (
            <section
              key={stage.id}
              aria-label={stage.name}
              onDragOver={(e) => e.preventDefault()}
              onDrop={drop(stage)}
              style={{ flex: "0 0 260px", background: "#f0f2f5", borderRadius: 8, padding: 8 }}
            >
              <h2 style={{ fontSize: 14, margin: "4px 4px 8px" }}>
                {stage.name} · {here.length}
              </h2>
              {here.length === 0 && <Empty image={Empty.PRESENTED_IMAGE_SIMPLE} description={t("common.empty")} />}
              {here.map((o) => (
                <Card
                  key={o.id}
                  size="small"
                  draggable
                  onDragStart={(e) => e.dataTransfer.setData("text/plain", o.id)}
                  style={{ marginBottom: 8, cursor: "grab" }}
                  title={<Link to={`/customers/${o.customer_id}`}>{o.name}</Link>}
                >
                  <div style={{ marginBottom: 8 }}>{money(o.amount, language)}</div>
                  <Space wrap size={4}>
                    <Select
                      size="small"
                      value={o.stage_id}
                      aria-label={t("dashboard.stage")}
                      style={{ width: 130 }}
                      options={stages.map((s) => ({ value: s.id, label: s.name }))}
                      onChange={(stageId) => move.mutate({ o, stage: stageId })}
                    />
                    <Button size="small" onClick={() => won.mutate(o)}>
                      {t("board.markWon")}
                    </Button>
                    <Button size="small" danger onClick={() => setLosing(o)}>
                      {t("board.markLost")}
                    </Button>
                  </Space>
                </Card>
              ))}
            </section>
          );
        })}
      </div>
      <Modal
        open={!!losing}
        title={`${t("board.markLost")} · ${losing?.name ?? ""}`}
        okText={t("board.markLost")}
        okButtonProps={{ danger: true, loading: lost.isPending }}
        cancelText={t("common.cancel")}
        onCancel={() => setLosing(null)}
        onOk={() => form.submit()}
        forceRender
      >
        <Form form={form} layout="vertical" onFinish={(v) => losing && lost.mutate({ o: losing, ...v })}>
          <Form.Item name="reason" label={t("board.lostReason")} rules={[{ required: true }]}>
            <Select options={(reasons.data?.items ?? []).map((r) => ({ value: r.code, label: r.name }))} />
          </Form.Item>
          <Form.Item name="note" label={`${t("board.note")} (${t("common.optional")})`}>
            <Input.TextArea autoSize={{ minRows: 2 }} />
          </Form.Item>
        </Form>
      </Modal>
    </>
  );
}
