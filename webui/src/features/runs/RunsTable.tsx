import { Anchor, Button, Group, Select, Table, Text } from "@mantine/core";
import { useInfiniteQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Link } from "react-router";

import { runnerQueries, type RunFilter } from "../../api/queries";
import { ErrorAlert } from "../../components/ErrorAlert";
import { Empty, Loading } from "../../components/Page";
import { StateBadge } from "../../components/StateBadge";
import { RelativeTime } from "../../components/Time";
import { formatDuration } from "../../lib/format";
import { to } from "../auth/project";
import { originText } from "./origin";

const STATES = ["pending", "running", "completed", "failed", "cancelled"] as const;

/** A project's (or a workflow's) runs, newest first, live, with "load more". */
export function RunsTable({ project, workflowId, showWorkflow = !workflowId }: { project: string; workflowId?: string; showWorkflow?: boolean }) {
  const [state, setState] = useState<RunFilter["state"] | null>(null);
  const runs = useInfiniteQuery(runnerQueries.runs(project, { ...(workflowId ? { workflowId } : {}), ...(state ? { state } : {}) }));
  const rows = runs.data?.pages.flatMap((p) => p.runs) ?? [];
  return (
    <>
      <Group mb="xs">
        <Select
          label="State"
          placeholder="Any state"
          data={STATES.map((s) => ({ value: s, label: s }))}
          value={state}
          onChange={(v) => setState(v ?? null)}
          clearable
          w={180}
        />
      </Group>
      {runs.isPending && <Loading label="Loading runs" />}
      {runs.isError && <ErrorAlert error={runs.error} title="The runs could not be read" />}
      {runs.isSuccess &&
        (rows.length === 0 ? (
          <Empty>No run{state ? ` in state ${state}` : " yet"}.</Empty>
        ) : (
          <>
            <Table.ScrollContainer minWidth={640}>
              <Table highlightOnHover aria-label="Runs">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Run</Table.Th>
                    {showWorkflow && <Table.Th>Workflow</Table.Th>}
                    <Table.Th>State</Table.Th>
                    <Table.Th>Created</Table.Th>
                    <Table.Th>Duration</Table.Th>
                    <Table.Th>Started by</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {rows.map((r) => (
                    <Table.Tr key={r.id}>
                      <Table.Td>
                        <Anchor component={Link} to={to.run(project, r.id)} ff="monospace" size="sm">
                          {r.id.slice(0, 8)}
                        </Anchor>
                      </Table.Td>
                      {showWorkflow && (
                        <Table.Td>
                          <Anchor component={Link} to={to.workflow(project, r.workflow_id)} size="sm">
                            {r.workflow_name}
                          </Anchor>
                        </Table.Td>
                      )}
                      <Table.Td>
                        <StateBadge state={r.state} />
                        {r.state === "failed" && r.reason && (
                          <Text size="xs" c="red" lineClamp={1} maw={280} title={r.reason}>
                            {r.reason}
                          </Text>
                        )}
                      </Table.Td>
                      <Table.Td>
                        <RelativeTime iso={r.created_at} />
                      </Table.Td>
                      <Table.Td>{formatDuration(r.duration_seconds)}</Table.Td>
                      <Table.Td>{originText(r.origin)}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
            {runs.hasNextPage && (
              <Group justify="center" mt="sm">
                <Button variant="default" onClick={() => void runs.fetchNextPage()} loading={runs.isFetchingNextPage}>
                  Load more
                </Button>
              </Group>
            )}
          </>
        ))}
    </>
  );
}
