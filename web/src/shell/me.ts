import { useQuery } from "@tanstack/react-query";

import { api, unwrap, type components } from "../api/client";

export type Me = components["schemas"]["Me"];

export function useMe() {
  return useQuery({ queryKey: ["me"], queryFn: () => unwrap(api.GET("/api/v1/me")), staleTime: 5 * 60_000 });
}
