import { Anchor, Badge, Card, Group, SimpleGrid, Stack, Table, Text, Title } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { useMemo } from "react";
import { Link } from "react-router";

import { runnerQueries } from "../../api/queries";
import type { Site } from "../../api/types";
import { ErrorAlert } from "../../components/ErrorAlert";
import { Empty, Loading, PageHeader } from "../../components/Page";
import { StateBadge } from "../../components/StateBadge";
import { RelativeTime } from "../../components/Time";
import { formatBytes, formatCpu } from "../../lib/format";
import { to, useProject } from "../auth/project";
import { placementsBySite, type Placed } from "./placements";

function SiteCard({ site, placed, project }: { site: Site; placed: Placed[]; project: string }) {
  const labels = Object.entries(site.labels);
  return (
    <Card withBorder component="article" aria-label={`Site ${site.name}`}>
      <Group justify="space-between" mb={4}>
        <Title order={3} size="h4">
          {site.name}
        </Title>
        <StateBadge state={site.state} size="lg" />
      </Group>
      <Text size="sm" c="dimmed">
        {site.backend_kind} backend · worker {site.worker_id} · version {site.version || "?"}
      </Text>
      <Text size="sm" mt={4}>
        Last heartbeat <RelativeTime iso={site.last_seen_at} /> · registered <RelativeTime iso={site.registered_at} />
      </Text>
      {site.state_reason && (
        <Text size="sm" c={site.state === "offline" ? "red" : "dimmed"} mt={4}>
          {site.state_reason}
        </Text>
      )}
      {labels.length > 0 && (
        <Group gap={4} mt="xs">
          {labels.map(([k, v]) => (
            <Badge key={k} variant="outline" color="gray" tt="none" size="sm">
              {k}={v}
            </Badge>
          ))}
        </Group>
      )}
      <Title order={4} size="h6" mt="sm" mb={4}>
        Node pools
      </Title>
      {site.node_pools.length === 0 ? (
        <Text size="sm" c="dimmed">
          None declared.
        </Text>
      ) : (
        <Table verticalSpacing={2} fz="sm" aria-label={`Node pools of ${site.name}`}>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Pool</Table.Th>
              <Table.Th>CPU</Table.Th>
              <Table.Th>Memory</Table.Th>
              <Table.Th>GPU</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {site.node_pools.map((p) => (
              <Table.Tr key={p.name}>
                <Table.Td>{p.name}</Table.Td>
                <Table.Td>{formatCpu(p.cpu)}</Table.Td>
                <Table.Td>{formatBytes(p.memory_bytes)}</Table.Td>
                <Table.Td>{p.gpu}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      <Title order={4} size="h6" mt="sm" mb={4}>
        Deployed here (this project)
      </Title>
      {placed.length === 0 ? (
        <Text size="sm" c="dimmed">
          Nothing.
        </Text>
      ) : (
        <Stack gap={2}>
          {placed.map((p) => (
            <Group key={`${p.deployment.id}/${p.stepId}`} gap="xs" wrap="nowrap">
              <Anchor component={Link} to={to.workflow(project, p.deployment.workflow_id)} size="sm">
                {p.deployment.workflow_name}
              </Anchor>
              <Text size="sm" c="dimmed">
                / {p.stepId}
                {p.nodePool ? ` on ${p.nodePool}` : ""}
              </Text>
              <StateBadge state={p.state} size="xs" />
            </Group>
          ))}
        </Stack>
      )}
    </Card>
  );
}

export function SitesPage() {
  const { name: project } = useProject();
  const sites = useQuery(runnerQueries.sites(project));
  const deployments = useQuery(runnerQueries.deployments(project));
  const placed = useMemo(() => placementsBySite(deployments.data?.deployments ?? []), [deployments.data]);
  const list = sites.data?.sites ?? [];
  const online = list.filter((s) => s.state === "online").length;
  return (
    <>
      <PageHeader
        title="Sites"
        subtitle={sites.data ? `${online} of ${list.length} online · workers register themselves when they connect` : "Where actions run"}
      />
      {sites.isPending && <Loading label="Loading sites" />}
      {sites.isError && <ErrorAlert error={sites.error} title="The sites could not be read" />}
      {deployments.isError && <ErrorAlert error={deployments.error} title="The deployments could not be read: what runs where is unknown" />}
      {sites.data &&
        (list.length === 0 ? (
          <Empty>No site has registered: start a worker (make demo starts one).</Empty>
        ) : (
          <SimpleGrid cols={{ base: 1, md: 2, xl: 3 }}>
            {[...list]
              .sort((a, b) => (a.state === b.state ? a.name.localeCompare(b.name) : a.state === "online" ? -1 : 1))
              .map((s) => (
                <SiteCard key={s.id} site={s} placed={placed.get(s.id) ?? []} project={project} />
              ))}
          </SimpleGrid>
        ))}
    </>
  );
}
