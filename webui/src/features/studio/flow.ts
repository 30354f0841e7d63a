/**
 * The model as @xyflow/react nodes and edges, built so that what did not change keeps its
 * identity (memoized nodes do not render again when another step moves or is edited).
 */
import { MarkerType, type Edge } from "@xyflow/react";

import { layoutSteps, pixelsToGrid, SNAP, type LayoutSource, type XY } from "../../graph/layout";
import { EDITOR_NODE_WIDTH, editorNodeHeight, type EditorFlowNode, type EditorNodeData } from "./nodeModel";
import {
  actionOf,
  inputHandle,
  isTrigger,
  LINK_IN,
  LINK_OUT,
  outputHandle,
  outputsOf,
  parentsOf,
  type Catalogue,
  type EditorDoc,
  type EditorStep,
  type ProblemsIndex,
  type StepProblems,
} from "./model";

export interface FlowCache {
  data: Map<string, EditorNodeData>;
  nodes: Map<string, EditorFlowNode>;
  edges: Map<string, Edge>;
  problems: Map<string, { key: string; value: StepProblems }>;
  /** The model's nodes last merged into the live ones. */
  applied: Map<string, EditorFlowNode>;
}

export function newFlowCache(): FlowCache {
  return { data: new Map(), nodes: new Map(), edges: new Map(), problems: new Map(), applied: new Map() };
}

function stableProblems(cache: FlowCache, id: string, value: StepProblems | undefined): StepProblems | undefined {
  if (!value) {
    cache.problems.delete(id);
    return undefined;
  }
  const key = JSON.stringify(value.all);
  const seen = cache.problems.get(id);
  if (seen && seen.key === key) return seen.value;
  cache.problems.set(id, { key, value });
  return value;
}

function dataOf(cache: FlowCache, step: EditorStep, catalogue: Catalogue, problems: StepProblems | undefined): EditorNodeData {
  const action = actionOf(catalogue, step);
  const p = stableProblems(cache, step.id, problems);
  const seen = cache.data.get(step.id);
  if (seen && seen.step === step && seen.action === action && seen.problems === p) return seen;
  const data: EditorNodeData = { step, action, outputs: outputsOf(step, action), trigger: isTrigger(step, catalogue), problems: p };
  cache.data.set(step.id, data);
  return data;
}

export function nodeSize(step: EditorStep, catalogue: Catalogue): { width: number; height: number } {
  const action = actionOf(catalogue, step);
  return { width: EDITOR_NODE_WIDTH, height: editorNodeHeight(action, outputsOf(step, action).length, isTrigger(step, catalogue)) };
}

/** Where each step is: its saved grid position, or the automatic layout when not every step has one. */
export function placeSteps(doc: EditorDoc, catalogue: Catalogue): { positions: Map<string, XY>; source: LayoutSource } {
  const parents = parentsOf(doc);
  const sizes = new Map(doc.steps.map((s) => [s.id, nodeSize(s, catalogue)]));
  return layoutSteps(
    doc.steps.map((s) => ({ id: s.id, parents: parents.get(s.id) ?? [], position: s.position })),
    (id) => sizes.get(id) ?? { width: EDITOR_NODE_WIDTH, height: 100 },
    0.5,
  );
}

/** A pixel position snapped to the editor's grid, in grid cells (what the studio stores). */
export function snappedGrid(p: XY): XY {
  return pixelsToGrid({ x: Math.round(p.x / SNAP[0]) * SNAP[0], y: Math.round(p.y / SNAP[1]) * SNAP[1] });
}

export function buildNodes(
  cache: FlowCache,
  doc: EditorDoc,
  catalogue: Catalogue,
  problems: ProblemsIndex,
  positions: Map<string, XY>,
  selectedId: string | null,
  editable: boolean,
): EditorFlowNode[] {
  const next = new Map<string, EditorFlowNode>();
  const nodes = doc.steps.map((step) => {
    const data = dataOf(cache, step, catalogue, problems.steps.get(step.id));
    const position = positions.get(step.id) ?? { x: 0, y: 0 };
    const selected = step.id === selectedId;
    const seen = cache.nodes.get(step.id);
    const node: EditorFlowNode =
      seen && seen.data === data && seen.position.x === position.x && seen.position.y === position.y && Boolean(seen.selected) === selected
        ? seen
        : {
            id: step.id,
            type: "editor",
            position,
            data,
            selected,
            draggable: editable,
            connectable: editable,
            deletable: editable,
            ariaLabel: `Step ${step.id}${data.action ? ` (${data.action.human_name || data.action.action_id})` : ""}${
              data.problems ? `, ${data.problems.all.length} problem(s)` : ""
            }`,
          };
    next.set(step.id, node);
    return node;
  });
  cache.nodes = next;
  return nodes;
}

/**
 * The live nodes (measured by the flow, maybe being dragged) with the model's changes: a node the
 * model did not change stays as it is live; a changed one keeps its measures (and its place while
 * it is dragged).
 */
export function mergeNodes(cache: FlowCache, current: EditorFlowNode[], next: EditorFlowNode[]): EditorFlowNode[] {
  const byId = new Map(current.map((n) => [n.id, n]));
  const merged = next.map((n) => {
    const live = byId.get(n.id);
    if (!live) return n;
    if (cache.applied.get(n.id) === n) return live;
    return live.dragging ? { ...n, measured: live.measured, position: live.position, dragging: true } : { ...n, measured: live.measured };
  });
  cache.applied = new Map(next.map((n) => [n.id, n]));
  return merged;
}

const LINK_STYLE = { stroke: "var(--mantine-color-gray-6)", strokeWidth: 2 };
const REF_STYLE = { stroke: "var(--mantine-color-blue-5)", strokeWidth: 1.5 };
const BAD_STYLE = { stroke: "var(--mantine-color-red-6)", strokeWidth: 2 };

/** Links (step to step, grey arrows) and references (output to input, blue). */
export function buildEdges(cache: FlowCache, doc: EditorDoc, catalogue: Catalogue, problems: ProblemsIndex, editable: boolean): Edge[] {
  const byId = new Map(doc.steps.map((s) => [s.id, s]));
  const next = new Map<string, Edge>();
  const keep = (edge: Edge, key: string): Edge => {
    const seen = cache.edges.get(edge.id);
    const found = seen && (seen.data as { key?: string } | undefined)?.key === key ? seen : { ...edge, data: { key } };
    next.set(edge.id, found);
    return found;
  };
  const edges: Edge[] = [];
  for (const s of doc.steps) {
    for (const c of s.streamsTo) {
      if (!byId.has(c)) continue;
      const id = `link:${s.id}>${c}`;
      edges.push(
        keep(
          {
            id,
            source: s.id,
            target: c,
            sourceHandle: LINK_OUT,
            targetHandle: LINK_IN,
            markerEnd: { type: MarkerType.ArrowClosed },
            style: LINK_STYLE,
            deletable: editable,
            ariaLabel: `Link ${s.id} to ${c}`,
          },
          id,
        ),
      );
    }
  }
  for (const s of doc.steps) {
    const action = actionOf(catalogue, s);
    if (!action || isTrigger(s, catalogue)) continue;
    const inputs = new Set(action.inputs.map((i) => i.name));
    for (const [input, v] of Object.entries(s.inputs)) {
      if (v.mode !== "reference" || !inputs.has(input)) continue;
      const source = byId.get(v.step);
      if (!source || !outputsOf(source, actionOf(catalogue, source)).some((o) => o.name === v.output)) continue;
      const bad = problems.steps.get(s.id)?.inputs.has(input) ?? false;
      const id = `ref:${s.id}.${input}`;
      edges.push(
        keep(
          {
            id,
            source: v.step,
            target: s.id,
            sourceHandle: outputHandle(v.output),
            targetHandle: inputHandle(input),
            style: bad ? BAD_STYLE : REF_STYLE,
            deletable: editable,
            ariaLabel: `${s.id}.${input} takes ${v.step}.${v.output}`,
          },
          `${id}<${v.step}.${v.output}${bad ? "!" : ""}`,
        ),
      );
    }
  }
  cache.edges = next;
  return edges;
}
