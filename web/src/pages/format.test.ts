import { describe, expect, it } from "vitest";

import { money } from "./format";

describe("money", () => {
  it("groups thousands and keeps the server's cents", () => {
    expect(money({ amount: "1234567.5", currency: "CNY" }, "zh-CN")).toBe("¥1,234,567.50");
    expect(money({ amount: "-12.345", currency: "CNY" }, "zh-CN")).toBe("-¥12.345");
    expect(money({ amount: "1000", currency: "USD" }, "en-US")).toBe("USD 1,000.00");
    expect(money(null, "zh-CN")).toBe("—");
  });
});
