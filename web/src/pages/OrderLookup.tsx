import { useQuery } from "@tanstack/react-query";
import { Card, Space, Table, Tag, Typography } from "antd";
import { useState } from "react";
import { Link } from "react-router-dom";

import { api, unwrap, type components } from "../api/client";
import { useI18n } from "../i18n/I18n";
import { ProblemAlert } from "../shell/Problem";
import { CustomerSearch } from "./CustomerSearch";
import { money } from "./format";

type Entry = components["schemas"]["OverviewEntry"];

export function OrderOverview({ customerId }: { customerId: string }) {
  const { t, language } = useI18n();
  const overview = useQuery({
    queryKey: ["order-overview", customerId],
    queryFn: () =>
      unwrap(api.GET("/api/v1/customers/{customer_id}/order-overview", { params: { path: { customer_id: customerId } } })),
  });
  if (overview.error) return <ProblemAlert error={overview.error} onReload={() => void overview.refetch()} />;
  return (
    <Table<Entry>
      rowKey={(e) => e.order.id}
      size="small"
      loading={overview.isLoading}
      dataSource={overview.data?.orders ?? []}
      pagination={false}
      scroll={{ x: true }}
      locale={{ emptyText: t("common.empty") }}
      columns={[
        { title: t("orders.number"), render: (_, e) => e.order.order_number },
        { title: t("orders.status"), render: (_, e) => <Tag>{e.order.status}</Tag> },
        { title: t("orders.amount"), align: "right", render: (_, e) => money(e.order.amount, language) },
        { title: t("orders.sap"), render: (_, e) => e.order.sap_sales_order ?? "—" },
        { title: t("contract.number"), render: (_, e) => e.order.contract_number },
      ]}
    />
  );
}

export default function OrderLookup() {
  const { t } = useI18n();
  const [customerId, setCustomerId] = useState<string | null>(null);
  return (
    <Space direction="vertical" size={16} style={{ width: "100%" }}>
      <Typography.Title level={1} style={{ fontSize: 22, margin: 0 }}>
        {t("menu.orderLookup")}
      </Typography.Title>
      <Card size="small" title={<label htmlFor="order-lookup-customer">{t("orders.lookup")}</label>}>
        <CustomerSearch id="order-lookup-customer" onPick={setCustomerId} />
      </Card>
      {customerId && (
        <Card size="small" extra={<Link to={`/customers/${customerId}`}>{t("customers.title")}</Link>}>
          <OrderOverview customerId={customerId} />
        </Card>
      )}
    </Space>
  );
}
