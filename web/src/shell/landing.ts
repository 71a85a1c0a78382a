// Where each person lands after signing in (R-UX-03): where their work is.

export type Page = "/dashboard" | "/my-day" | "/receivables" | "/order-lookup" | "/sync" | "/customers" | "/leads";

// In order: the first role a person holds decides.
const BY_ROLE: [string, Page][] = [
  ["general_manager", "/dashboard"],
  ["sales_director", "/dashboard"],
  ["sales_manager", "/dashboard"],
  ["sales_rep", "/my-day"],
  ["finance", "/receivables"],
  ["customer_service", "/order-lookup"],
  ["operator", "/sync"],
  ["marketing", "/leads"],
];

/** Whether granted permissions cover one: exact, `area.*` or `*` (administrators). */
export function may(permissions: readonly string[], permission: string): boolean {
  const area = permission.split(".")[0];
  return permissions.some((p) => p === permission || p === "*" || p === `${area}.*`);
}

export function landingPage(roles: readonly string[], permissions: readonly string[]): Page {
  for (const [role, page] of BY_ROLE) if (roles.includes(role)) return page;
  // Other roles (administrators, auditors, custom ones): the dashboard when they may read it.
  if (may(permissions, "opportunities.read")) return "/dashboard";
  return "/customers";
}

export interface MenuEntry {
  path: Page | "/approvals" | "/opportunities";
  label: "menu.dashboard" | "menu.myDay" | "menu.customers" | "menu.approvals" | "menu.receivables"
    | "menu.orderLookup" | "menu.sync" | "menu.leads" | "menu.board";
  permission: string;
}

export const MENU: MenuEntry[] = [
  { path: "/dashboard", label: "menu.dashboard", permission: "opportunities.read" },
  { path: "/my-day", label: "menu.myDay", permission: "opportunities.read" },
  { path: "/approvals", label: "menu.approvals", permission: "contracts.approve" },
  { path: "/customers", label: "menu.customers", permission: "customers.read" },
  { path: "/leads", label: "menu.leads", permission: "leads.read" },
  { path: "/opportunities", label: "menu.board", permission: "opportunities.read" },
  { path: "/receivables", label: "menu.receivables", permission: "billing.read" },
  { path: "/order-lookup", label: "menu.orderLookup", permission: "orders.read" },
  { path: "/sync", label: "menu.sync", permission: "integrations.read" },
];

/** The menu a person sees: only pages they may open, their landing page first. */
export function menuFor(roles: readonly string[], permissions: readonly string[]): MenuEntry[] {
  const landing = landingPage(roles, permissions);
  const allowed = MENU.filter((entry) => may(permissions, entry.permission));
  return [...allowed.filter((e) => e.path === landing), ...allowed.filter((e) => e.path !== landing)];
}
