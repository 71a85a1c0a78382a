import { useQuery } from "@tanstack/react-query";
import { Card, Space, Table, Typography } from "antd";
import { Link } from "react-router-dom";

import { api, unwrap, type components } from "../api/client";
import { useI18n } from "../i18n/I18n";
import { ProblemAlert } from "../shell/Problem";
import { money } from "./format";

type AgingRow = components["schemas"]["AgingRow"];
type Awaiting = components["schemas"]["AwaitingContract"];

export default function Receivables() {
  const { t, language } = useI18n();
  const aging = useQuery({ queryKey: ["aging"], queryFn: () => unwrap(api.GET("/api/v1/reports/aging")) });
  const awaiting = useQuery({
    queryKey: ["awaiting-payment"],
    queryFn: () => unwrap(api.GET("/api/v1/reports/awaiting-payment")),
  });
  const m = (v: components["schemas"]["Money"]) => money(v, language);
  return (
    <Space direction="vertical" size={16} style={{ width: "100%" }}>
      <Typography.Title level={1} style={{ fontSize: 22, margin: 0 }}>
        {t("menu.receivables")}
      </Typography.Title>
      <Card title={<h2 style={{ fontSize: 16, margin: 0 }}>{t("receivables.aging")}</h2>} size="small">
        {aging.error ? (
          <ProblemAlert error={aging.error} onReload={() => void aging.refetch()} />
        ) : (
          <Table<AgingRow>
            rowKey={(r) => `${r.key}-${r.currency}`}
            size="small"
            loading={aging.isLoading}
            dataSource={aging.data?.rows ?? []}
            pagination={{ pageSize: 20, hideOnSinglePage: true }}
            scroll={{ x: true }}
            columns={[
              {
                title: t("receivables.customer"),
                dataIndex: "label",
                render: (label: string, r) => <Link to={`/customers/${r.key}`}>{label || r.key}</Link>,
              },
              { title: t("receivables.current"), dataIndex: "current", align: "right", render: m },
              { title: "0–30", dataIndex: "days_0_30", align: "right", render: m },
              { title: "31–60", dataIndex: "days_31_60", align: "right", render: m },
              { title: "61–90", dataIndex: "days_61_90", align: "right", render: m },
              { title: "90+", dataIndex: "days_over_90", align: "right", render: m },
              { title: t("receivables.total"), dataIndex: "total", align: "right", render: m },
            ]}
          />
        )}
      </Card>
      <Card title={<h2 style={{ fontSize: 16, margin: 0 }}>{t("receivables.awaiting")}</h2>} size="small">
        {awaiting.error ? (
          <ProblemAlert error={awaiting.error} onReload={() => void awaiting.refetch()} />
        ) : (
          <Table<Awaiting>
            rowKey="contract_id"
            size="small"
            loading={awaiting.isLoading}
            dataSource={awaiting.data?.items ?? []}
            pagination={{ pageSize: 20, hideOnSinglePage: true }}
            scroll={{ x: true }}
            columns={[
              { title: t("contract.number"), dataIndex: "contract_number" },
              {
                title: t("receivables.customer"),
                dataIndex: "customer_name",
                render: (name: string, r) => <Link to={`/customers/${r.customer_id}`}>{name}</Link>,
              },
              { title: t("receivables.total"), dataIndex: "outstanding", align: "right", render: m },
              { title: t("receivables.overdue"), dataIndex: "overdue", align: "right", render: m },
              { title: t("approvals.due"), dataIndex: "next_due_date" },
            ]}
          />
        )}
      </Card>
    </Space>
  );
}
