import type { components } from "../api/client";

type Money = components["schemas"]["Money"];

/** "1234567.5" CNY → "¥1,234,567.50"; the amount stays a decimal string (no float rounding). */
export function money(value: Money | null | undefined, language: string): string {
  if (!value) return "—";
  const [whole = "0", fraction = ""] = value.amount.replace(/^-/, "").split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const sign = value.amount.startsWith("-") ? "-" : "";
  const cents = (fraction + "00").slice(0, Math.max(2, fraction.length));
  const currency = value.currency ?? "CNY";
  const symbol = currency === "CNY" ? "¥" : `${currency} `;
  return language === "en-US" || currency !== "CNY"
    ? `${sign}${symbol}${grouped}.${cents}`
    : `${sign}¥${grouped}.${cents}`;
}

export function dateTime(value: string | null | undefined, language: string): string {
  if (!value) return "—";
  return new Date(value).toLocaleString(language, { dateStyle: "medium", timeStyle: "short" });
}
