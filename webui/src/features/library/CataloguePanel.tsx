import { Badge, Button, Card, Collapse, Group, Select, SimpleGrid, Stack, Text, TextInput, Title } from "@mantine/core";
import { IconSearch } from "@tabler/icons-react";
import { useQuery } from "@tanstack/react-query";
import { memo, useMemo, useState } from "react";

import { studioQueries } from "../../api/queries";
import type { StoreAction } from "../../api/types";
import { ErrorAlert } from "../../components/ErrorAlert";
import { Empty, Loading } from "../../components/Page";
import { formatBytes, formatCpu, formatDuration } from "../../lib/format";
import { ActionLogo } from "./ActionLogo";
import { groupVersions } from "./catalogue";
import { IOTable } from "./IOTable";

const ActionCard = memo(function ActionCard({ project, versions }: { project: string; versions: StoreAction[] }) {
  const [version, setVersion] = useState(versions[0]?.version ?? "");
  const [open, setOpen] = useState(false);
  const a = versions.find((v) => v.version === version) ?? versions[0];
  if (!a) return null;
  const detailsId = `action-${a.action_id}-details`;
  const r = a.resources;
  const resources = [
    r.cpu ? formatCpu(r.cpu) : null,
    r.memory_bytes ? formatBytes(r.memory_bytes) : null,
    r.gpu ? `${r.gpu} GPU` : null,
    r.time_seconds ? `≤ ${formatDuration(r.time_seconds)}` : null,
  ].filter(Boolean);
  return (
    <Card withBorder component="article" aria-label={`Action ${a.human_name || a.action_id}`}>
      <Group wrap="nowrap" align="flex-start" gap="sm">
        <ActionLogo project={project} action={a} />
        <Stack gap={2} style={{ minWidth: 0, flex: 1 }}>
          <Title order={3} size="h5" style={{ wordBreak: "break-word" }}>
            {a.human_name || a.action_id}
          </Title>
          <Text size="xs" c="dimmed">
            {a.action_id}
          </Text>
        </Stack>
        <Badge variant="light" color={a.kind === "trigger" ? "violet" : a.kind === "publisher" ? "orange" : "blue"}>
          {a.kind}
        </Badge>
      </Group>
      {a.description && (
        <Text size="sm" mt="xs" lineClamp={open ? undefined : 3}>
          {a.description}
        </Text>
      )}
      <Group gap={4} mt="xs">
        {a.categories.map((c) => (
          <Badge key={c} variant="outline" color="gray" tt="none" size="sm">
            {c}
          </Badge>
        ))}
        {a.builtin && (
          <Badge variant="light" color="teal" size="sm">
            built in
          </Badge>
        )}
      </Group>
      <Group mt="sm" justify="space-between" align="flex-end">
        {versions.length > 1 ? (
          <Select
            label="Version"
            size="xs"
            data={versions.map((v) => v.version)}
            value={version}
            onChange={(v) => v && setVersion(v)}
            allowDeselect={false}
            w={140}
          />
        ) : (
          <Text size="xs" c="dimmed">
            version {a.version}
          </Text>
        )}
        <Button size="compact-sm" variant="subtle" onClick={() => setOpen((o) => !o)} aria-expanded={open} aria-controls={detailsId}>
          {open ? "Hide" : "Inputs and outputs"} ({a.inputs.length}/{a.outputs.length})
        </Button>
      </Group>
      <Collapse expanded={open} id={detailsId}>
        <Stack gap="xs" mt="sm">
          <Text size="sm" fw={600}>
            Inputs
          </Text>
          <IOTable rows={a.inputs} label={`Inputs of ${a.action_id}`} />
          <Text size="sm" fw={600}>
            Outputs{a.dynamic_outputs ? " (declared per workflow)" : ""}
          </Text>
          <IOTable rows={a.outputs} label={`Outputs of ${a.action_id}`} />
          {resources.length > 0 && (
            <Text size="xs" c="dimmed">
              Resources: {resources.join(" · ")}
            </Text>
          )}
        </Stack>
      </Collapse>
    </Card>
  );
});

/** The project's action store: what workflows can use (built and ready versions). */
export function CataloguePanel({ project }: { project: string }) {
  const catalogue = useQuery(studioQueries.catalogue(project));
  const [text, setText] = useState("");
  const [kind, setKind] = useState<string | null>(null);
  const [category, setCategory] = useState<string | null>(null);
  const groups = useMemo(() => groupVersions(catalogue.data?.actions ?? []), [catalogue.data]);
  const categories = useMemo(() => [...new Set((catalogue.data?.actions ?? []).flatMap((a) => a.categories))].sort(), [catalogue.data]);
  const needle = text.trim().toLowerCase();
  const shown = groups.filter((versions) =>
    versions.some(
      (a) =>
        (!kind || a.kind === kind) &&
        (!category || a.categories.some((c) => c.toLowerCase() === category.toLowerCase())) &&
        (!needle || [a.action_id, a.human_name, a.description].some((v) => v.toLowerCase().includes(needle))),
    ),
  );
  return (
    <Stack>
      <Group gap="sm" align="flex-end" role="search" aria-label="Filter actions">
        <TextInput label="Search" placeholder="Name, id or description" leftSection={<IconSearch size={14} aria-hidden />} value={text} onChange={(e) => setText(e.currentTarget.value)} />
        <Select label="Kind" placeholder="Any kind" data={["trigger", "processor", "publisher"]} value={kind} onChange={setKind} clearable w={160} />
        <Select label="Category" placeholder="Any category" data={categories} value={category} onChange={setCategory} clearable searchable w={200} />
      </Group>
      {catalogue.isPending && <Loading label="Loading the catalogue" />}
      {catalogue.isError && <ErrorAlert error={catalogue.error} title="The action store could not be read" />}
      {catalogue.data &&
        (groups.length === 0 ? (
          <Empty>No action is ready yet: build action sources to add them here.</Empty>
        ) : shown.length === 0 ? (
          <Empty>No action matches these filters.</Empty>
        ) : (
          <SimpleGrid cols={{ base: 1, md: 2, xl: 3 }}>
            {shown.map((versions) => (
              <ActionCard key={versions[0]?.action_id} project={project} versions={versions} />
            ))}
          </SimpleGrid>
        ))}
    </Stack>
  );
}
