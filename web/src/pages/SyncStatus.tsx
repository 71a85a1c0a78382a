import { useQuery } from "@tanstack/react-query";
import { Card, Col, Row, Statistic, Table, Tag, Typography } from "antd";

import { api, unwrap, type components } from "../api/client";
import { useI18n } from "../i18n/I18n";
import { ProblemAlert } from "../shell/Problem";
import { dateTime } from "./format";

type SyncRecord = components["schemas"]["SyncRecord"];

export default function SyncStatus() {
  const { t, language } = useI18n();
  const stats = useQuery({ queryKey: ["sap-stats"], queryFn: () => unwrap(api.GET("/api/v1/integrations/sap/stats")) });
  const records = useQuery({
    queryKey: ["sap-records"],
    queryFn: () => unwrap(api.GET("/api/v1/integrations/sap/records", { params: { query: { limit: 50 } } })),
  });
  return (
    <>
      <Typography.Title level={1} style={{ fontSize: 22 }}>
        {t("menu.sync")}
      </Typography.Title>
      {stats.error ? (
        <ProblemAlert error={stats.error} onReload={() => void stats.refetch()} />
      ) : (
        <Row gutter={[12, 12]} style={{ marginBottom: 16 }}>
          {(
            [
              ["synced_records", "synced"],
              ["pending_changes", "pending"],
              ["retrying_records", "retrying"],
              ["parked_changes", "parked"],
            ] as const
          ).map(([field, label]) => (
            <Col xs={12} md={6} key={field}>
              <Card size="small" loading={stats.isLoading}>
                <Statistic title={label} value={stats.data?.[field] ?? 0} />
              </Card>
            </Col>
          ))}
        </Row>
      )}
      <Card title={<h2 style={{ fontSize: 16, margin: 0 }}>{t("sync.records")}</h2>} size="small">
        {records.error ? (
          <ProblemAlert error={records.error} onReload={() => void records.refetch()} />
        ) : (
          <Table<SyncRecord>
            rowKey={(r) => `${r.kind}-${r.crm_id}`}
            size="small"
            loading={records.isLoading}
            dataSource={records.data?.items ?? []}
            scroll={{ x: true }}
            pagination={false}
            columns={[
              { title: "kind", dataIndex: "kind" },
              { title: "SAP", dataIndex: "sap_number", render: (v: string | null) => v ?? "—" },
              {
                title: t("sync.state"),
                dataIndex: "state",
                render: (s: string) => <Tag color={s === "parked" ? "red" : s === "synced" ? "green" : "gold"}>{s}</Tag>,
              },
              { title: t("sync.error"), dataIndex: "last_error", ellipsis: true },
              { title: "updated", dataIndex: "updated_at", render: (v: string | null) => dateTime(v, language) },
            ]}
          />
        )}
      </Card>
    </>
  );
}
