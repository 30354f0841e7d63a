import { Alert, Anchor, Button, Card, Code, Group, List, Stack, Text, Title } from "@mantine/core";
import { IconTopologyStar3 } from "@tabler/icons-react";
import { Link, useParams } from "react-router";

import { PageHeader } from "../../components/Page";
import { to, useProject } from "../auth/project";

/**
 * The studio editor is the next slice of the web UI. This page says so plainly, and what to
 * use meanwhile; it does not pretend to edit anything.
 */
export function EditorComingNext() {
  const { name: project } = useProject();
  const { workflowId } = useParams();
  return (
    <>
      <PageHeader title="Studio editor" subtitle="Coming next" />
      <Stack maw={760}>
        <Alert color="blue" variant="light" icon={<IconTopologyStar3 aria-hidden />} title="The visual editor is not in this version of the web UI">
          Editing workflows in the browser (dragging actions from the catalogue, linking outputs to inputs, per-input values,
          secrets and references, step placement and resources, validation on the nodes, YAML import and export) is the next
          part of the web UI to be built. Nothing on this page changes a workflow.
        </Alert>
        <Card withBorder>
          <Title order={3} size="h4" mb="xs">
            Meanwhile
          </Title>
          <List spacing="xs" size="sm">
            <List.Item>
              Write or export the workflow as YAML and import it with the CLI:{" "}
              <Code>ryax workflow import my-workflow.yaml</Code>
            </List.Item>
            <List.Item>
              Change steps, inputs and links by importing the YAML again (<Code>ryax workflow import my-workflow.yaml --replace</Code>), or through the studio API at{" "}
              <Anchor href="/studio/docs" target="_blank" rel="noreferrer">
                /studio/docs
              </Anchor>
              .
            </List.Item>
            <List.Item>
              Deploy, start runs, follow them and read their logs here, in the web UI: the workflow page has all of it.
            </List.Item>
          </List>
        </Card>
        <Group>
          {workflowId ? (
            <Button component={Link} to={to.workflow(project, workflowId)} variant="default">
              Back to the workflow
            </Button>
          ) : (
            <Button component={Link} to={to.dashboard(project)} variant="default">
              Back to the dashboard
            </Button>
          )}
        </Group>
        <Text size="xs" c="dimmed">
          The graph components of the run and workflow pages (src/graph) are built for the editor to reuse.
        </Text>
      </Stack>
    </>
  );
}
