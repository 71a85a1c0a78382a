import { useQuery } from "@tanstack/react-query";
import { Badge, Card, Col, List, Row, Typography } from "antd";
import { Link } from "react-router-dom";

import { api, unwrap } from "../api/client";
import { useI18n } from "../i18n/I18n";
import { may } from "../shell/landing";
import { useMe } from "../shell/me";
import { ProblemAlert } from "../shell/Problem";
import { money } from "./format";

// A rep's day from what the API serves today: open opportunities, approvals waiting, own customers
// (tasks and the daily plan come with issue 17).
export default function MyDay() {
  const { t, language } = useI18n();
  const me = useMe().data;
  const subject = me?.subject ?? "";
  const opportunities = useQuery({
    queryKey: ["opportunities", "mine", subject],
    enabled: !!subject,
    queryFn: () =>
      unwrap(api.GET("/api/v1/opportunities", { params: { query: { owner_id: subject, status: "open", limit: 20 } } })),
  });
  const customers = useQuery({
    queryKey: ["customers", "mine", subject],
    enabled: !!subject,
    queryFn: () =>
      unwrap(api.GET("/api/v1/customers", { params: { query: { owner_id: subject, sort: "-update_time", limit: 10 } } })),
  });
  const canApprove = !!me && may(me.permissions, "contracts.approve");
  const approvals = useQuery({
    queryKey: ["approvals"],
    enabled: canApprove,
    queryFn: () => unwrap(api.GET("/api/v1/approvals")),
  });
  const waiting = (approvals.data?.items ?? []).filter((s) => s.state === "pending").length;

  return (
    <>
      <Typography.Title level={1} style={{ fontSize: 22 }}>
        {t("menu.myDay")}
      </Typography.Title>
      <Row gutter={[16, 16]}>
        {canApprove && (
          <Col xs={24}>
            <Card size="small">
              <Link to="/approvals">
                {t("myDay.approvals")} <Badge count={waiting} showZero color={waiting ? "#c41d1d" : "#595959"} />
              </Link>
            </Card>
          </Col>
        )}
        <Col xs={24} lg={12}>
          <Card title={<h2 style={{ fontSize: 16, margin: 0 }}>{t("myDay.opportunities")}</h2>} size="small">
            {opportunities.error ? (
              <ProblemAlert error={opportunities.error} onReload={() => void opportunities.refetch()} />
            ) : (
              <List
                loading={opportunities.isLoading}
                dataSource={opportunities.data?.items ?? []}
                locale={{ emptyText: t("common.empty") }}
                renderItem={(o) => (
                  <List.Item extra={money(o.amount, language)}>
                    <List.Item.Meta
                      title={<Link to={`/customers/${o.customer_id}`}>{o.name}</Link>}
                      description={o.expected_close_date ? `${t("opportunity.close")} ${o.expected_close_date}` : null}
                    />
                  </List.Item>
                )}
              />
            )}
          </Card>
        </Col>
        <Col xs={24} lg={12}>
          <Card title={<h2 style={{ fontSize: 16, margin: 0 }}>{t("myDay.followUps")}</h2>} size="small">
            {customers.error ? (
              <ProblemAlert error={customers.error} onReload={() => void customers.refetch()} />
            ) : (
              <List
                loading={customers.isLoading}
                dataSource={customers.data?.items ?? []}
                locale={{ emptyText: t("common.empty") }}
                renderItem={(c) => (
                  <List.Item actions={[<Link key="log" to={`/customers/${c.id}/follow-up`}>{t("followUp.log")}</Link>]}>
                    <Link to={`/customers/${c.id}`}>{c.name}</Link>
                  </List.Item>
                )}
              />
            )}
          </Card>
        </Col>
      </Row>
    </>
  );
}
