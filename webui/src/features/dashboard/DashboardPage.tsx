import {
  Anchor,
  Badge,
  Button,
  Card,
  Group,
  Modal,
  Select,
  SimpleGrid,
  Stack,
  Text,
  Textarea,
  TextInput,
} from "@mantine/core";
import { useDebouncedValue, useDisclosure } from "@mantine/hooks";
import { IconApi, IconBolt, IconPlus, IconSearch } from "@tabler/icons-react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { memo, useMemo, useState, type SubmitEvent } from "react";
import { Link, useNavigate } from "react-router";

import { api, unwrap } from "../../api/client";
import { studioQueries } from "../../api/queries";
import type { WorkflowSummary } from "../../api/types";
import { ErrorAlert } from "../../components/ErrorAlert";
import { Empty, Loading, PageHeader } from "../../components/Page";
import { StateBadge } from "../../components/StateBadge";
import { stateLabel } from "../../components/states";
import { RelativeTime } from "../../components/Time";
import { to, useProject } from "../auth/project";
import { deploymentState, matches, triggerName, type DashboardFilter } from "./workflowMeta";

function NewWorkflow({ project }: { project: string }) {
  const [opened, { open, close }] = useDisclosure(false);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const navigate = useNavigate();
  const client = useQueryClient();
  const create = useMutation({
    mutationFn: () =>
      unwrap(
        api.studio.POST("/studio/v1/projects/{project}/workflows", {
          params: { path: { project } },
          body: { name: name.trim(), description },
        }),
      ),
    onSuccess: (workflow) => {
      void client.invalidateQueries({ queryKey: studioQueries.workflows(project).queryKey });
      close();
      setName("");
      setDescription("");
      void navigate(to.editor(project, workflow.id));
    },
  });
  const submit = (e: SubmitEvent) => {
    e.preventDefault();
    create.mutate();
  };
  return (
    <>
      <Button leftSection={<IconPlus size={16} aria-hidden />} onClick={open}>
        New workflow
      </Button>
      <Modal opened={opened} onClose={close} title="New workflow" centered>
        <form onSubmit={submit}>
          <Stack>
            {create.isError && <ErrorAlert error={create.error} title="The workflow was not created" />}
            <TextInput
              label="Name"
              description="Unique in the project; it names the HTTP endpoint too"
              required
              data-autofocus
              maxLength={200}
              value={name}
              onChange={(e) => setName(e.currentTarget.value)}
            />
            <Textarea label="Description" autosize minRows={2} value={description} onChange={(e) => setDescription(e.currentTarget.value)} />
            <Group justify="flex-end">
              <Button variant="default" onClick={close}>
                Cancel
              </Button>
              <Button type="submit" loading={create.isPending} disabled={!name.trim()}>
                Create
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
    </>
  );
}

const WorkflowCard = memo(function WorkflowCard({ project, workflow }: { project: string; workflow: WorkflowSummary }) {
  const state = deploymentState(workflow);
  const reason = workflow.deployment?.reason;
  return (
    <Card withBorder padding="md" component="article" aria-label={`Workflow ${workflow.name}`}>
      <Group justify="space-between" wrap="nowrap" align="flex-start" gap="xs">
        <Anchor component={Link} to={to.workflow(project, workflow.id)} fw={600} style={{ wordBreak: "break-word" }}>
          {workflow.name}
        </Anchor>
        <StateBadge state={state} />
      </Group>
      {workflow.description && (
        <Text size="sm" c="dimmed" lineClamp={2} mt={4}>
          {workflow.description}
        </Text>
      )}
      {reason && state !== "deployed" && (
        <Text size="xs" c={state === "failed" ? "red" : "dimmed"} mt={4} lineClamp={2}>
          {reason}
        </Text>
      )}
      <Group gap={6} mt="sm">
        <Badge variant="outline" color="violet" leftSection={<IconBolt size={12} aria-hidden />} tt="none" title={workflow.trigger?.action_id}>
          {triggerName(workflow) ?? "no trigger"}
        </Badge>
        {workflow.categories.slice(0, 3).map((c) => (
          <Badge key={c} variant="light" color="gray" tt="none">
            {c}
          </Badge>
        ))}
      </Group>
      <Text size="xs" c="dimmed" mt="sm">
        {workflow.steps} step{workflow.steps === 1 ? "" : "s"} · updated <RelativeTime iso={workflow.updated_at} />
      </Text>
    </Card>
  );
});

export function DashboardPage() {
  const { name: project } = useProject();
  const workflows = useQuery(studioQueries.workflows(project));
  const [text, setText] = useState("");
  const [debounced] = useDebouncedValue(text, 150);
  const [state, setState] = useState<string | null>(null);
  const [trigger, setTrigger] = useState<string | null>(null);
  const [category, setCategory] = useState<string | null>(null);

  // The list carries each workflow's trigger and categories: one request for every card.
  const list = useMemo(() => workflows.data?.workflows ?? [], [workflows.data]);

  const options = useMemo(() => {
    const states = new Set<string>();
    const triggers = new Set<string>();
    const categories = new Set<string>();
    for (const w of list) {
      states.add(deploymentState(w));
      const name = triggerName(w);
      if (name) triggers.add(name);
      for (const c of w.categories) categories.add(c);
    }
    const sorted = (s: Set<string>) => [...s].sort((a, b) => a.localeCompare(b));
    return {
      states: sorted(states).map((s) => ({ value: s, label: stateLabel(s) })),
      triggers: sorted(triggers),
      categories: sorted(categories),
    };
  }, [list]);

  const filter: DashboardFilter = { text: debounced, state, trigger, category };
  const shown = list.filter((w) => matches(w, filter));
  const filtering = Boolean(debounced.trim() || state || trigger || category);

  return (
    <>
      <PageHeader
        title="Dashboard"
        subtitle={`Workflows of ${project}`}
        actions={
          <>
            <Button component={Link} to={to.endpoints(project)} variant="default" leftSection={<IconApi size={16} aria-hidden />}>
              Endpoint OpenAPI
            </Button>
            <NewWorkflow project={project} />
          </>
        }
      />
      <Group mb="md" gap="sm" align="flex-end" wrap="wrap" role="search" aria-label="Filter workflows">
        <TextInput
          label="Search"
          placeholder="Name or description"
          leftSection={<IconSearch size={16} aria-hidden />}
          value={text}
          onChange={(e) => setText(e.currentTarget.value)}
          w={{ base: "100%", sm: 260 }}
        />
        <Select label="State" placeholder="Any state" data={options.states} value={state} onChange={setState} clearable w={190} />
        <Select label="Trigger" placeholder="Any trigger" data={options.triggers} value={trigger} onChange={setTrigger} clearable searchable w={190} />
        <Select label="Category" placeholder="Any category" data={options.categories} value={category} onChange={setCategory} clearable searchable w={190} />
      </Group>
      {workflows.isPending && <Loading label="Loading workflows" />}
      {workflows.isError && <ErrorAlert error={workflows.error} title="The workflows could not be read" />}
      {workflows.isSuccess && (
        <Stack gap="xs">
          <Text size="sm" c="dimmed" aria-live="polite">
            {filtering ? `${shown.length} of ${list.length} workflows` : `${list.length} workflow${list.length === 1 ? "" : "s"}`}
          </Text>
          {list.length === 0 ? (
            <Empty>No workflow yet: create one, or import actions from the Library first.</Empty>
          ) : shown.length === 0 ? (
            <Empty>No workflow matches these filters.</Empty>
          ) : (
            <SimpleGrid cols={{ base: 1, sm: 2, lg: 3, xl: 4 }} spacing="md">
              {shown.map((w) => (
                <WorkflowCard key={w.id} project={project} workflow={w} />
              ))}
            </SimpleGrid>
          )}
        </Stack>
      )}
    </>
  );
}
