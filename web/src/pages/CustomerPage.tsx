import { EditOutlined, MessageOutlined } from "@ant-design/icons";
import { useQuery } from "@tanstack/react-query";
import { Button, Card, Descriptions, List, Space, Table, Tabs, Tag, Timeline, Typography } from "antd";
import { useNavigate, useParams } from "react-router-dom";

import { api, unwrap } from "../api/client";
import { useI18n } from "../i18n/I18n";
import type { MessageKey } from "../i18n/messages";
import { may } from "../shell/landing";
import { useMe } from "../shell/me";
import { ProblemAlert } from "../shell/Problem";
import { dateTime, money } from "./format";
import { OrderOverview } from "./OrderLookup";

export default function CustomerPage() {
  const { customerId = "" } = useParams();
  const { t } = useI18n();
  const me = useMe().data;
  const navigate = useNavigate();
  const path = { params: { path: { customer_id: customerId } } };
  const customer = useQuery({
    queryKey: ["customer", customerId],
    queryFn: () => unwrap(api.GET("/api/v1/customers/{customer_id}", path)),
  });
  if (customer.error) return <ProblemAlert error={customer.error} onReload={() => void customer.refetch()} />;
  const c = customer.data;
  const permissions = me?.permissions ?? [];
  const tabs = [
    { key: "follow-ups", label: t("customers.followUps"), children: <FollowUps customerId={customerId} /> },
    { key: "contacts", label: t("customers.contacts"), children: <Contacts customerId={customerId} /> },
    may(permissions, "opportunities.read") && {
      key: "opportunities",
      label: t("customers.opportunities"),
      children: <Opportunities customerId={customerId} />,
    },
    may(permissions, "contracts.read") && {
      key: "contracts",
      label: t("customers.contracts"),
      children: <Contracts customerId={customerId} />,
    },
    may(permissions, "orders.read") && {
      key: "orders",
      label: t("customers.orders"),
      children: <OrderOverview customerId={customerId} />,
    },
    may(permissions, "billing.read") && {
      key: "invoices",
      label: t("customers.invoices"),
      children: <Invoices customerId={customerId} />,
    },
  ].filter((tab) => tab !== false);

  return (
    <Space direction="vertical" size={16} style={{ width: "100%" }}>
      <Card loading={customer.isLoading} size="small">
        <Space style={{ justifyContent: "space-between", width: "100%" }} wrap>
          <Typography.Title level={1} style={{ fontSize: 20, margin: 0 }}>
            {c?.name} {c?.tier && <Tag>{c.tier}</Tag>}
          </Typography.Title>
          {may(permissions, "customers.write") && (
            <Space wrap>
              <Button
                type="primary"
                icon={<MessageOutlined />}
                onClick={() => navigate(`/customers/${customerId}/follow-up`)}
              >
                {t("followUp.log")}
              </Button>
              <Button icon={<EditOutlined />} onClick={() => navigate(`/customers/${customerId}/edit`)}>
                {t("customers.edit")}
              </Button>
            </Space>
          )}
        </Space>
        {c && (
          <Descriptions size="small" column={{ xs: 1, sm: 2, lg: 3 }} style={{ marginTop: 12 }}>
            <Descriptions.Item label={t("customers.taxId")}>{c.tax_id || "—"}</Descriptions.Item>
            <Descriptions.Item label={t("customers.industry")}>{c.industry || "—"}</Descriptions.Item>
            <Descriptions.Item label={t("customers.region")}>{c.region || "—"}</Descriptions.Item>
            <Descriptions.Item label={t("customers.lifecycle")}>{c.lifecycle_stage ? t(`lifecycle.${c.lifecycle_stage}`) : "—"}</Descriptions.Item>
            <Descriptions.Item label={t("customers.tag")}>
              {(c.tags ?? []).map((tag) => (
                <Tag key={tag}>{tag}</Tag>
              ))}
            </Descriptions.Item>
          </Descriptions>
        )}
      </Card>
      <Card size="small">
        <Tabs items={tabs} />
      </Card>
    </Space>
  );
}

function FollowUps({ customerId }: { customerId: string }) {
  const { t, language } = useI18n();
  const list = useQuery({
    queryKey: ["follow-ups", customerId],
    queryFn: () =>
      unwrap(api.GET("/api/v1/customers/{customer_id}/follow-ups", { params: { path: { customer_id: customerId } } })),
  });
  if (list.error) return <ProblemAlert error={list.error} onReload={() => void list.refetch()} />;
  const items = list.data?.items ?? [];
  if (!list.isLoading && items.length === 0) return <Typography.Text type="secondary">{t("common.empty")}</Typography.Text>;
  return (
    <Timeline
      items={items.map((f) => ({
        children: (
          <>
            <Typography.Text strong>{f.summary}</Typography.Text>
            <br />
            <Typography.Text type="secondary">
              {t(`followUp.kind.${f.kind}` as MessageKey)} · {f.author_name} · {dateTime(f.occurred_at, language)}
            </Typography.Text>
            {f.content && <div>{f.content}</div>}
          </>
        ),
      }))}
    />
  );
}

function Contacts({ customerId }: { customerId: string }) {
  const { t } = useI18n();
  const list = useQuery({
    queryKey: ["contacts", customerId],
    queryFn: () =>
      unwrap(api.GET("/api/v1/customers/{customer_id}/contacts", { params: { path: { customer_id: customerId } } })),
  });
  if (list.error) return <ProblemAlert error={list.error} onReload={() => void list.refetch()} />;
  return (
    <List
      loading={list.isLoading}
      dataSource={list.data?.items ?? []}
      locale={{ emptyText: t("common.empty") }}
      renderItem={(p) => (
        <List.Item>
          <List.Item.Meta
            title={
              <>
                {p.name} {p.is_key && <Tag color="blue">{t("contact.key")}</Tag>}
              </>
            }
            description={[p.title, ...(p.phones ?? [])]
              .filter(Boolean)
              .join(" · ")}
          />
        </List.Item>
      )}
    />
  );
}

function Opportunities({ customerId }: { customerId: string }) {
  const { t, language } = useI18n();
  const list = useQuery({
    queryKey: ["opportunities", "customer", customerId],
    queryFn: () => unwrap(api.GET("/api/v1/opportunities", { params: { query: { customer_id: customerId } } })),
  });
  if (list.error) return <ProblemAlert error={list.error} onReload={() => void list.refetch()} />;
  return (
    <Table
      rowKey="id"
      size="small"
      loading={list.isLoading}
      dataSource={list.data?.items ?? []}
      pagination={false}
      scroll={{ x: true }}
      columns={[
        { title: t("opportunity.name"), dataIndex: "name" },
        { title: t("opportunity.status"), dataIndex: "status", render: (s: string) => <Tag>{s}</Tag> },
        { title: t("opportunity.amount"), dataIndex: "amount", align: "right", render: (m) => money(m, language) },
        { title: t("opportunity.close"), dataIndex: "expected_close_date" },
      ]}
    />
  );
}

function Contracts({ customerId }: { customerId: string }) {
  const { t, language } = useI18n();
  const list = useQuery({
    queryKey: ["contracts", "customer", customerId],
    queryFn: () => unwrap(api.GET("/api/v1/contracts", { params: { query: { customer_id: customerId } } })),
  });
  if (list.error) return <ProblemAlert error={list.error} onReload={() => void list.refetch()} />;
  return (
    <Table
      rowKey="id"
      size="small"
      loading={list.isLoading}
      dataSource={list.data?.items ?? []}
      pagination={false}
      scroll={{ x: true }}
      columns={[
        { title: t("contract.number"), dataIndex: "contract_number" },
        { title: t("contract.title"), dataIndex: "title" },
        { title: t("contract.status"), dataIndex: "status", render: (s: string) => <Tag>{s}</Tag> },
        { title: t("orders.amount"), dataIndex: "amount", align: "right", render: (m) => money(m, language) },
      ]}
    />
  );
}

function Invoices({ customerId }: { customerId: string }) {
  const { t, language } = useI18n();
  const list = useQuery({
    queryKey: ["invoices", "customer", customerId],
    queryFn: () => unwrap(api.GET("/api/v1/invoices", { params: { query: { customer_id: customerId } } })),
  });
  if (list.error) return <ProblemAlert error={list.error} onReload={() => void list.refetch()} />;
  return (
    <Table
      rowKey="id"
      size="small"
      loading={list.isLoading}
      dataSource={list.data?.items ?? []}
      pagination={false}
      scroll={{ x: true }}
      columns={[
        { title: t("invoice.number"), dataIndex: "invoice_number" },
        { title: t("invoice.status"), dataIndex: "status", render: (s: string) => <Tag>{s}</Tag> },
        { title: t("invoice.amount"), dataIndex: "total", align: "right", render: (m) => money(m, language) },
      ]}
    />
  );
}
