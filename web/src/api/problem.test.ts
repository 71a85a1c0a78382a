import { describe, expect, it } from "vitest";

import { ApiProblem, classify, fieldErrors, fieldPath } from "./problem";

describe("problem+json for people", () => {
  it("puts field violations next to their fields", () => {
    const problem = new ApiProblem(400, {
      reason: "INVALID_ARGUMENT",
      errors: [
        { field: "name", message: "is required" },
        { field: "addresses[0].city", message: "too long" },
        { field: "name", message: "must not be blank" },
      ],
    });
    expect(classify(problem)).toBe("fields");
    expect(fieldErrors(problem)).toEqual([
      { name: ["name"], errors: ["is required", "must not be blank"] },
      { name: ["addresses", 0, "city"], errors: ["too long"] },
    ]);
  });

  it("names the existing customer of a duplicate tax ID on the tax ID field", () => {
    const problem = new ApiProblem(409, {
      reason: "DUPLICATE_TAX_ID",
      detail: "customer 'Suzhou Tubing Ltd' (0193…) already has tax ID 91320594MA1MXK3L24",
    });
    expect(classify(problem)).toBe("fields");
    expect(fieldErrors(problem)).toEqual([{ name: ["tax_id"], errors: [problem.body.detail] }]);
  });

  it.each([
    [401, "UNAUTHENTICATED", "signIn"],
    [403, "PERMISSION_DENIED", "forbidden"],
    [409, "CONFLICT", "stale"],
    [412, "STALE_VERSION", "stale"],
    [404, "NOT_FOUND", "notFound"],
    [503, "UNAVAILABLE", "unavailable"],
    [500, "INTERNAL", "other"],
  ])("%i %s is %s", (status, reason, kind) => {
    expect(classify(new ApiProblem(status, { reason }))).toBe(kind);
  });

  it("reads dotted and indexed paths", () => {
    expect(fieldPath("body.lines[2].quantity")).toEqual(["body", "lines", 2, "quantity"]);
  });
});
