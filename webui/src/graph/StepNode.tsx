import { Badge, Group, Paper, Progress, Text, Tooltip } from "@mantine/core";
import { IconAlertCircle, IconBolt } from "@tabler/icons-react";
import { Handle, Position, type Node, type NodeProps } from "@xyflow/react";
import { memo } from "react";

import { stateColor, stateLabel } from "../components/states";
import { NODE_HEIGHT, NODE_WIDTH } from "./layout";
import type { GraphStep } from "./model";

export type StepNodeData = { step: GraphStep } & Record<string, unknown>;
export type StepFlowNode = Node<StepNodeData, "step">;

/** One step: its name, its action, its state and progress, its problems. */
export const StepNode = memo(function StepNode({ data, selected }: NodeProps<StepFlowNode>) {
  const { step } = data;
  const problems = step.problems ?? [];
  const border = problems.length > 0 ? "var(--mantine-color-red-6)" : step.status ? `var(--mantine-color-${stateColor(step.status)}-6)` : undefined;
  return (
    <Paper
      withBorder
      shadow={selected ? "md" : "xs"}
      p={8}
      w={NODE_WIDTH}
      h={NODE_HEIGHT}
      style={{
        borderColor: border,
        borderWidth: selected ? 2 : 1,
        borderLeftWidth: 5,
        overflow: "hidden",
      }}
    >
      {step.kind !== "trigger" && <Handle type="target" position={Position.Left} isConnectable={false} />}
      <Group gap={4} wrap="nowrap" justify="space-between">
        <Group gap={4} wrap="nowrap" style={{ minWidth: 0 }}>
          {step.kind === "trigger" && <IconBolt size={14} aria-label="trigger" color="var(--mantine-color-violet-6)" />}
          <Text fw={600} size="sm" truncate="end">
            {step.label}
          </Text>
        </Group>
        {step.status && (
          <Badge size="xs" variant="light" color={stateColor(step.status)}>
            {stateLabel(step.status)}
          </Badge>
        )}
      </Group>
      <Text size="xs" c="dimmed" truncate="end">
        {step.actionId ? `${step.actionId} ${step.version}` : step.id}
      </Text>
      {step.detail && (
        <Text size="xs" truncate="end">
          {step.detail}
        </Text>
      )}
      {step.progress !== null && step.progress !== undefined && (
        <Progress
          mt={4}
          size="sm"
          value={Math.round(step.progress * 100)}
          color={step.status === "completed" ? "green" : "blue"}
          animated={step.status === "running"}
          aria-label={`${step.label} progress`}
        />
      )}
      {problems.length > 0 && (
        <Tooltip label={problems.join("\n")} multiline w={300} withinPortal>
          <Group gap={4} mt={2} wrap="nowrap">
            <IconAlertCircle size={14} color="var(--mantine-color-red-6)" aria-hidden />
            <Text size="xs" c="red" truncate="end">
              {problems.length === 1 ? problems[0] : `${problems.length} problems`}
            </Text>
          </Group>
        </Tooltip>
      )}
      <Handle type="source" position={Position.Right} isConnectable={false} />
    </Paper>
  );
});
