import { Alert, Anchor, Badge, Button, Card, Code, Grid, Group, ScrollArea, Stack, Table, Text, Title } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef } from "react";
import { Link, useNavigate, useParams } from "react-router";

import { api, unwrap } from "../../api/client";
import { isBuildRunning, repositoryQueries } from "../../api/queries";
import { ErrorAlert } from "../../components/ErrorAlert";
import { notifyError } from "../../components/notify";
import { Loading, PageHeader } from "../../components/Page";
import { StateBadge } from "../../components/StateBadge";
import { RelativeTime } from "../../components/Time";
import { formatDuration, secondsBetween } from "../../lib/format";
import { useNow } from "../../lib/useNow";
import { to, useProject } from "../auth/project";

/** A build: its state and reason, and its log, refreshed while it runs. */
export function BuildPage() {
  const { name: project, canWrite } = useProject();
  const { buildId = "" } = useParams();
  const navigate = useNavigate();
  const client = useQueryClient();
  const now = useNow();
  const build = useQuery(repositoryQueries.build(project, buildId));
  const b = build.data;
  const history = useQuery({ ...repositoryQueries.builds(project, b?.action_id ?? "", b?.version ?? ""), enabled: !!b });
  const logRef = useRef<HTMLDivElement>(null);
  const running = isBuildRunning(b);

  useEffect(() => {
    const el = logRef.current;
    if (el && running) el.scrollTo({ top: el.scrollHeight });
  }, [b?.log, running]);

  const rebuild = useMutation({
    mutationFn: () =>
      unwrap(
        api.repository.POST("/repository/v1/projects/{project}/actions/{action_id}/{version}/build", {
          params: { path: { project, action_id: b?.action_id ?? "", version: b?.version ?? "" }, query: { force: running } },
        }),
      ),
    onSuccess: (next) => {
      void client.invalidateQueries({ queryKey: ["repository", project] });
      void navigate(to.build(project, next.id));
    },
    onError: (e) => notifyError("The build was not requested", e),
  });

  if (build.isPending) return <Loading label="Loading the build" />;
  if (build.isError) return <ErrorAlert error={build.error} title="The build could not be read" />;
  if (!b) return null;
  const seconds = b.duration_seconds ?? secondsBetween(b.requested_at, b.finished_at, now);

  return (
    <>
      <PageHeader
        title={`Build of ${b.action_id} ${b.version}`}
        subtitle={
          <Group gap="xs">
            <StateBadge state={b.state} label={running ? "Building" : undefined} size="lg" />
            {b.cached && <Badge variant="outline">from cache</Badge>}
            <Text size="sm" c="dimmed">
              requested <RelativeTime iso={b.requested_at} /> · {formatDuration(seconds)}
            </Text>
          </Group>
        }
        actions={
          <>
            <Button component={Link} to={to.library(project, "sources")} variant="default">
              Action sources
            </Button>
            {canWrite && (
              <Button onClick={() => rebuild.mutate()} loading={rebuild.isPending} variant={running ? "light" : "filled"}>
                {running ? "Build again (force)" : "Rebuild"}
              </Button>
            )}
          </>
        }
      />
      {b.state === "failed" && (
        <Alert color="red" variant="light" title="The build failed" mb="md" role="alert">
          <Text size="sm" style={{ whiteSpace: "pre-wrap" }}>
            {b.reason || "no reason given: see the log"}
          </Text>
        </Alert>
      )}
      <Grid>
        <Grid.Col span={{ base: 12, lg: 8 }}>
          <Card withBorder>
            <Group justify="space-between" mb="xs">
              <Title order={3} size="h5">
                Build log
              </Title>
              {running && (
                <Badge color="blue" variant="dot" aria-live="polite">
                  Live
                </Badge>
              )}
            </Group>
            <ScrollArea.Autosize mah={560} viewportRef={logRef} type="auto" viewportProps={{ tabIndex: 0, "aria-label": "Build log", role: "log" }}>
              <Code block className="log-view">
                {b.log || (running ? "Waiting for the builder…" : "(empty log)")}
              </Code>
            </ScrollArea.Autosize>
          </Card>
        </Grid.Col>
        <Grid.Col span={{ base: 12, lg: 4 }}>
          <Stack>
            <Card withBorder>
              <Table verticalSpacing={4} fz="sm" aria-label="Build details">
                <Table.Tbody>
                  <Table.Tr>
                    <Table.Th scope="row">Finished</Table.Th>
                    <Table.Td>{b.finished_at ? <RelativeTime iso={b.finished_at} /> : "—"}</Table.Td>
                  </Table.Tr>
                  <Table.Tr>
                    <Table.Th scope="row">Source</Table.Th>
                    <Table.Td>
                      <Code>{b.source_sha256.slice(0, 16)}</Code>
                    </Table.Td>
                  </Table.Tr>
                  <Table.Tr>
                    <Table.Th scope="row">Artefact</Table.Th>
                    <Table.Td>{b.artefact_sha256 ? <Code>{b.artefact_sha256.slice(0, 16)}</Code> : "—"}</Table.Td>
                  </Table.Tr>
                </Table.Tbody>
              </Table>
            </Card>
            <Card withBorder>
              <Title order={3} size="h5" mb="xs">
                Builds of this version
              </Title>
              {history.isError && <ErrorAlert error={history.error} title="The builds could not be read" />}
              {history.data?.builds.map((h) => (
                <Group key={h.id} justify="space-between" py={2}>
                  <Anchor component={Link} to={to.build(project, h.id)} size="sm" fw={h.id === b.id ? 700 : undefined} aria-current={h.id === b.id ? "page" : undefined}>
                    <RelativeTime iso={h.requested_at} />
                  </Anchor>
                  <StateBadge state={h.state} label={h.state === "requested" ? "Building" : undefined} size="sm" />
                </Group>
              ))}
            </Card>
          </Stack>
        </Grid.Col>
      </Grid>
    </>
  );
}
