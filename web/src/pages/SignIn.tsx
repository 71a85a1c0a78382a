import { LockOutlined, UserOutlined } from "@ant-design/icons";
import { Alert, Button, Card, Form, Input, Segmented, Typography } from "antd";
import { useState } from "react";
import { useNavigate, useSearchParams } from "react-router-dom";

import { problemOf } from "../api/problem";
import { session } from "../api/session";
import { useI18n } from "../i18n/I18n";

interface Credentials {
  username: string;
  password: string;
}

export function SignIn() {
  const { t, language, setLanguage } = useI18n();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async ({ username, password }: Credentials) => {
    setBusy(true);
    setFailure(null);
    try {
      const response = await session.signIn(username.trim(), password);
      if (!response.ok) {
        const problem = await problemOf(response);
        setFailure(problem.status === 401 ? t("signIn.failed") : (problem.body.detail ?? problem.message));
        return;
      }
      const next = params.get("next");
      // Only paths inside the console: never an open redirect.
      navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/", { replace: true });
    } catch {
      setFailure(t("problem.offline"));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main style={{ minHeight: "100vh", display: "grid", placeItems: "center", background: "#f5f7fa", padding: 16 }}>
      <Card style={{ width: "100%", maxWidth: 380 }}>
        <Typography.Title level={1} style={{ fontSize: 22, marginTop: 0 }}>
          {t("app.name")} · {t("signIn.title")}
        </Typography.Title>
        {failure && <Alert type="error" showIcon message={failure} style={{ marginBottom: 16 }} role="alert" />}
        <Form<Credentials> layout="vertical" onFinish={submit} requiredMark={false}>
          <Form.Item name="username" label={t("signIn.username")} rules={[{ required: true }]}>
            <Input prefix={<UserOutlined />} autoComplete="username" autoCapitalize="none" size="large" />
          </Form.Item>
          <Form.Item name="password" label={t("signIn.password")} rules={[{ required: true }]}>
            <Input.Password prefix={<LockOutlined />} autoComplete="current-password" size="large" />
          </Form.Item>
          <Button type="primary" htmlType="submit" block size="large" loading={busy}>
            {t("signIn.submit")}
          </Button>
        </Form>
        <Segmented
          style={{ marginTop: 16 }}
          value={language}
          onChange={(value) => setLanguage(value as typeof language)}
          options={[
            { label: "中文", value: "zh-CN" },
            { label: "English", value: "en-US" },
          ]}
        />
      </Card>
    </main>
  );
}
