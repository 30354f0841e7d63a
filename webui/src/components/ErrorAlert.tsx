import { Alert, Code, List, Text } from "@mantine/core";
import { IconAlertTriangle } from "@tabler/icons-react";

import { ApiError, errorMessage, problemLocation, type Problem } from "../api/errors";

export interface ErrorAlertProps {
  error: unknown;
  /** What was being done, e.g. "The workflow could not be deployed". */
  title?: string;
}

/** An error as the service said it: its message, its code, and each located problem. */
export function ErrorAlert({ error, title }: ErrorAlertProps) {
  const api = error instanceof ApiError ? error : null;
  return (
    <Alert
      color="red"
      variant="light"
      icon={<IconAlertTriangle aria-hidden />}
      title={title ?? "Something went wrong"}
      role="alert"
    >
      <Text size="sm" style={{ whiteSpace: "pre-wrap", wordBreak: "break-word" }}>
        {errorMessage(error)}
      </Text>
      {api && api.status > 0 && (
        <Text size="xs" c="dimmed" mt={4}>
          {api.code} · HTTP {api.status}
        </Text>
      )}
      {api && api.problems.length > 0 && <ProblemList problems={api.problems} />}
    </Alert>
  );
}

export function ProblemList({ problems }: { problems: Problem[] }) {
  return (
    <List size="sm" mt="xs" spacing={4} aria-label="Problems">
      {problems.map((p, i) => {
        const where = problemLocation(p);
        return (
          <List.Item key={`${p.code}-${p.step_id ?? ""}-${p.input ?? ""}-${i}`}>
            {where && <Text span fw={600}>{where}: </Text>}
            {p.message} <Code>{p.code}</Code>
          </List.Item>
        );
      })}
    </List>
  );
}
