import { describe, expect, it } from "vitest";

import { landingPage, may, menuFor } from "./landing";

describe("landing page by role (R-UX-03)", () => {
  it.each([
    [["general_manager"], "/dashboard"],
    [["sales_director"], "/dashboard"],
    [["sales_manager"], "/dashboard"],
    [["sales_rep"], "/my-day"],
    [["finance"], "/receivables"],
    [["customer_service"], "/order-lookup"],
    [["operator"], "/sync"],
    [["marketing"], "/leads"],
    [["sales_rep", "finance"], "/my-day"],
  ])("%j lands on %s", (roles, page) => {
    expect(landingPage(roles, [])).toBe(page);
  });

  it("falls back on what the person may read", () => {
    expect(landingPage(["admin"], ["*"])).toBe("/dashboard");
    expect(landingPage(["auditor"], ["customers.read", "leads.read"])).toBe("/customers");
  });
});

describe("permissions", () => {
  it("covers exact names, areas and everything", () => {
    expect(may(["customers.read"], "customers.read")).toBe(true);
    expect(may(["customers.*"], "customers.write")).toBe(true);
    expect(may(["*"], "billing.read")).toBe(true);
    expect(may(["customers.read"], "customers.write")).toBe(false);
    expect(may(["customers.*"], "contracts.read")).toBe(false);
  });

  it("shows only pages the person may open, landing page first", () => {
    const menu = menuFor(["finance"], ["customers.read", "contracts.approve", "orders.read", "billing.read"]);
    expect(menu.map((e) => e.path)).toEqual(["/receivables", "/approvals", "/customers", "/order-lookup"]);
    expect(menuFor(["operator"], ["integrations.read"]).map((e) => e.path)).toEqual(["/sync"]);
  });
});
