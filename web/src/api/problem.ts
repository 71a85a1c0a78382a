// problem+json (RFC 9457) answers, turned into what a person can act on.

export interface FieldError {
  field: string;
  message: string;
}

export interface ProblemBody {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  reason?: string;
  errors?: FieldError[] | null;
  permission?: string;
  trace_id?: string;
  existing_customer_id?: string;
  existing_customer_name?: string;
}

export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    readonly body: ProblemBody,
  ) {
    super(body.detail ?? body.title ?? `HTTP ${status}`);
  }

  get reason(): string {
    return this.body.reason ?? "";
  }

  /** Someone else changed the record (or it moved on): reloading is the way out. */
  get isStale(): boolean {
    return this.status === 409 || this.status === 412;
  }
}

export type Kind = "signIn" | "forbidden" | "stale" | "notFound" | "fields" | "unavailable" | "other";

/** What the console does about a problem: which message, and whether fields carry it. */
export function classify(problem: ApiProblem): Kind {
  if (problem.status === 401) return "signIn";
  if (problem.status === 403) return "forbidden";
  if (problem.reason === "DUPLICATE_TAX_ID") return "fields";
  if (problem.isStale) return "stale";
  if (problem.status === 404) return "notFound";
  if ((problem.body.errors ?? []).length > 0) return "fields";
  if (problem.status === 503 || problem.status === 502 || problem.status === 504) return "unavailable";
  return "other";
}

/** Field violations keyed by the form's field path: `addresses[0].city` → ["addresses", 0, "city"]. */
export function fieldErrors(problem: ApiProblem): { name: (string | number)[]; errors: string[] }[] {
  const byField = new Map<string, string[]>();
  for (const { field, message } of problem.body.errors ?? []) {
    const key = field.replace(/^body\./, "");
    byField.set(key, [...(byField.get(key) ?? []), message]);
  }
  if (problem.reason === "DUPLICATE_TAX_ID" && !byField.has("tax_id")) {
    byField.set("tax_id", [problem.body.detail ?? problem.message]);
  }
  return [...byField].map(([key, errors]) => ({ name: fieldPath(key), errors }));
}

export function fieldPath(key: string): (string | number)[] {
  return key
    .split(/\.|\[(\d+)\]/)
    .filter((part) => part !== undefined && part !== "")
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

export async function problemOf(response: Response): Promise<ApiProblem> {
  let body: ProblemBody = {};
  try {
    body = (await response.json()) as ProblemBody;
  } catch {
    body = { detail: response.statusText };
  }
  return new ApiProblem(response.status, body);
}
