import { Alert, Anchor, Button, Code, Group, Select, Stack, Table, Text, TextInput, VisuallyHidden } from "@mantine/core";
import { IconHammer, IconSearch } from "@tabler/icons-react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Fragment, useMemo, useState } from "react";
import { Link, useNavigate } from "react-router";

import { api, unwrap } from "../../api/client";
import { repositoryQueries } from "../../api/queries";
import type { ActionSource } from "../../api/types";
import { ErrorAlert } from "../../components/ErrorAlert";
import { notifyError, notifySuccess } from "../../components/notify";
import { Empty, Loading } from "../../components/Page";
import { StateBadge } from "../../components/StateBadge";
import { RelativeTime } from "../../components/Time";
import { to } from "../auth/project";
import { IssueList } from "./ScanReport";
import { BUILDABLE, canBuild } from "./sources";

/** The action sources the scans recorded, their state and their builds: build, rebuild, build all. */
export function SourcesPanel({ project, canWrite }: { project: string; canWrite: boolean }) {
  const client = useQueryClient();
  const navigate = useNavigate();
  const sources = useQuery(repositoryQueries.sources(project));
  const [text, setText] = useState("");
  const [state, setState] = useState<string | null>(null);
  const [open, setOpen] = useState<string | null>(null);

  const request = (s: ActionSource) =>
    unwrap(
      api.repository.POST("/repository/v1/projects/{project}/actions/{action_id}/{version}/build", {
        params: { path: { project, action_id: s.action_id ?? "", version: s.version ?? "" } },
      }),
    );
  const build = useMutation({
    mutationFn: request,
    onSuccess: (b) => {
      void client.invalidateQueries({ queryKey: ["repository", project] });
      void navigate(to.build(project, b.id));
    },
    onError: (e) => notifyError("The build was not requested", e),
  });
  const buildAll = useMutation({
    mutationFn: async (list: ActionSource[]) => {
      const failures: string[] = [];
      for (const s of list) {
        try {
          await request(s);
        } catch (e) {
          failures.push(`${s.action_id} ${s.version}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      return { requested: list.length - failures.length, failures };
    },
    onSuccess: ({ requested, failures }) => {
      void client.invalidateQueries({ queryKey: ["repository", project] });
      if (requested > 0) notifySuccess(`${requested} build(s) requested.`);
      if (failures.length > 0) notifyError(`${failures.length} build(s) were not requested`, new Error(failures.join("\n")));
    },
  });

  const all = useMemo(() => sources.data?.actions ?? [], [sources.data]);
  const shown = all.filter((s) => {
    const needle = text.trim().toLowerCase();
    if (state && s.state !== state) return false;
    if (!needle) return true;
    return [s.action_id, s.human_name, s.origin.name, s.origin.path].some((v) => v?.toLowerCase().includes(needle));
  });
  const unbuilt = all.filter((s) => s.action_id && s.version && BUILDABLE.has(s.state));
  const states = [...new Set(all.map((s) => s.state))].sort();

  return (
    <Stack>
      <Group justify="space-between" align="flex-end">
        <Group gap="sm" align="flex-end">
          <TextInput label="Search" placeholder="Action, repository, folder" leftSection={<IconSearch size={14} aria-hidden />} value={text} onChange={(e) => setText(e.currentTarget.value)} />
          <Select label="State" placeholder="Any state" data={states} value={state} onChange={setState} clearable w={180} />
        </Group>
        {canWrite && (
          <Button
            leftSection={<IconHammer size={16} aria-hidden />}
            onClick={() => buildAll.mutate(unbuilt)}
            loading={buildAll.isPending}
            disabled={unbuilt.length === 0}
            title={unbuilt.length === 0 ? "Every valid action is built or building" : undefined}
          >
            Build all ({unbuilt.length})
          </Button>
        )}
      </Group>
      {sources.isPending && <Loading label="Loading action sources" />}
      {sources.isError && <ErrorAlert error={sources.error} title="The action sources could not be read" />}
      {sources.data &&
        (all.length === 0 ? (
          <Empty>No action source yet: add a repository and scan it.</Empty>
        ) : (
          <Table.ScrollContainer minWidth={800}>
            <Table aria-label="Action sources" highlightOnHover>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Action</Table.Th>
                  <Table.Th>Kind</Table.Th>
                  <Table.Th>From</Table.Th>
                  <Table.Th>State</Table.Th>
                  <Table.Th>Last build</Table.Th>
                  <Table.Th>
                    <VisuallyHidden>Actions</VisuallyHidden>
                  </Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {shown.map((s) => {
                  const problems = s.errors.length + s.warnings.length;
                  return (
                    <Fragment key={s.id}>
                      <Table.Tr>
                        <Table.Td>
                          <Text size="sm" fw={600}>
                            {s.human_name ?? s.action_id ?? s.origin.path}
                          </Text>
                          <Text size="xs" c="dimmed">
                            {s.action_id ?? "?"} {s.version ?? ""}
                          </Text>
                        </Table.Td>
                        <Table.Td>{s.kind ?? "—"}</Table.Td>
                        <Table.Td>
                          <Text size="xs">
                            {s.origin.name} / <Code>{s.origin.path}</Code>
                            {s.origin.commit ? ` @ ${s.origin.commit.slice(0, 8)}` : ""}
                          </Text>
                        </Table.Td>
                        <Table.Td>
                          <StateBadge state={s.state} />
                          {problems > 0 && (
                            <Anchor component="button" type="button" size="xs" display="block" onClick={() => setOpen(open === s.id ? null : s.id)} aria-expanded={open === s.id}>
                              {s.errors.length > 0 ? `${s.errors.length} error(s)` : ""}
                              {s.errors.length > 0 && s.warnings.length > 0 ? ", " : ""}
                              {s.warnings.length > 0 ? `${s.warnings.length} warning(s)` : ""}
                            </Anchor>
                          )}
                        </Table.Td>
                        <Table.Td>
                          {s.last_build ? (
                            <Anchor component={Link} to={to.build(project, s.last_build.id)} size="sm">
                              <StateBadge state={s.last_build.state} label={s.last_build.state === "requested" ? "Building" : undefined} size="sm" />{" "}
                              <RelativeTime iso={s.last_build.finished_at ?? s.last_build.requested_at} />
                            </Anchor>
                          ) : (
                            <Text size="sm" c="dimmed">
                              never
                            </Text>
                          )}
                        </Table.Td>
                        <Table.Td>
                          {canWrite && canBuild(s) && s.state !== "building" && (
                            <Button
                              size="compact-sm"
                              variant="light"
                              onClick={() => build.mutate(s)}
                              loading={build.isPending && build.variables.id === s.id}
                              aria-label={`${s.state === "built" ? "Rebuild" : "Build"} ${s.action_id} ${s.version}`}
                            >
                              {s.state === "built" ? "Rebuild" : "Build"}
                            </Button>
                          )}
                        </Table.Td>
                      </Table.Tr>
                      {open === s.id && (
                        <Table.Tr>
                          <Table.Td colSpan={6}>
                            {s.pending_change && (
                              <Alert color="yellow" variant="light" mb="xs">
                                Different content was seen under this version <RelativeTime iso={s.pending_change.seen_at} /> ({s.pending_change.origin.name}/
                                {s.pending_change.origin.path}): bump the version, or scan with “force”.
                              </Alert>
                            )}
                            <IssueList issues={s.errors} kind="error" label={`Errors of ${s.action_id ?? s.origin.path}`} />
                            <IssueList issues={s.warnings} kind="warning" label={`Warnings of ${s.action_id ?? s.origin.path}`} />
                          </Table.Td>
                        </Table.Tr>
                      )}
                    </Fragment>
                  );
                })}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        ))}
    </Stack>
  );
}
