import { useQuery } from "@tanstack/react-query";
import { Select } from "antd";
import { useState } from "react";

import { api, unwrap } from "../api/client";
import { useI18n } from "../i18n/I18n";

/** Pick a customer by part of its name (server-side search within the caller's data scope). */
export function CustomerSearch({ onPick, id }: { onPick: (customerId: string) => void; id?: string }) {
  const { t } = useI18n();
  const [text, setText] = useState("");
  const found = useQuery({
    queryKey: ["customers", "search", text],
    enabled: text.trim().length > 0,
    queryFn: () => unwrap(api.GET("/api/v1/customers", { params: { query: { name: text.trim(), limit: 20 } } })),
  });
  return (
    <Select
      id={id}
      showSearch
      filterOption={false}
      onSearch={setText}
      onChange={onPick}
      loading={found.isFetching}
      placeholder={t("customers.name")}
      aria-label={t("customers.name")}
      notFoundContent={text ? t("common.empty") : null}
      options={(found.data?.items ?? []).map((c) => ({ value: c.id, label: c.name }))}
      style={{ width: "100%", maxWidth: 480 }}
      size="large"
    />
  );
}
