import { Badge, Group, Text, Tooltip } from "@mantine/core";
import { IconAlertCircle, IconBolt, IconKey, IconLink } from "@tabler/icons-react";
import { Handle, Position, useUpdateNodeInternals, type NodeProps } from "@xyflow/react";
import { memo, useEffect } from "react";

import type { ActionIO } from "../../api/types";
import {
  inputHandle,
  LINK_IN,
  LINK_OUT,
  outputHandle,
  shortMessage,
  type InputValue,
} from "./model";
import { EDITOR_NODE_WIDTH, editorNodeHeight, shownInputs, type EditorFlowNode } from "./nodeModel";
import classes from "./EditorNode.module.css";

function valueText(v: InputValue | undefined, io: ActionIO): string {
  if (!v) return io.has_default ? `default ${JSON.stringify(io.default)}` : io.optional ? "optional" : "—";
  if (v.mode === "reference") return `← ${v.step}.${v.output}`;
  if (v.mode === "secret") return `secret ${v.name}`;
  if (v.mode === "file") return `${v.directory ? "directory" : "file"} ${v.name}`;
  if (io.type === "password") return "••••";
  return JSON.stringify(v.value);
}

/**
 * A step in the editor: a row per input (a target handle on the left) and per output (a source
 * handle on the right), the step's own handles on its title (links), its problems in red.
 */
export const EditorNode = memo(function EditorNode({ id, data, selected }: NodeProps<EditorFlowNode>) {
  const { step, action, outputs, trigger, problems } = data;
  const inputs = shownInputs(action, trigger);
  // The flow measures a node's handles when its size changes: a handle added or removed without
  // a change of size (a trigger's first declared output) must be measured again, or an edge
  // cannot start from it.
  const handles = [...inputs.map((io) => inputHandle(io.name)), ...outputs.map((io) => outputHandle(io.name))].join(" ");
  const updateNodeInternals = useUpdateNodeInternals();
  useEffect(() => {
    updateNodeInternals(id);
  }, [id, handles, updateNodeInternals]);
  const stepProblems = problems?.all ?? [];
  const title = step.humanName || action?.human_name || step.actionId;
  return (
    <div
      className={classes.node}
      data-selected={selected || undefined}
      data-problems={stepProblems.length > 0 || undefined}
      style={{ width: EDITOR_NODE_WIDTH, minHeight: editorNodeHeight(action, outputs.length, trigger) }}
    >
      {!trigger && <Handle type="target" id={LINK_IN} position={Position.Left} className={classes.linkHandle} style={{ top: 18 }} title="Runs after (link)" />}
      <Handle type="source" id={LINK_OUT} position={Position.Right} className={classes.linkHandle} style={{ top: 18 }} title="Then (link)" />
      <div className={classes.header}>
        <Group gap={4} wrap="nowrap" justify="space-between">
          <Group gap={4} wrap="nowrap" style={{ minWidth: 0 }}>
            {trigger && <IconBolt size={14} aria-label="trigger" color="var(--mantine-color-violet-6)" />}
            <Text fw={600} size="sm" truncate="end">
              {title}
            </Text>
          </Group>
          {stepProblems.length > 0 && (
            <Tooltip label={stepProblems.map(shortMessage).join("\n")} multiline w={320} withinPortal>
              <Badge size="xs" color="red" variant="filled" leftSection={<IconAlertCircle size={10} aria-hidden />} aria-label={`${stepProblems.length} problem(s)`}>
                {stepProblems.length}
              </Badge>
            </Tooltip>
          )}
        </Group>
        <Text size="xs" c="dimmed" truncate="end">
          {step.id} · {step.actionId} {step.version}
          {!action && " (not in the store)"}
        </Text>
        {problems && problems.step.length > 0 && (
          <Text size="xs" c="red" truncate="end" title={problems.step.map(shortMessage).join("\n")}>
            {problems.step[0] ? shortMessage(problems.step[0]) : ""}
          </Text>
        )}
      </div>
      <div className={classes.rows}>
        <div className={classes.column}>
          {inputs.map((io) => {
            const v = step.inputs[io.name];
            const bad = problems?.inputs.get(io.name);
            return (
              <div key={io.name} className={classes.row} data-bad={bad ? true : undefined} title={bad ? bad.map(shortMessage).join("\n") : `${io.name}: ${io.type}`}>
                <Handle
                  type="target"
                  id={inputHandle(io.name)}
                  position={Position.Left}
                  className={classes.ioHandle}
                  data-type={io.type}
                  isConnectable={io.type !== "password"}
                />
                <span className={classes.ioName}>
                  {v?.mode === "secret" && <IconKey size={10} aria-hidden />}
                  {v?.mode === "reference" && <IconLink size={10} aria-hidden />} {io.name}
                  {!io.optional && !io.has_default && "*"}
                </span>
                <span className={classes.ioValue}>{valueText(v, io)}</span>
              </div>
            );
          })}
        </div>
        <div className={classes.column} data-side="out">
          {outputs.map((io) => (
            <div key={io.name} className={classes.row} data-side="out" title={`${io.name}: ${io.type}`}>
              <span className={classes.ioName}>{io.name}</span>
              <span className={classes.ioType}>{io.type}</span>
              <Handle type="source" id={outputHandle(io.name)} position={Position.Right} className={classes.ioHandle} data-type={io.type} />
            </div>
          ))}
        </div>
      </div>
    </div>
  );
});
