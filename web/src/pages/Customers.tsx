import { PlusOutlined } from "@ant-design/icons";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { Button, Card, Form, Input, Select, Space, Table, Tag, Typography } from "antd";
import { useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router-dom";

import { api, unwrap, type components } from "../api/client";
import { useI18n } from "../i18n/I18n";
import { may } from "../shell/landing";
import { useMe } from "../shell/me";
import { ProblemAlert } from "../shell/Problem";

type Customer = components["schemas"]["Customer"];
interface Filters {
  name?: string;
  tag?: string;
  industry?: string;
}
const PAGE = 20;

// Filters live in the address (a link shares the view); pages are keyset cursors, so the list
// stays fast however many customers there are.
export default function Customers() {
  const { t, language } = useI18n();
  const me = useMe().data;
  const navigate = useNavigate();
  const [params, setParams] = useSearchParams();
  const filters: Filters = {
    name: params.get("name") ?? "",
    tag: params.get("tag") ?? "",
    industry: params.get("industry") ?? "",
  };
  const [cursors, setCursors] = useState<string[]>([""]);
  const cursor = cursors[cursors.length - 1] ?? "";
  const industries = useQuery({
    queryKey: ["industries"],
    staleTime: Infinity,
    queryFn: () => unwrap(api.GET("/api/v1/industries")),
  });
  const page = useQuery({
    queryKey: ["customers", filters, cursor],
    placeholderData: keepPreviousData,
    queryFn: () =>
      unwrap(api.GET("/api/v1/customers", { params: { query: { ...filters, cursor, limit: PAGE, sort: "-update_time" } } })),
  });

  const search = (values: Filters) => {
    const next = new URLSearchParams();
    for (const [key, value] of Object.entries(values)) if (value) next.set(key, String(value).trim());
    setCursors([""]);
    setParams(next);
  };

  return (
    <Space direction="vertical" size={16} style={{ width: "100%" }}>
      <Space style={{ justifyContent: "space-between", width: "100%" }} wrap>
        <Typography.Title level={1} style={{ fontSize: 22, margin: 0 }}>
          {t("customers.title")}
        </Typography.Title>
        {me && may(me.permissions, "customers.write") && (
          <Button type="primary" icon={<PlusOutlined />} onClick={() => navigate("/customers/new")}>
            {t("customers.new")}
          </Button>
        )}
      </Space>
      <Card size="small">
        <Form<Filters> layout="inline" initialValues={filters} onFinish={search} style={{ rowGap: 8 }}>
          <Form.Item name="name" label={t("customers.name")}>
            <Input allowClear inputMode="search" style={{ width: 200 }} />
          </Form.Item>
          <Form.Item name="industry" label={t("customers.industry")}>
            <Select
              allowClear
              style={{ width: 160 }}
              options={(industries.data?.items ?? []).map((i) => ({
                value: i.code,
                label: language === "en-US" ? i.name : i.name_zh || i.name,
              }))}
            />
          </Form.Item>
          <Form.Item name="tag" label={t("customers.tag")}>
            <Input allowClear style={{ width: 140 }} />
          </Form.Item>
          <Button type="primary" htmlType="submit">
            {t("common.search")}
          </Button>
        </Form>
      </Card>
      {page.error ? (
        <ProblemAlert error={page.error} onReload={() => void page.refetch()} />
      ) : (
        <Table<Customer>
          rowKey="id"
          size="middle"
          loading={page.isFetching}
          dataSource={page.data?.items ?? []}
          pagination={false}
          locale={{ emptyText: t("common.empty") }}
          columns={[
            {
              title: t("customers.name"),
              dataIndex: "name",
              render: (name: string, c) => <Link to={`/customers/${c.id}`}>{name}</Link>,
            },
            { title: t("customers.taxId"), dataIndex: "tax_id", responsive: ["md"] },
            { title: t("customers.industry"), dataIndex: "industry", responsive: ["lg"] },
            { title: t("customers.region"), dataIndex: "region", responsive: ["lg"] },
            { title: t("customers.tier"), dataIndex: "tier", render: (tier: string) => (tier ? <Tag>{tier}</Tag> : null) },
          ]}
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
    </Space>
  );
}
