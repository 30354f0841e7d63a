import { Anchor, Button, Card, FileButton, Group, Stack, Table, Text, TextInput } from "@mantine/core";
import { IconPencil, IconPlus, IconUpload } from "@tabler/icons-react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SubmitEvent } from "react";
import { Link, useNavigate } from "react-router";

import { api, unwrap } from "../../api/client";
import { studioQueries } from "../../api/queries";
import { ErrorAlert } from "../../components/ErrorAlert";
import { Empty, Loading, PageHeader } from "../../components/Page";
import { StateBadge } from "../../components/StateBadge";
import { RelativeTime } from "../../components/Time";
import { to, useProject } from "../auth/project";
import { deploymentState } from "../dashboard/workflowMeta";
import { importYaml } from "./send";

/** `/p/:project/studio`: pick a workflow to edit, start a new one, or import a YAML file. */
export function StudioHome() {
  const { name: project, canWrite } = useProject();
  const navigate = useNavigate();
  const client = useQueryClient();
  const workflows = useQuery(studioQueries.workflows(project));
  const [name, setName] = useState("");
  const opened = (id: string) => {
    void client.invalidateQueries({ queryKey: studioQueries.workflows(project).queryKey });
    void navigate(to.editor(project, id));
  };
  const create = useMutation({
    mutationFn: () => unwrap(api.studio.POST("/studio/v1/projects/{project}/workflows", { params: { path: { project } }, body: { name: name.trim(), description: "" } })),
    onSuccess: (w) => opened(w.id),
  });
  const imported = useMutation({
    mutationFn: async (file: File) => importYaml(project, await file.text()),
    onSuccess: (w) => opened(w.id),
  });
  const submit = (e: SubmitEvent) => {
    e.preventDefault();
    create.mutate();
  };
  return (
    <>
      <PageHeader title="Studio" subtitle="Build workflows by dragging actions and linking their outputs to inputs" />
      <Stack maw={900}>
        {canWrite && (
          <Card withBorder>
            <form onSubmit={submit} aria-label="New workflow">
              <Group align="flex-end" gap="sm">
                <TextInput label="New workflow" placeholder="Its name" value={name} onChange={(e) => setName(e.currentTarget.value)} maxLength={200} style={{ flex: 1 }} />
                <Button type="submit" leftSection={<IconPlus size={16} aria-hidden />} loading={create.isPending} disabled={!name.trim()}>
                  Create and edit
                </Button>
                <FileButton accept=".yaml,.yml,application/yaml,text/yaml" onChange={(f) => f && imported.mutate(f)}>
                  {(props) => (
                    <Button variant="default" leftSection={<IconUpload size={16} aria-hidden />} loading={imported.isPending} {...props}>
                      Import YAML
                    </Button>
                  )}
                </FileButton>
              </Group>
            </form>
            {create.isError && <ErrorAlert error={create.error} title="The workflow was not created" />}
            {imported.isError && <ErrorAlert error={imported.error} title="The document was not imported" />}
          </Card>
        )}
        {workflows.isPending && <Loading label="Loading workflows" />}
        {workflows.isError && <ErrorAlert error={workflows.error} title="The workflows could not be read" />}
        {workflows.data &&
          (workflows.data.workflows.length === 0 ? (
            <Empty>No workflow yet.</Empty>
          ) : (
            <Table aria-label="Workflows to edit" highlightOnHover>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Workflow</Table.Th>
                  <Table.Th>Steps</Table.Th>
                  <Table.Th>State</Table.Th>
                  <Table.Th>Updated</Table.Th>
                  <Table.Th />
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {workflows.data.workflows.map((w) => (
                  <Table.Tr key={w.id}>
                    <Table.Td>
                      <Anchor component={Link} to={to.workflow(project, w.id)}>
                        {w.name}
                      </Anchor>
                      {w.description && (
                        <Text size="xs" c="dimmed" lineClamp={1}>
                          {w.description}
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>{w.steps}</Table.Td>
                    <Table.Td>
                      <StateBadge state={deploymentState(w)} />
                    </Table.Td>
                    <Table.Td>
                      <RelativeTime iso={w.updated_at} />
                    </Table.Td>
                    <Table.Td>
                      <Button size="compact-sm" variant="light" component={Link} to={to.editor(project, w.id)} leftSection={<IconPencil size={14} aria-hidden />} aria-label={`Edit ${w.name}`}>
                        Edit
                      </Button>
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          ))}
      </Stack>
    </>
  );
}
