import { Alert, Button, message } from "antd";
import { useCallback } from "react";
import { useNavigate } from "react-router-dom";

import { ApiProblem, classify } from "../api/problem";
import { useI18n } from "../i18n/I18n";
import type { MessageKey } from "../i18n/messages";

/** The sentence a person reads for a problem. */
export function useProblemText() {
  const { t } = useI18n();
  return useCallback(
    (error: unknown): string => {
      if (!(error instanceof ApiProblem)) return t("problem.offline");
      const kind = classify(error);
      const key: Partial<Record<typeof kind, MessageKey>> = {
        stale: "problem.stale",
        notFound: "problem.notFound",
        unavailable: "problem.unavailable",
        signIn: "signIn.expired",
      };
      if (kind === "forbidden") return t("problem.forbidden", { permission: error.body.permission ?? "?" });
      const chosen = key[kind];
      return chosen ? t(chosen) : (error.body.detail ?? error.message);
    },
    [t],
  );
}

/** For a failed write: a toast, or sign-in when the session is gone. Field problems are the form's. */
export function useProblemToast() {
  const text = useProblemText();
  const navigate = useNavigate();
  return useCallback(
    (error: unknown) => {
      if (error instanceof ApiProblem && classify(error) === "signIn") {
        navigate("/sign-in", { replace: true });
        return;
      }
      void message.error(text(error));
    },
    [text, navigate],
  );
}

/** A failed read shown in place, with a reload when reloading can help. */
export function ProblemAlert({ error, onReload }: { error: unknown; onReload?: () => void }) {
  const text = useProblemText();
  const { t } = useI18n();
  const stale = error instanceof ApiProblem && (error.isStale || error.status >= 500);
  return (
    <Alert
      type={error instanceof ApiProblem && error.status === 404 ? "warning" : "error"}
      showIcon
      message={text(error)}
      // Operators find a server error by its trace id; a person has no use for it otherwise.
      description={
        error instanceof ApiProblem && error.status >= 500 && error.body.trace_id
          ? `trace ${error.body.trace_id}`
          : undefined
      }
      action={
        onReload && (stale || !(error instanceof ApiProblem)) ? (
          <Button size="small" onClick={onReload}>
            {t("common.reload")}
          </Button>
        ) : undefined
      }
    />
  );
}
