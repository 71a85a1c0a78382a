import { ConfigProvider } from "antd";
import enUS from "antd/locale/en_US";
import zhCN from "antd/locale/zh_CN";
import dayjs from "dayjs";
import "dayjs/locale/zh-cn";
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";

import { en, format, zh, type Language, type MessageKey } from "./messages";

const STORAGE_KEY = "crm.language";
// antd's lighter greys fall below WCAG AA contrast (4.5:1) on white; these stay above it.
const THEME = {
  token: {
    colorPrimary: "#1254c7",
    colorInfo: "#1254c7",
    colorLink: "#1254c7",
    colorError: "#cf1322",
    colorTextSecondary: "rgba(0, 0, 0, 0.68)",
    colorTextTertiary: "rgba(0, 0, 0, 0.62)",
    colorTextDescription: "rgba(0, 0, 0, 0.62)",
    colorTextQuaternary: "rgba(0, 0, 0, 0.58)",
    colorTextPlaceholder: "rgba(0, 0, 0, 0.58)",
    colorTextDisabled: "rgba(0, 0, 0, 0.58)",
  },
};

interface I18nValue {
  language: Language;
  setLanguage: (language: Language) => void;
  t: (key: MessageKey, vars?: Record<string, string | number>) => string;
}

const I18nContext = createContext<I18nValue | null>(null);

function initialLanguage(): Language {
  return localStorage.getItem(STORAGE_KEY) === "en-US" ? "en-US" : "zh-CN";
}

export function I18nProvider({ children }: { children: ReactNode }) {
  const [language, setLanguageState] = useState<Language>(initialLanguage);
  const setLanguage = useCallback((next: Language) => {
    localStorage.setItem(STORAGE_KEY, next);
    setLanguageState(next);
  }, []);
  const value = useMemo<I18nValue>(() => {
    const messages = language === "en-US" ? en : zh;
    dayjs.locale(language === "en-US" ? "en" : "zh-cn");
    document.documentElement.lang = language;
    return { language, setLanguage, t: (key, vars) => format(messages[key], vars) };
  }, [language, setLanguage]);
  return (
    <I18nContext.Provider value={value}>
      <ConfigProvider locale={language === "en-US" ? enUS : zhCN} theme={THEME}>
        {children}
      </ConfigProvider>
    </I18nContext.Provider>
  );
}

export function useI18n(): I18nValue {
  const value = useContext(I18nContext);
  if (!value) throw new Error("useI18n outside I18nProvider");
  return value;
}
