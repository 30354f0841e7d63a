import "@xyflow/react/dist/style.css";

import { useComputedColorScheme } from "@mantine/core";
import {
  applyNodeChanges,
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  useReactFlow,
  type IsValidConnection,
  type NodeChange,
  type NodeTypes,
  type OnConnect,
  type OnDelete,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent } from "react";

import { SNAP, type XY } from "../../graph/layout";
import { EditorNode } from "./EditorNode";
import { buildEdges, buildNodes, mergeNodes, newFlowCache, snappedGrid } from "./flow";
import { checkConnection, type Catalogue, type EditOp, type EditorDoc, type ProblemsIndex } from "./model";
import type { EditorFlowNode } from "./nodeModel";

export const ACTION_MIME = "application/x-ryax-action";

const defaultNodeTypes: NodeTypes = { editor: EditorNode };

export interface EditorCanvasProps {
  doc: EditorDoc;
  catalogue: Catalogue;
  problems: ProblemsIndex;
  /** Pixel positions of the steps (saved grid positions or the automatic layout). */
  positions: Map<string, XY>;
  selectedId: string | null;
  onSelect: (stepId: string | null) => void;
  editable: boolean;
  onEdit: (ops: EditOp[]) => void;
  /** An edge the rules refuse, or a drop that is not an action. */
  onRefuse: (reason: string) => void;
  /** An action dropped on the canvas, at this grid position. */
  onDropAction: (key: string, position: XY) => void;
  height?: number | string;
  /** Tests count renders with their own node type. */
  nodeTypes?: NodeTypes;
}

function Canvas({
  doc,
  catalogue,
  problems,
  positions,
  selectedId,
  onSelect,
  editable,
  onEdit,
  onRefuse,
  onDropAction,
  height = "100%",
  nodeTypes = defaultNodeTypes,
}: EditorCanvasProps) {
  const scheme = useComputedColorScheme("light");
  const flow = useReactFlow();
  const [cache] = useState(newFlowCache);
  const modelNodes = useMemo(
    () => buildNodes(cache, doc, catalogue, problems, positions, selectedId, editable),
    [cache, doc, catalogue, problems, positions, selectedId, editable],
  );
  const edges = useMemo(() => buildEdges(cache, doc, catalogue, problems, editable), [cache, doc, catalogue, problems, editable]);
  const [nodes, setNodes] = useState<EditorFlowNode[]>(modelNodes);
  const [shown, setShown] = useState(modelNodes);
  if (shown !== modelNodes) {
    // the model changed (an edit, an answer): take it, keeping what only the canvas knows
    setShown(modelNodes);
    setNodes((current) => mergeNodes(cache, current, modelNodes));
  }

  // The handlers read the latest model without being re-created (no re-render of the flow).
  const latest = useRef({ doc, catalogue, nodes, onEdit, onRefuse, onSelect, onDropAction });
  useEffect(() => {
    latest.current = { doc, catalogue, nodes, onEdit, onRefuse, onSelect, onDropAction };
  });

  const onNodesChange = useCallback((changes: NodeChange<EditorFlowNode>[]) => {
    setNodes((current) => applyNodeChanges(changes, current));
    const moves: { id: string; position: XY }[] = [];
    for (const c of changes) {
      if (c.type === "position" && c.dragging === false && c.position) moves.push({ id: c.id, position: snappedGrid(c.position) });
      if (c.type === "select" && c.selected) latest.current.onSelect(c.id);
    }
    if (moves.length > 0) latest.current.onEdit([{ type: "moveSteps", moves }]);
  }, []);

  const isValidConnection: IsValidConnection = useCallback((c) => {
    const { doc: d, catalogue: cat } = latest.current;
    return checkConnection(d, cat, { source: c.source, target: c.target, sourceHandle: c.sourceHandle ?? null, targetHandle: c.targetHandle ?? null }).ok;
  }, []);

  const onConnect: OnConnect = useCallback((c) => {
    const { doc: d, catalogue: cat, onEdit: edit, onRefuse: refuse } = latest.current;
    const check = checkConnection(d, cat, c);
    if (check.ok) edit(check.ops);
    else refuse(check.reason);
  }, []);

  // A refused edge is explained when the user lets go (isValidConnection only greys it out).
  const onConnectEnd = useCallback((_: MouseEvent | TouchEvent, state: { isValid: boolean | null; fromHandle: { nodeId: string; id?: string | null; type: string } | null; toHandle: { nodeId: string; id?: string | null } | null }) => {
    if (state.isValid !== false || !state.fromHandle || !state.toHandle) return;
    const { doc: d, catalogue: cat, onRefuse: refuse } = latest.current;
    const from = state.fromHandle.type === "source" ? state.fromHandle : state.toHandle;
    const to = state.fromHandle.type === "source" ? state.toHandle : state.fromHandle;
    const check = checkConnection(d, cat, { source: from.nodeId, sourceHandle: from.id ?? null, target: to.nodeId, targetHandle: to.id ?? null });
    if (!check.ok) refuse(check.reason);
  }, []);

  const onDelete: OnDelete<EditorFlowNode> = useCallback(({ nodes: gone, edges: cut }) => {
    const removed = new Set(gone.map((n) => n.id));
    const ops: EditOp[] = gone.map((n) => ({ type: "removeStep", id: n.id }));
    for (const e of cut) {
      if (removed.has(e.source) || removed.has(e.target)) continue;
      if (e.id.startsWith("link:")) ops.push({ type: "removeLink", from: e.source, to: e.target });
      else if (e.id.startsWith("ref:") && e.targetHandle) ops.push({ type: "unsetInput", step: e.target, input: e.targetHandle.slice(2) });
    }
    latest.current.onEdit(ops);
    if (gone.length > 0) latest.current.onSelect(null);
  }, []);

  const onDragOver = useCallback((e: DragEvent) => {
    if (!e.dataTransfer.types.includes(ACTION_MIME)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  }, []);

  const onDrop = useCallback(
    (e: DragEvent) => {
      const key = e.dataTransfer.getData(ACTION_MIME);
      if (!key) return;
      e.preventDefault();
      const at = flow.screenToFlowPosition({ x: e.clientX, y: e.clientY });
      latest.current.onDropAction(key, snappedGrid(at));
    },
    [flow],
  );

  return (
    <div style={{ height, width: "100%" }} onDragOver={onDragOver} onDrop={onDrop} role="group" aria-label="Workflow canvas">
      <ReactFlow<EditorFlowNode>
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        colorMode={scheme}
        onNodesChange={onNodesChange}
        onConnect={onConnect}
        onConnectEnd={onConnectEnd}
        isValidConnection={isValidConnection}
        onDelete={onDelete}
        onPaneClick={() => onSelect(null)}
        onNodeClick={(_, n) => onSelect(n.id)}
        nodesDraggable={editable}
        nodesConnectable={editable}
        elementsSelectable
        deleteKeyCode={editable ? ["Backspace", "Delete"] : null}
        snapToGrid
        snapGrid={SNAP}
        fitView
        fitViewOptions={{ padding: 0.15, maxZoom: 1.1 }}
        minZoom={0.1}
        connectionRadius={24}
        proOptions={{ hideAttribution: true }}
      >
        <Background gap={SNAP} />
        <Controls />
        {doc.steps.length > 12 && <MiniMap pannable zoomable />}
      </ReactFlow>
    </div>
  );
}

/** The editing canvas: drop actions on it, drag steps, draw links and references, delete. */
export function EditorCanvas(props: EditorCanvasProps) {
  return (
    <ReactFlowProvider>
      <Canvas {...props} />
    </ReactFlowProvider>
  );
}
