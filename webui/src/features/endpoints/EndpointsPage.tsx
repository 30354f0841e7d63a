import { Badge, Button, Card, Code, Group, Stack, Table, Text, Title } from "@mantine/core";
import { IconDownload } from "@tabler/icons-react";
import { useQuery } from "@tanstack/react-query";
import { useMemo } from "react";

import { apiOrigin } from "../../api/client";
import { saveBlob } from "../../api/download";
import { runnerQueries } from "../../api/queries";
import { CopyField } from "../../components/CopyField";
import { ErrorAlert } from "../../components/ErrorAlert";
import { Empty, Loading, PageHeader } from "../../components/Page";
import { useProject } from "../auth/project";
import { readEndpoints } from "./endpointsDoc";

/** The project's HTTP endpoints (its deployed workflows started by an HTTP trigger). */
export function EndpointsPage() {
  const { name: project } = useProject();
  const doc = useQuery(runnerQueries.endpointsOpenapi(project));
  const endpoints = useMemo(() => readEndpoints(doc.data), [doc.data]);
  const docPath = `/runner/v1/projects/${encodeURIComponent(project)}/endpoints/openapi.json`;
  return (
    <>
      <PageHeader
        title="HTTP endpoints"
        subtitle="Each deployed workflow whose trigger is an HTTP endpoint, as the project's OpenAPI document describes it"
        actions={
          <Button
            variant="default"
            leftSection={<IconDownload size={16} aria-hidden />}
            disabled={!doc.data}
            onClick={() => saveBlob(new Blob([JSON.stringify(doc.data, null, 2)], { type: "application/json" }), `${project}-endpoints.openapi.json`)}
          >
            Download openapi.json
          </Button>
        }
      />
      <Stack>
        <CopyField label="OpenAPI document (needs the bearer token)" value={apiOrigin() + docPath} />
        {doc.isPending && <Loading label="Loading the endpoints" />}
        {doc.isError && <ErrorAlert error={doc.error} title="The endpoints' OpenAPI could not be read" />}
        {doc.isSuccess &&
          (endpoints.length === 0 ? (
            <Empty>No deployed workflow of this project is started by an HTTP endpoint.</Empty>
          ) : (
            endpoints.map((e) => (
              <Card withBorder key={e.path} component="article" aria-label={`Endpoint ${e.workflowName}`}>
                <Group justify="space-between" mb="xs">
                  <Title order={3} size="h5">
                    {e.workflowName}
                  </Title>
                  <Group gap={4}>
                    {e.media.map((m) => (
                      <Badge key={m} variant="light" color="gray" tt="none">
                        {m}
                      </Badge>
                    ))}
                  </Group>
                </Group>
                {e.summary && (
                  <Text size="sm" c="dimmed" mb="xs">
                    {e.summary}
                  </Text>
                )}
                <CopyField label="POST" value={apiOrigin() + e.path} />
                {e.fields.length > 0 && (
                  <Table mt="sm" verticalSpacing={4} fz="sm" aria-label={`Fields of ${e.workflowName}`}>
                    <Table.Thead>
                      <Table.Tr>
                        <Table.Th>Field</Table.Th>
                        <Table.Th>Type</Table.Th>
                        <Table.Th>Description</Table.Th>
                      </Table.Tr>
                    </Table.Thead>
                    <Table.Tbody>
                      {e.fields.map((f) => (
                        <Table.Tr key={f.name}>
                          <Table.Td>
                            <Code>{f.name}</Code> {f.required && <Badge size="xs" color="red" variant="light">required</Badge>}
                          </Table.Td>
                          <Table.Td>{f.enum.length > 0 ? `one of ${f.enum.join(", ")}` : f.type}</Table.Td>
                          <Table.Td>{f.description}</Table.Td>
                        </Table.Tr>
                      ))}
                    </Table.Tbody>
                  </Table>
                )}
              </Card>
            ))
          ))}
      </Stack>
    </>
  );
}
