import { ActionIcon, Badge, Group, ScrollArea, SegmentedControl, Select, Stack, Text, TextInput, Tooltip } from "@mantine/core";
import { IconGripVertical, IconPlus, IconSearch } from "@tabler/icons-react";
import { memo, useMemo, useState, type DragEvent } from "react";

import type { StoreAction } from "../../api/types";
import { Empty } from "../../components/Page";
import { ActionLogo } from "../library/ActionLogo";
import { ACTION_MIME } from "./EditorCanvas";
import { actionKey } from "./model";
import { paletteActions } from "./palette";

const PaletteItem = memo(function PaletteItem({
  project,
  action,
  editable,
  onAdd,
}: {
  project: string;
  action: StoreAction;
  editable: boolean;
  onAdd: (key: string) => void;
}) {
  const name = action.human_name || action.action_id;
  const key = actionKey(action.action_id, action.version);
  const onDragStart = (e: DragEvent) => {
    e.dataTransfer.setData(ACTION_MIME, key);
    e.dataTransfer.setData("text/plain", key);
    e.dataTransfer.effectAllowed = "copy";
  };
  return (
    <Group
      component="li"
      wrap="nowrap"
      gap={6}
      p={6}
      draggable={editable}
      onDragStart={onDragStart}
      aria-label={`Action ${name}`}
      data-action={key}
      style={{ border: "1px solid var(--mantine-color-default-border)", borderRadius: 6, cursor: editable ? "grab" : "default", listStyle: "none" }}
    >
      {editable && <IconGripVertical size={14} aria-hidden color="var(--mantine-color-dimmed)" />}
      <ActionLogo project={project} action={action} size={28} />
      <Stack gap={0} style={{ minWidth: 0, flex: 1 }}>
        <Text size="sm" fw={500} truncate="end" title={action.description || name}>
          {name}
        </Text>
        <Group gap={4} wrap="nowrap">
          <Badge size="xs" variant="light" color={action.kind === "trigger" ? "violet" : action.kind === "publisher" ? "orange" : "blue"}>
            {action.kind}
          </Badge>
          <Text size="xs" c="dimmed" truncate="end">
            {action.action_id} {action.version}
          </Text>
        </Group>
      </Stack>
      {editable && (
        <Tooltip label="Add to the workflow">
          <ActionIcon variant="subtle" onClick={() => onAdd(key)} aria-label={`Add ${name} to the workflow`}>
            <IconPlus size={16} aria-hidden />
          </ActionIcon>
        </Tooltip>
      )}
    </Group>
  );
});

/** The catalogue beside the canvas: search, kind, category; drag an action onto the canvas (or +). */
export function Palette({ project, actions, editable, onAdd }: { project: string; actions: StoreAction[]; editable: boolean; onAdd: (key: string) => void }) {
  const [text, setText] = useState("");
  const [kind, setKind] = useState("all");
  const [category, setCategory] = useState<string | null>(null);
  const categories = useMemo(() => [...new Set(actions.flatMap((a) => a.categories))].sort((a, b) => a.localeCompare(b)), [actions]);
  const shown = useMemo(() => paletteActions(actions, { text, kind, category }), [actions, text, kind, category]);
  return (
    <Stack gap="xs" h="100%" component="section" aria-label="Actions catalogue">
      <TextInput
        size="xs"
        label="Search actions"
        placeholder="Name, id, category"
        leftSection={<IconSearch size={14} aria-hidden />}
        value={text}
        onChange={(e) => setText(e.currentTarget.value)}
      />
      <SegmentedControl
        size="xs"
        fullWidth
        value={kind}
        onChange={setKind}
        aria-label="Kind of action"
        data={[
          { value: "all", label: "All" },
          { value: "trigger", label: "Triggers" },
          { value: "processor", label: "Processors" },
          { value: "publisher", label: "Publishers" },
        ]}
      />
      <Select size="xs" label="Category" placeholder="Any category" data={categories} value={category} onChange={setCategory} clearable searchable />
      <ScrollArea style={{ flex: 1 }} type="auto" offsetScrollbars>
        {shown.length === 0 ? (
          <Empty>{actions.length === 0 ? "No action is ready: build some in the Library." : "No action matches."}</Empty>
        ) : (
          <Stack component="ul" gap={6} p={0} m={0} aria-label="Actions">
            {shown.map((a) => (
              <PaletteItem key={a.action_id} project={project} action={a} editable={editable} onAdd={onAdd} />
            ))}
          </Stack>
        )}
      </ScrollArea>
      {editable && (
        <Text size="xs" c="dimmed">
          Drag an action onto the canvas. Draw from an output (right) to an input (left) to pass a value; from a step&apos;s square handle to
          another&apos;s to run it after.
        </Text>
      )}
    </Stack>
  );
}
