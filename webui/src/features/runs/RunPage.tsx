import {
  Alert,
  Anchor,
  Card,
  Code,
  Grid,
  Group,
  Progress,
  ScrollArea,
  Stack,
  Table,
  Tabs,
  Text,
  Title,
} from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router";

import { api, unwrap } from "../../api/client";
import { isRunTerminal, runnerQueries, studioQueries } from "../../api/queries";
import type { Execution, RunDetail } from "../../api/types";
import { PanelBoundary } from "../../components/Boundaries";
import { ConfirmButton } from "../../components/ConfirmButton";
import { ErrorAlert } from "../../components/ErrorAlert";
import { notifyError, notifySuccess } from "../../components/notify";
import { Empty, Loading, PageHeader } from "../../components/Page";
import { StateBadge } from "../../components/StateBadge";
import { RelativeTime } from "../../components/Time";
import { ValuesTable, ValueView } from "../../components/ValueView";
import type { GraphStep } from "../../graph/model";
import { latestAttempts, runGraph } from "../../graph/runGraph";
import { WorkflowGraph } from "../../graph/WorkflowGraph";
import { formatDateTime, formatDuration, secondsBetween } from "../../lib/format";
import { useNow } from "../../lib/useNow";
import { to, useProject } from "../auth/project";
import { RunLogs } from "./RunLogs";
import { originText } from "./origin";

function Timing({ label, iso }: { label: string; iso: string | null | undefined }) {
  return (
    <Text size="sm">
      <Text span c="dimmed">
        {label}:{" "}
      </Text>
      {iso ? <RelativeTime iso={iso} /> : "—"}
    </Text>
  );
}

function ExecutionCard({ execution }: { execution: Execution }) {
  const now = useNow();
  const seconds = execution.duration_seconds ?? secondsBetween(execution.started_at, execution.ended_at, now);
  return (
    <Card withBorder padding="sm">
      <Group justify="space-between" mb={4}>
        <Text size="sm" fw={600}>
          {execution.branch ? `Branch ${execution.branch}` : "Execution"}
          {execution.attempt > 1 ? ` · attempt ${execution.attempt}` : ""}
        </Text>
        <StateBadge state={execution.state} />
      </Group>
      {execution.state === "running" && (
        <Progress value={Math.round(execution.progress * 100)} animated size="sm" mb="xs" aria-label="Progress" />
      )}
      <Table verticalSpacing={2} fz="sm" aria-label="Timings">
        <Table.Tbody>
          <Table.Tr>
            <Table.Th scope="row" w="35%">Site</Table.Th>
            <Table.Td>{execution.site_name ?? "—"}</Table.Td>
          </Table.Tr>
          <Table.Tr>
            <Table.Th scope="row">Created</Table.Th>
            <Table.Td>{formatDateTime(execution.created_at)}</Table.Td>
          </Table.Tr>
          <Table.Tr>
            <Table.Th scope="row">Started</Table.Th>
            <Table.Td>{formatDateTime(execution.started_at)}</Table.Td>
          </Table.Tr>
          <Table.Tr>
            <Table.Th scope="row">Ended</Table.Th>
            <Table.Td>{formatDateTime(execution.ended_at)}</Table.Td>
          </Table.Tr>
          <Table.Tr>
            <Table.Th scope="row">Duration</Table.Th>
            <Table.Td>{formatDuration(seconds)}</Table.Td>
          </Table.Tr>
          <Table.Tr>
            <Table.Th scope="row">Log lines</Table.Th>
            <Table.Td>{execution.log_count}</Table.Td>
          </Table.Tr>
          {execution.infra_retries > 0 && (
            <Table.Tr>
              <Table.Th scope="row">Worker losses</Table.Th>
              <Table.Td>{execution.infra_retries} earlier attempt(s) lost with their worker</Table.Td>
            </Table.Tr>
          )}
        </Table.Tbody>
      </Table>
      {execution.error && (
        <Alert color="red" variant="light" title="Error" mt="xs">
          <Text size="sm" style={{ whiteSpace: "pre-wrap" }}>
            {execution.error}
            {execution.http_status ? ` (HTTP ${execution.http_status})` : ""}
          </Text>
          {execution.traceback && (
            <ScrollArea.Autosize mah={240} mt="xs">
              <Code block>{execution.traceback}</Code>
            </ScrollArea.Autosize>
          )}
        </Alert>
      )}
      <Title order={4} size="h6" mt="sm">
        Inputs
      </Title>
      <ValuesTable values={execution.inputs} caption="Inputs" />
      <Title order={4} size="h6" mt="sm">
        Outputs
      </Title>
      {execution.outputs_list ? (
        execution.outputs_list.map((o, i) => <ValuesTable key={i} values={o} caption={`Outputs ${i + 1}`} />)
      ) : (
        <ValuesTable values={execution.outputs} caption="Outputs" />
      )}
    </Card>
  );
}

function StepPanel({ run, step, onShowLogs }: { run: RunDetail; step: GraphStep; onShowLogs: () => void }) {
  const executions = run.steps.filter((e) => e.step_id === step.id);
  const latest = new Set(latestAttempts(executions).map((e) => e.execution_id));
  const ordered = [...executions].sort((a, b) => a.branch.localeCompare(b.branch) || b.attempt - a.attempt);
  return (
    <Stack gap="sm">
      <Group justify="space-between">
        <div>
          <Title order={3} size="h5">
            {step.label}
          </Title>
          <Text size="xs" c="dimmed">
            {step.id} · {step.actionId} {step.version}
          </Text>
        </div>
        {step.status && <StateBadge state={step.status} />}
      </Group>
      <Anchor component="button" type="button" size="sm" onClick={onShowLogs} w="fit-content">
        Show this step&apos;s logs
      </Anchor>
      {ordered.length === 0 ? (
        <Empty>{step.status === "skipped" ? "This step did not run." : "Not started yet."}</Empty>
      ) : (
        ordered.map((e) => (
          <div key={e.execution_id} style={{ opacity: latest.has(e.execution_id) ? 1 : 0.7 }}>
            <ExecutionCard execution={e} />
          </div>
        ))
      )}
    </Stack>
  );
}

function StepsTable({ steps, selected, onSelect }: { steps: GraphStep[]; selected: string | null; onSelect: (id: string) => void }) {
  return (
    <Table.ScrollContainer minWidth={520}>
      <Table highlightOnHover aria-label="Steps of the run">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Step</Table.Th>
            <Table.Th>State</Table.Th>
            <Table.Th>Progress</Table.Th>
            <Table.Th>Details</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {steps.map((s) => (
            <Table.Tr key={s.id} bg={s.id === selected ? "var(--mantine-color-blue-light)" : undefined}>
              <Table.Td>
                <Anchor component="button" type="button" onClick={() => onSelect(s.id)} aria-pressed={s.id === selected}>
                  {s.label}
                </Anchor>
              </Table.Td>
              <Table.Td>{s.status && <StateBadge state={s.status} />}</Table.Td>
              <Table.Td w={140}>
                {s.progress !== null && s.progress !== undefined ? (
                  <Progress value={Math.round(s.progress * 100)} size="sm" aria-label={`${s.label} progress`} />
                ) : (
                  "—"
                )}
              </Table.Td>
              <Table.Td>
                <Text size="sm" c="dimmed">
                  {s.detail ?? ""}
                </Text>
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

export function RunPage() {
  const { name: project, canWrite } = useProject();
  const { runId = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const selected = params.get("step");
  const [logStep, setLogStep] = useState<string | null>(null);
  const [tab, setTab] = useState<string | null>("logs");
  const client = useQueryClient();
  const now = useNow();

  const run = useQuery(runnerQueries.run(project, runId));
  const deployment = useQuery({ ...runnerQueries.deployment(project, run.data?.deployment_id ?? ""), enabled: !!run.data, refetchInterval: false });
  const snapshot = useQuery({ ...studioQueries.snapshot(project, deployment.data?.snapshot_id ?? ""), enabled: !!deployment.data });

  const cancel = useMutation({
    mutationFn: () =>
      unwrap(api.runner.POST("/runner/v1/projects/{project}/runs/{run_id}/cancel", { params: { path: { project, run_id: runId } } })),
    onSuccess: () => {
      notifySuccess("The run is being cancelled.");
      void client.invalidateQueries({ queryKey: runnerQueries.run(project, runId).queryKey });
    },
    onError: (e) => notifyError("The run was not cancelled", e),
  });

  const model = useMemo(() => (run.data ? runGraph(run.data, snapshot.data, now) : { steps: [] }), [run.data, snapshot.data, now]);
  const selectStep = (id: string | null) => {
    const next = new URLSearchParams(params);
    if (id) next.set("step", id);
    else next.delete("step");
    setParams(next, { replace: true });
  };

  if (run.isPending) return <Loading label="Loading the run" />;
  if (run.isError) return <ErrorAlert error={run.error} title="The run could not be read" />;
  const r = run.data;
  const ended = isRunTerminal(r.state);
  const selectedStep = model.steps.find((s) => s.id === selected) ?? null;
  const duration = r.duration_seconds ?? secondsBetween(r.started_at ?? r.created_at, r.ended_at, now);

  return (
    <>
      <PageHeader
        title={`Run of ${r.workflow_name}`}
        subtitle={
          <Group gap="xs">
            <StateBadge state={r.state} size="lg" />
            <Text size="sm" c="dimmed">
              {r.id} · started by {originText(r.origin, "long")} · {formatDuration(duration)}
            </Text>
          </Group>
        }
        actions={
          <>
            <Anchor component={Link} to={to.workflow(project, r.workflow_id)} size="sm">
              Workflow
            </Anchor>
            {!ended && canWrite && (
              <ConfirmButton
                title="Cancel this run?"
                message="Its running steps are stopped; the steps not started yet will not run."
                confirmLabel="Cancel the run"
                onConfirm={() => cancel.mutate()}
                loading={cancel.isPending}
                variant="light"
              >
                Cancel run
              </ConfirmButton>
            )}
          </>
        }
      />
      <Group gap="lg" mb="md">
        <Timing label="Created" iso={r.created_at} />
        <Timing label="Started" iso={r.started_at} />
        <Timing label="Ended" iso={r.ended_at} />
      </Group>
      {r.state === "failed" && (
        <Alert color="red" variant="light" title="The run failed" mb="md" role="alert">
          {r.reason || "no reason given"}
          {r.failed_step_id && (
            <>
              {" "}
              (step{" "}
              <Anchor component="button" type="button" onClick={() => selectStep(r.failed_step_id)}>
                {r.failed_step_id}
              </Anchor>
              {r.http_status ? `, HTTP ${r.http_status}` : ""})
            </>
          )}
        </Alert>
      )}
      {r.state === "cancelled" && r.reason && (
        <Alert color="orange" variant="light" mb="md">
          {r.reason}
        </Alert>
      )}
      {(deployment.isError || snapshot.isError) && (
        <Alert color="yellow" variant="light" mb="md">
          The workflow definition this run used could not be read ({(deployment.error ?? snapshot.error)?.message}): the steps are shown without their links.
        </Alert>
      )}
      <Grid gap="md">
        <Grid.Col span={{ base: 12, lg: selectedStep ? 8 : 12 }}>
          <Card withBorder padding={0}>
            <PanelBoundary resetKeys={[model]}>
              <WorkflowGraph model={model} selectedId={selected} onSelect={selectStep} height={400} label={`Graph of the run of ${r.workflow_name}`} />
            </PanelBoundary>
          </Card>
        </Grid.Col>
        {selectedStep && (
          <Grid.Col span={{ base: 12, lg: 4 }}>
            <Card withBorder component="aside" aria-label={`Step ${selectedStep.label}`}>
              <ScrollArea.Autosize mah={720}>
                <StepPanel
                  run={r}
                  step={selectedStep}
                  onShowLogs={() => {
                    setLogStep(selectedStep.id);
                    setTab("logs");
                  }}
                />
              </ScrollArea.Autosize>
            </Card>
          </Grid.Col>
        )}
      </Grid>
      <Tabs value={tab} onChange={setTab} mt="md" keepMounted>
        <Tabs.List>
          <Tabs.Tab value="logs">Logs</Tabs.Tab>
          <Tabs.Tab value="steps">Steps ({model.steps.length})</Tabs.Tab>
          <Tabs.Tab value="results">Results</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="logs" pt="sm">
          <PanelBoundary>
            <RunLogs
              project={project}
              runId={runId}
              runEnded={ended}
              steps={model.steps.map((s) => ({ id: s.id, label: s.label }))}
              step={logStep}
              onStepChange={setLogStep}
            />
          </PanelBoundary>
        </Tabs.Panel>
        <Tabs.Panel value="steps" pt="sm">
          <StepsTable steps={model.steps} selected={selected} onSelect={selectStep} />
        </Tabs.Panel>
        <Tabs.Panel value="results" pt="sm">
          {r.state === "completed" ? (
            <ValuesTable values={r.results} caption="Results of the run" />
          ) : r.results ? (
            <ValueView value={r.results} />
          ) : (
            <Empty>{ended ? "This run has no results." : "The results come when the run completes."}</Empty>
          )}
        </Tabs.Panel>
      </Tabs>
    </>
  );
}
