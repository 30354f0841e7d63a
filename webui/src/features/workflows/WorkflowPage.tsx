import { Alert, Anchor, Button, Card, Code, Grid, Group, Stack, Table, Text, Title } from "@mantine/core";
import { IconDownload, IconPencil, IconRefresh, IconRocket, IconRocketOff } from "@tabler/icons-react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useMemo } from "react";
import { Link, useNavigate, useParams } from "react-router";

import { api, unwrap } from "../../api/client";
import { downloadFile } from "../../api/download";
import { isDeploymentSettled, runnerQueries, studioQueries } from "../../api/queries";
import type { Deployment, Workflow } from "../../api/types";
import { PanelBoundary } from "../../components/Boundaries";
import { ConfirmButton } from "../../components/ConfirmButton";
import { CopyField } from "../../components/CopyField";
import { ErrorAlert, ProblemList } from "../../components/ErrorAlert";
import { notifyError, notifySuccess } from "../../components/notify";
import { Empty, Loading, PageHeader } from "../../components/Page";
import { StateBadge } from "../../components/StateBadge";
import { RelativeTime } from "../../components/Time";
import { WorkflowGraph } from "../../graph/WorkflowGraph";
import { workflowGraph } from "../../graph/workflowGraph";
import { to, useProject } from "../auth/project";
import { catalogueIndex } from "../dashboard/workflowMeta";
import { RunsTable } from "../runs/RunsTable";
import { endpointUrl } from "./endpoint";
import { RunForm } from "./RunForm";

const DEPLOYED_LIKE = new Set(["requested", "deploying", "waiting_for_site", "deployed"]);
/** How long a redeploy waits for the undeploy before giving up (it then says so). */
const REDEPLOY_WAIT_MS = 300_000;
const REDEPLOY_POLL_MS = 500;

/** Ask the studio to deploy or to undeploy a workflow. */
function requestDeployment(project: string, workflowId: string, action: "deploy" | "undeploy") {
  const params = { params: { path: { project, workflow: workflowId } } };
  return action === "deploy"
    ? unwrap(api.studio.POST("/studio/v1/projects/{project}/workflows/{workflow}/deploy", params))
    : unwrap(api.studio.POST("/studio/v1/projects/{project}/workflows/{workflow}/undeploy", params));
}

/** Undeploy, wait until the workflow is undeployed, deploy again (as `ryax workflow deploy --redeploy`). */
async function redeployWorkflow(project: string, workflow: Workflow): Promise<void> {
  await requestDeployment(project, workflow.id, "undeploy");
  const params = { params: { path: { project, workflow: workflow.id } } };
  const deadline = Date.now() + REDEPLOY_WAIT_MS;
  for (;;) {
    const current = await unwrap(api.studio.GET("/studio/v1/projects/{project}/workflows/{workflow}", params));
    const state = current.deployment?.state;
    if (!state || state === "undeployed" || state === "failed") break;
    if (Date.now() > deadline) {
      throw new Error(`${workflow.name} is still ${state} after ${REDEPLOY_WAIT_MS / 60_000} minutes: not deployed again`);
    }
    await new Promise((resolve) => setTimeout(resolve, REDEPLOY_POLL_MS));
  }
  await requestDeployment(project, workflow.id, "deploy");
}

function Placements({ deployment }: { deployment: Deployment | undefined }) {
  if (!deployment) return null;
  return (
    <Table.ScrollContainer minWidth={520}>
      <Table aria-label="Where each step is deployed" verticalSpacing={4}>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Step</Table.Th>
            <Table.Th>Site</Table.Th>
            <Table.Th>Node pool</Table.Th>
            <Table.Th>State</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {deployment.steps.map((s) => (
            <Table.Tr key={s.step_id}>
              <Table.Td>{s.step_id}</Table.Td>
              <Table.Td>{s.site_name ?? "—"}</Table.Td>
              <Table.Td>{s.node_pool || "—"}</Table.Td>
              <Table.Td>
                <StateBadge state={s.state} />
                {s.reason && (
                  <Text size="xs" c="dimmed">
                    {s.reason}
                  </Text>
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

function DeploymentCard({ project, workflow, canWrite }: { project: string; workflow: Workflow; canWrite: boolean }) {
  const client = useQueryClient();
  const d = workflow.deployment;
  const state = d?.state ?? "not_deployed";
  const runnerDeployments = useQuery({ ...runnerQueries.deployments(project, workflow.id), enabled: !!d });
  const current = runnerDeployments.data?.deployments.find((x) => x.id === d?.id);
  const refresh = () => {
    void client.invalidateQueries({ queryKey: ["studio", project] });
    void client.invalidateQueries({ queryKey: ["runner", project, "deployments"] });
  };
  const deploy = useMutation({
    mutationFn: () => requestDeployment(project, workflow.id, "deploy"),
    onSuccess: () => {
      notifySuccess(`Deploying ${workflow.name}…`);
      refresh();
    },
  });
  const undeploy = useMutation({
    mutationFn: () => requestDeployment(project, workflow.id, "undeploy"),
    onSuccess: () => {
      notifySuccess(`Undeploying ${workflow.name}…`);
      refresh();
    },
  });
  const redeploy = useMutation({
    mutationFn: () => redeployWorkflow(project, workflow),
    onSuccess: () => notifySuccess(`Deploying ${workflow.name} again…`),
    // Also after a failure: the undeploy may have happened.
    onSettled: refresh,
  });
  const deployedLike = DEPLOYED_LIKE.has(state);
  // Edited after this deployment was asked for: it runs the workflow as it was then.
  const outdated = deployedLike && !!d && Date.parse(workflow.updated_at) > Date.parse(d.requested_at);
  return (
    <Card withBorder component="section" aria-labelledby="deployment-title">
      <Group justify="space-between" mb="xs">
        <Title order={3} size="h4" id="deployment-title">
          Deployment
        </Title>
        <Group gap="xs">
          {!deployedLike && (
            <Button
              leftSection={<IconRocket size={16} aria-hidden />}
              onClick={() => deploy.mutate()}
              loading={deploy.isPending}
              disabled={!canWrite}
              title={!workflow.valid ? "The workflow has problems: deploying will list them" : undefined}
            >
              Deploy
            </Button>
          )}
          {state === "deployed" && (
            <ConfirmButton
              variant="light"
              color="blue"
              leftSection={<IconRefresh size={16} aria-hidden />}
              title={`Redeploy ${workflow.name}?`}
              message="It is undeployed (its trigger stops and runs going on are cancelled), then deployed again: its changes since, and the sites' placement now, apply."
              confirmLabel="Redeploy"
              onConfirm={() => redeploy.mutate()}
              loading={redeploy.isPending}
              disabled={!canWrite}
            >
              Redeploy
            </ConfirmButton>
          )}
          {deployedLike && (
            <ConfirmButton
              variant="light"
              color="orange"
              leftSection={<IconRocketOff size={16} aria-hidden />}
              title={`Undeploy ${workflow.name}?`}
              message="Its trigger stops and runs going on are cancelled."
              confirmLabel="Undeploy"
              onConfirm={() => undeploy.mutate()}
              loading={undeploy.isPending}
              disabled={!canWrite || state === "undeploying"}
            >
              Undeploy
            </ConfirmButton>
          )}
        </Group>
      </Group>
      <Group gap="sm" mb="xs">
        <StateBadge state={state} size="lg" />
        {d && (
          <Text size="sm" c="dimmed">
            requested by {d.requested_by} <RelativeTime iso={d.requested_at} /> · updated <RelativeTime iso={d.updated_at} />
          </Text>
        )}
      </Group>
      {outdated && (
        <Alert color="yellow" variant="light" mb="xs" title="Changed since deployed">
          This deployment runs the workflow as it was when it was deployed: redeploy it to apply the changes.
        </Alert>
      )}
      {d?.reason && (
        <Alert color={state === "failed" ? "red" : state === "waiting_for_site" ? "yellow" : "gray"} variant="light" mb="xs" title="Reason">
          {d.reason}
        </Alert>
      )}
      {!isDeploymentSettled(d?.state) && (
        <Text size="xs" c="dimmed" mb="xs" aria-live="polite">
          Following the deployment live…
        </Text>
      )}
      {deploy.isError && <ErrorAlert error={deploy.error} title="The workflow was not deployed" />}
      {undeploy.isError && <ErrorAlert error={undeploy.error} title="The workflow was not undeployed" />}
      {redeploy.isError && <ErrorAlert error={redeploy.error} title="The workflow was not redeployed" />}
      {runnerDeployments.isError && <ErrorAlert error={runnerDeployments.error} title="The runner's view of the deployment could not be read" />}
      <Placements deployment={current} />
    </Card>
  );
}

function StartRun({ project, workflow }: { project: string; workflow: Workflow }) {
  const navigate = useNavigate();
  const d = workflow.deployment;
  const snapshot = useQuery({ ...studioQueries.snapshot(project, d?.snapshot_id ?? ""), enabled: !!d?.snapshot_id });
  let body;
  if (!d || d.state !== "deployed") {
    body = <Empty>Deploy the workflow to start runs.</Empty>;
  } else if (snapshot.isPending) {
    body = <Loading label="Loading the trigger's inputs" />;
  } else if (snapshot.isError) {
    body = <ErrorAlert error={snapshot.error} title="The deployed definition could not be read" />;
  } else if (!snapshot.data.http_endpoint) {
    body = (
      <Text size="sm">
        Runs of this workflow are started by its trigger (step <Code>{snapshot.data.trigger_step_id}</Code>), not by a form.
      </Text>
    );
  } else {
    body = (
      <Stack>
        <RunForm
          key={snapshot.data.id}
          project={project}
          endpoint={workflow.id}
          fields={snapshot.data.trigger_fields}
          onStarted={(runId) => void navigate(to.run(project, runId))}
        />
        <CopyField label="Endpoint URL" value={endpointUrl(project, workflow.name)} />
        <Text size="xs" c="dimmed">
          <Code>POST</Code> with <Code>Authorization: Bearer …</Code> (a machine token from your account page), a JSON body or
          multipart/form-data; <Code>?mode=async</Code> answers at once with the run id. All endpoints:{" "}
          <Anchor component={Link} to={to.endpoints(project)} size="xs">
            the project&apos;s endpoint OpenAPI
          </Anchor>
          .
        </Text>
      </Stack>
    );
  }
  return (
    <Card withBorder component="section" aria-labelledby="run-title">
      <Title order={3} size="h4" mb="sm" id="run-title">
        New run
      </Title>
      {body}
    </Card>
  );
}

export function WorkflowPage() {
  const { name: project, canWrite } = useProject();
  const { workflowId = "" } = useParams();
  const navigate = useNavigate();
  const client = useQueryClient();
  const workflow = useQuery(studioQueries.workflow(project, workflowId));
  const catalogue = useQuery(studioQueries.catalogue(project));
  const index = useMemo(() => catalogueIndex(catalogue.data?.actions ?? []), [catalogue.data]);
  const model = useMemo(() => (workflow.data ? workflowGraph(workflow.data, index) : { steps: [] }), [workflow.data, index]);
  const remove = useMutation({
    mutationFn: () =>
      unwrap(api.studio.DELETE("/studio/v1/projects/{project}/workflows/{workflow}", { params: { path: { project, workflow: workflowId } } })),
    onSuccess: () => {
      notifySuccess("The workflow was deleted.");
      void client.invalidateQueries({ queryKey: studioQueries.workflows(project).queryKey });
      void navigate(to.dashboard(project));
    },
    onError: (e) => notifyError("The workflow was not deleted", e),
  });

  if (workflow.isPending) return <Loading label="Loading the workflow" />;
  if (workflow.isError) return <ErrorAlert error={workflow.error} title="The workflow could not be read" />;
  const w = workflow.data;

  return (
    <>
      <PageHeader
        title={w.name}
        subtitle={w.description || `${w.steps.length} step${w.steps.length === 1 ? "" : "s"} · updated ${new Date(w.updated_at).toLocaleString()}`}
        actions={
          <>
            <Button component={Link} to={to.editor(project, w.id)} variant="default" leftSection={<IconPencil size={16} aria-hidden />}>
              Edit
            </Button>
            <Button
              variant="default"
              leftSection={<IconDownload size={16} aria-hidden />}
              onClick={() =>
                void downloadFile(
                  `/studio/v1/projects/${encodeURIComponent(project)}/workflows/${encodeURIComponent(w.id)}/export`,
                  `${w.name}.yaml`,
                ).catch((e: unknown) => notifyError("The YAML could not be exported", e))
              }
            >
              Export YAML
            </Button>
            {canWrite && (
              <ConfirmButton
                variant="subtle"
                title={`Delete the workflow ${w.name}?`}
                message="Its deployed snapshots and runs are kept. A deployed workflow must be undeployed first."
                confirmLabel="Delete"
                onConfirm={() => remove.mutate()}
                loading={remove.isPending}
              >
                Delete
              </ConfirmButton>
            )}
          </>
        }
      />
      <Grid gap="md">
        <Grid.Col span={{ base: 12, lg: 7 }}>
          <Stack>
            <DeploymentCard project={project} workflow={w} canWrite={canWrite} />
            {!w.valid && (
              <Alert color="yellow" variant="light" title="This workflow cannot be deployed yet">
                <ProblemList problems={w.problems} />
              </Alert>
            )}
            <Card withBorder padding={0} component="section" aria-label="Graph of the workflow">
              {w.steps.length === 0 ? (
                <Empty>No step yet: open the editor (Edit) to add them.</Empty>
              ) : (
                <PanelBoundary resetKeys={[model]}>
                  <WorkflowGraph model={model} height={340} label={`Graph of the workflow ${w.name}`} />
                </PanelBoundary>
              )}
            </Card>
          </Stack>
        </Grid.Col>
        <Grid.Col span={{ base: 12, lg: 5 }}>
          <StartRun project={project} workflow={w} />
        </Grid.Col>
      </Grid>
      <Card withBorder mt="md" component="section" aria-labelledby="runs-title">
        <Title order={3} size="h4" mb="sm" id="runs-title">
          Runs
        </Title>
        <RunsTable project={project} workflowId={w.id} />
      </Card>
    </>
  );
}
