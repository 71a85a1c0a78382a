import createClient from "openapi-fetch";

import { ApiProblem, problemOf } from "./problem";
import type { paths } from "./schema";
import { session } from "./session";

/** The typed API client: every call carries the session's access token (api/session.ts). */
export const api = createClient<paths>({ baseUrl: "", fetch: (request: Request) => session.authorizedFetch(request) });

/** The data of an openapi-fetch answer, or its problem thrown as an ApiProblem. */
export async function unwrap<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (error !== undefined || !response.ok) {
    throw error && typeof error === "object" ? new ApiProblem(response.status, error) : await problemOf(response);
  }
  return data as T;
}

export type { components } from "./schema";
