import "@xyflow/react/dist/style.css";

import { useComputedColorScheme } from "@mantine/core";
import { Background, Controls, MiniMap, ReactFlow, type NodeTypes } from "@xyflow/react";
import { useMemo } from "react";

import { toFlow } from "./flow";
import type { GraphModel } from "./model";
import { StepNode } from "./StepNode";

const nodeTypes: NodeTypes = { step: StepNode };

export interface WorkflowGraphProps {
  model: GraphModel;
  /** The selected step (its details are shown beside the graph). */
  selectedId?: string | null;
  onSelect?: (stepId: string | null) => void;
  height?: number | string;
  /** What the graph shows, for assistive technologies. */
  label: string;
}

/**
 * A read-only workflow graph: pan, zoom, select a step (click, or Tab to a step and Enter).
 * The studio editor (features/studio) shares its layout (saved grid positions, else dagre).
 */
export function WorkflowGraph({ model, selectedId = null, onSelect, height = 420, label }: WorkflowGraphProps) {
  const scheme = useComputedColorScheme("light");
  const { nodes, edges } = useMemo(() => toFlow(model, selectedId), [model, selectedId]);
  // Re-fit when the set of steps changes, not on every state update.
  const shape = model.steps.map((s) => s.id).join("|");
  return (
    <div style={{ height, width: "100%" }} role="group" aria-label={label}>
      <ReactFlow
        key={shape}
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        colorMode={scheme}
        fitView
        fitViewOptions={{ padding: 0.15, maxZoom: 1.2 }}
        minZoom={0.2}
        nodesDraggable={false}
        nodesConnectable={false}
        edgesFocusable={false}
        elementsSelectable
        onNodeClick={(_, node) => onSelect?.(node.id)}
        onPaneClick={() => onSelect?.(null)}
        onSelectionChange={({ nodes: selected }) => {
          const first = selected[0];
          if (first && first.id !== selectedId) onSelect?.(first.id);
        }}
      >
        <Background gap={16} />
        <Controls showInteractive={false} />
        {model.steps.length > 12 && <MiniMap pannable zoomable />}
      </ReactFlow>
    </div>
  );
}
