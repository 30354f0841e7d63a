import { notifications } from "@mantine/notifications";

import { ApiError, errorMessage } from "../api/errors";

/** A failed action, with the service's own message. */
export function notifyError(title: string, error: unknown): void {
  const code = error instanceof ApiError && error.status > 0 ? ` (${error.code})` : "";
  const problems =
    error instanceof ApiError && error.problems.length > 0
      ? "\n" + error.problems.map((p) => `• ${p.step_id ? `${p.step_id}: ` : ""}${p.message}`).join("\n")
      : "";
  notifications.show({
    color: "red",
    title,
    message: `${errorMessage(error)}${code}${problems}`,
    autoClose: 10_000,
    style: { whiteSpace: "pre-wrap" },
  });
}

export function notifySuccess(message: string): void {
  notifications.show({ color: "green", message, autoClose: 4000 });
}
