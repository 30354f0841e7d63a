import { Badge, Card, Code, Group, Stack, Table, Text, Title } from "@mantine/core";

import type { Issue, Scan } from "../../api/types";
import { StateBadge } from "../../components/StateBadge";
import { RelativeTime } from "../../components/Time";

/** The message without its field (the repository's starts with it: the Field column shows it). */
function withoutField(issue: Issue): string {
  const prefix = `${issue.field}: `;
  return issue.field && issue.message.startsWith(prefix) ? issue.message.slice(prefix.length) : issue.message;
}

/** Located problems of a scan or an action source: file, line, field, message. */
export function IssueList({ issues, kind, label }: { issues: Issue[]; kind: "error" | "warning"; label: string }) {
  if (issues.length === 0) return null;
  return (
    <Table.ScrollContainer minWidth={560}>
      <Table aria-label={label} verticalSpacing={4} striped>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>File</Table.Th>
            <Table.Th>Line</Table.Th>
            <Table.Th>Field</Table.Th>
            <Table.Th>{kind === "error" ? "Error" : "Warning"}</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {issues.map((i, n) => (
            <Table.Tr key={`${i.file}:${i.line}:${i.field}:${n}`}>
              <Table.Td>
                <Code>{i.file}</Code>
              </Table.Td>
              <Table.Td>{i.line > 0 ? i.line : "—"}</Table.Td>
              <Table.Td>{i.field ? <Code>{i.field}</Code> : "—"}</Table.Td>
              <Table.Td>
                <Text size="sm" c={kind === "error" ? "red" : "yellow.8"} style={{ whiteSpace: "pre-wrap" }}>
                  {withoutField(i)}
                </Text>
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

const COUNTS: [keyof Scan["counts"], string, string][] = [
  ["found", "found", "gray"],
  ["new", "new", "green"],
  ["unchanged", "unchanged", "gray"],
  ["changed_same_version", "changed, same version", "yellow"],
  ["replaced", "replaced", "indigo"],
  ["invalid", "invalid", "red"],
  ["errors", "errors", "red"],
  ["warnings", "warnings", "yellow"],
];

/** The report of a scan (or an upload): what was found, and every located error at once. */
export function ScanReport({ scan }: { scan: Scan }) {
  return (
    <Card withBorder component="section" aria-label={`Scan of ${scan.name}`}>
      <Stack gap="sm">
        <Group justify="space-between">
          <Title order={3} size="h5">
            Scan of {scan.name}
            {scan.forced ? " (forced)" : ""}
          </Title>
          <Text size="xs" c="dimmed">
            {scan.branch && <>branch {scan.branch} · </>}
            {scan.commit && <>commit <Code>{scan.commit.slice(0, 10)}</Code> · </>}
            <RelativeTime iso={scan.finished_at} />
          </Text>
        </Group>
        <Group gap={6}>
          {COUNTS.filter(([key]) => key === "found" || scan.counts[key] > 0).map(([key, label, color]) => (
            <Badge key={key} color={color} variant="light" tt="none">
              {scan.counts[key]} {label}
            </Badge>
          ))}
          {scan.build_ids.length > 0 && (
            <Badge color="blue" variant="light" tt="none">
              {scan.build_ids.length} build{scan.build_ids.length === 1 ? "" : "s"} requested
            </Badge>
          )}
        </Group>
        {scan.actions.length > 0 && (
          <Table.ScrollContainer minWidth={560}>
            <Table aria-label="Actions found" verticalSpacing={4}>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Folder</Table.Th>
                  <Table.Th>Action</Table.Th>
                  <Table.Th>Result</Table.Th>
                  <Table.Th>Message</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {scan.actions.map((a) => (
                  <Table.Tr key={a.path}>
                    <Table.Td>
                      <Code>{a.path}</Code>
                    </Table.Td>
                    <Table.Td>{a.action_id ? `${a.action_id} ${a.version ?? ""}` : "—"}</Table.Td>
                    <Table.Td>
                      <StateBadge state={a.status} />
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">{a.message}</Text>
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
        {scan.errors.length > 0 && (
          <div>
            <Title order={4} size="h6" c="red" mb={4}>
              {scan.errors.length} error{scan.errors.length === 1 ? "" : "s"}
            </Title>
            <IssueList issues={scan.errors} kind="error" label="Scan errors" />
          </div>
        )}
        {scan.warnings.length > 0 && (
          <div>
            <Title order={4} size="h6" c="yellow.8" mb={4}>
              {scan.warnings.length} warning{scan.warnings.length === 1 ? "" : "s"}
            </Title>
            <IssueList issues={scan.warnings} kind="warning" label="Scan warnings" />
          </div>
        )}
        {scan.actions.length === 0 && scan.errors.length === 0 && (
          <Text size="sm" c="dimmed">
            No ryax_metadata.yaml was found.
          </Text>
        )}
      </Stack>
    </Card>
  );
}
