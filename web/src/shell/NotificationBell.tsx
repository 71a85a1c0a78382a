import { BellOutlined } from "@ant-design/icons";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { Badge, Button, Drawer, List, Typography, notification } from "antd";
import { useEffect, useState } from "react";

import { api, unwrap, type components } from "../api/client";
import { follow } from "../api/sse";
import { useI18n } from "../i18n/I18n";
import { dateTime } from "../pages/format";

type Item = components["schemas"]["InboxItem"];

// The unread count, refreshed by the live stream; the latest items in a drawer.
export function NotificationBell() {
  const { t, language } = useI18n();
  const queryClient = useQueryClient();
  const [open, setOpen] = useState(false);
  const unread = useQuery({
    queryKey: ["notifications", "unread"],
    queryFn: () => unwrap(api.GET("/api/v1/notifications/unread-count")),
  });
  const latest = useQuery({
    queryKey: ["notifications", "latest"],
    enabled: open,
    queryFn: () => unwrap(api.GET("/api/v1/notifications", { params: { query: { limit: 20 } } })),
  });

  useEffect(() => {
    const stop = new AbortController();
    void follow(
      "/api/v1/notifications/stream",
      (event) => {
        if (event.event !== "notification") return;
        const item = JSON.parse(event.data) as Item;
        notification.info({ message: item.title, description: item.body, placement: "topRight" });
        void queryClient.invalidateQueries({ queryKey: ["notifications"] });
      },
      stop.signal,
    );
    return () => stop.abort();
  }, [queryClient]);

  const count = unread.data?.unread ?? 0;
  const readAll = async () => {
    await unwrap(api.POST("/api/v1/notifications/read-all"));
    await queryClient.invalidateQueries({ queryKey: ["notifications"] });
  };
  return (
    <>
      <Badge count={count} size="small" offset={[-6, 6]}>
        <Button
          type="text"
          icon={<BellOutlined style={{ fontSize: 18 }} />}
          aria-label={t("notifications.title", { count })}
          onClick={() => setOpen(true)}
        />
      </Badge>
      <Drawer
        open={open}
        onClose={() => setOpen(false)}
        title={t("notifications.inbox")}
        width={380}
        extra={
          <Button size="small" onClick={() => void readAll()} disabled={count === 0}>
            {t("notifications.readAll")}
          </Button>
        }
      >
        <List
          loading={latest.isLoading}
          dataSource={latest.data?.items ?? []}
          locale={{ emptyText: t("common.empty") }}
          renderItem={(item) => (
            <List.Item>
              <List.Item.Meta
                title={item.read_at ? item.title : <strong>{item.title}</strong>}
                description={
                  <>
                    {item.body}
                    <br />
                    <Typography.Text type="secondary">{dateTime(item.created_at, language)}</Typography.Text>
                  </>
                }
              />
            </List.Item>
          )}
        />
      </Drawer>
    </>
  );
}
