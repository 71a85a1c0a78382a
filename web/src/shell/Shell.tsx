import {
  AppstoreOutlined,
  AuditOutlined,
  DashboardOutlined,
  DollarOutlined,
  FunnelPlotOutlined,
  ProjectOutlined,
  LogoutOutlined,
  ScheduleOutlined,
  SearchOutlined,
  SyncOutlined,
  TeamOutlined,
  TranslationOutlined,
  UserOutlined,
} from "@ant-design/icons";
import { Alert, Button, Drawer, Dropdown, Grid, Layout, Menu, Space, Spin, Typography } from "antd";
import { useEffect, useState, type ReactNode } from "react";
import { Link, Outlet, useLocation, useNavigate } from "react-router-dom";

import { session } from "../api/session";
import { useI18n } from "../i18n/I18n";
import { menuFor, type MenuEntry } from "./landing";
import { useMe } from "./me";
import { NotificationBell } from "./NotificationBell";
import { ProblemAlert } from "./Problem";

const ICONS: Record<MenuEntry["path"], ReactNode> = {
  "/dashboard": <DashboardOutlined />,
  "/my-day": <ScheduleOutlined />,
  "/customers": <TeamOutlined />,
  "/leads": <FunnelPlotOutlined />,
  "/opportunities": <ProjectOutlined />,
  "/approvals": <AuditOutlined />,
  "/receivables": <DollarOutlined />,
  "/order-lookup": <SearchOutlined />,
  "/sync": <SyncOutlined />,
};
// The phone's tab bar holds this many pages; the rest open from "more".
const TABS = 4;

export default function Shell() {
  const me = useMe();
  const { t } = useI18n();
  const screens = Grid.useBreakpoint();
  const phone = screens.md === false;
  const location = useLocation();
  const online = useOnline();

  if (me.error) return <ProblemAlert error={me.error} onReload={() => void me.refetch()} />;
  if (!me.data) return <Spin style={{ display: "block", marginTop: 120 }} />;
  const entries = menuFor(me.data.roles, me.data.permissions);
  const selected = entries.find((e) => location.pathname.startsWith(e.path))?.path ?? "";
  const items = entries.map((e) => ({ key: e.path, icon: ICONS[e.path], label: <Link to={e.path}>{t(e.label)}</Link> }));

  return (
    <Layout style={{ minHeight: "100vh" }}>
      {!phone && (
        <Layout.Sider theme="light" width={208} style={{ borderInlineEnd: "1px solid #f0f0f0" }}>
          <div style={{ padding: "16px 24px", fontWeight: 600, fontSize: 16 }}>{t("app.name")}</div>
          <nav aria-label={t("app.name")}>
            <Menu mode="inline" selectedKeys={[selected]} items={items} style={{ borderInlineEnd: 0 }} />
          </nav>
        </Layout.Sider>
      )}
      <Layout>
        <Layout.Header
          style={{
            background: "#fff",
            padding: phone ? "0 12px" : "0 24px",
            display: "flex",
            alignItems: "center",
            justifyContent: "space-between",
            borderBottom: "1px solid #f0f0f0",
            position: "sticky",
            top: 0,
            zIndex: 10,
          }}
        >
          <Typography.Text strong>{phone ? t("app.name") : ""}</Typography.Text>
          <Space size={4}>
            <NotificationBell />
            <UserMenu name={me.data.user?.display_name ?? me.data.subject} />
          </Space>
        </Layout.Header>
        {!online && <Alert banner type="warning" message={t("problem.offline")} />}
        <Layout.Content style={{ padding: phone ? "12px 12px 88px" : 24 }}>
          <Outlet />
        </Layout.Content>
        {phone && <TabBar entries={entries} selected={selected} />}
      </Layout>
    </Layout>
  );
}

function UserMenu({ name }: { name: string }) {
  const { t, language, setLanguage } = useI18n();
  const navigate = useNavigate();
  return (
    <Dropdown
      trigger={["click"]}
      menu={{
        items: [
          {
            key: "language",
            icon: <TranslationOutlined />,
            label: language === "zh-CN" ? "English" : "中文",
            onClick: () => setLanguage(language === "zh-CN" ? "en-US" : "zh-CN"),
          },
          { type: "divider" },
          {
            key: "sign-out",
            icon: <LogoutOutlined />,
            label: t("user.signOut"),
            onClick: () => void session.signOut().then(() => navigate("/sign-in", { replace: true })),
          },
        ],
      }}
    >
      <Button type="text" icon={<UserOutlined />} aria-label={`${name}: ${t("user.language")}, ${t("user.signOut")}`}>
        {name}
      </Button>
    </Dropdown>
  );
}

function TabBar({ entries, selected }: { entries: MenuEntry[]; selected: string }) {
  const { t } = useI18n();
  const [more, setMore] = useState(false);
  const tabs = entries.length > TABS ? entries.slice(0, TABS - 1) : entries;
  const rest = entries.slice(tabs.length);
  const tab = (key: string, icon: ReactNode, label: string, active: boolean, to?: string) => {
    const style = {
      flex: 1,
      display: "flex",
      flexDirection: "column" as const,
      alignItems: "center",
      gap: 2,
      padding: "8px 0",
      fontSize: 12,
      color: active ? "#1254c7" : "#404040",
      background: "none",
      border: 0,
    };
    const body = (
      <>
        <span style={{ fontSize: 20 }}>{icon}</span>
        {label}
      </>
    );
    return to ? (
      <Link key={key} to={to} style={style} aria-current={active ? "page" : undefined}>
        {body}
      </Link>
    ) : (
      <button key={key} type="button" style={style} onClick={() => setMore(true)}>
        {body}
      </button>
    );
  };
  return (
    <nav
      aria-label={t("app.name")}
      style={{
        position: "fixed",
        insetInline: 0,
        bottom: 0,
        display: "flex",
        background: "#fff",
        borderTop: "1px solid #e8e8e8",
        paddingBottom: "env(safe-area-inset-bottom)",
        zIndex: 20,
      }}
    >
      {tabs.map((e) => tab(e.path, ICONS[e.path], t(e.label), selected === e.path, e.path))}
      {rest.length > 0 && tab("more", <AppstoreOutlined />, t("menu.more"), false)}
      <Drawer placement="bottom" open={more} onClose={() => setMore(false)} title={t("menu.more")} height="auto">
        <Menu
          selectedKeys={[selected]}
          onClick={() => setMore(false)}
          items={rest.map((e) => ({ key: e.path, icon: ICONS[e.path], label: <Link to={e.path}>{t(e.label)}</Link> }))}
        />
      </Drawer>
    </nav>
  );
}

function useOnline(): boolean {
  const [online, setOnline] = useState(navigator.onLine);
  useEffect(() => {
    const up = () => setOnline(true);
    const down = () => setOnline(false);
    window.addEventListener("online", up);
    window.addEventListener("offline", down);
    return () => {
      window.removeEventListener("online", up);
      window.removeEventListener("offline", down);
    };
  }, []);
  return online;
}
