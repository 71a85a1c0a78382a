import { useQuery } from "@tanstack/react-query";
import { Alert, Card, Grid, List, Progress, Table, Typography } from "antd";

import { api, unwrap, type components } from "../api/client";
import { useI18n } from "../i18n/I18n";
import { ProblemAlert } from "../shell/Problem";
import { money } from "./format";

type Stage = components["schemas"]["FunnelStage"];

// Until the insights dashboard page is built (issue 17), the funnel is what exists.
export default function Dashboard() {
  const { t, language } = useI18n();
  const funnel = useQuery({ queryKey: ["funnel"], queryFn: () => unwrap(api.GET("/api/v1/reports/funnel")) });
  const stages = funnel.data?.stages ?? [];
  const widest = Math.max(1, ...stages.map((s) => s.reached));
  const phone = Grid.useBreakpoint().md === false;
  const bar = (reached: number) => (
    <Progress
      percent={Math.round((reached / widest) * 100)}
      format={() => reached}
      size="small"
      style={{ minWidth: 120 }}
      aria-label={`${t("dashboard.reached")} ${reached}`}
    />
  );
  return (
    <>
      <Typography.Title level={1} style={{ fontSize: 22 }}>
        {t("menu.dashboard")}
      </Typography.Title>
      <Alert type="info" showIcon message={t("dashboard.placeholder")} style={{ marginBottom: 16 }} />
      <Card title={<h2 style={{ fontSize: 16, margin: 0 }}>{t("dashboard.funnel")}</h2>}>
        {funnel.error ? (
          <ProblemAlert error={funnel.error} onReload={() => void funnel.refetch()} />
        ) : phone ? (
          <List
            loading={funnel.isLoading}
            dataSource={stages}
            renderItem={(s) => (
              <List.Item style={{ display: "block" }}>
                <div style={{ display: "flex", justifyContent: "space-between" }}>
                  <strong>{s.name}</strong>
                  <span>
                    {s.count} · {money(s.amount, language)}
                  </span>
                </div>
                {bar(s.reached)}
              </List.Item>
            )}
          />
        ) : (
          <Table<Stage>
            rowKey="stage_id"
            size="small"
            loading={funnel.isLoading}
            pagination={false}
            dataSource={stages}
            scroll={{ x: true }}
            columns={[
              { title: t("dashboard.stage"), dataIndex: "name" },
              {
                title: t("dashboard.reached"),
                dataIndex: "reached",
                render: bar,
              },
              { title: t("dashboard.count"), dataIndex: "count", align: "right" },
              { title: t("dashboard.amount"), dataIndex: "amount", align: "right", render: (m) => money(m, language) },
              {
                title: t("dashboard.conversion"),
                dataIndex: "conversion_to_next",
                align: "right",
                render: (v: string | null) => (v === null ? "—" : `${v}%`),
              },
            ]}
          />
        )}
      </Card>
    </>
  );
}
