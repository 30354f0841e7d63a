import { MarkerType, type Edge } from "@xyflow/react";

import { stateLabel } from "../components/states";
import { layout } from "./layout";
import { edgesOf, type GraphModel } from "./model";
import type { StepFlowNode } from "./StepNode";

/** The model as @xyflow/react nodes and edges (positions from the layout). */
export function toFlow(model: GraphModel, selectedId?: string | null): { nodes: StepFlowNode[]; edges: Edge[] } {
  const positions = layout(model);
  const byId = new Map(model.steps.map((s) => [s.id, s]));
  const nodes: StepFlowNode[] = model.steps.map((step) => ({
    id: step.id,
    type: "step",
    position: positions.get(step.id) ?? { x: 0, y: 0 },
    data: { step },
    selected: step.id === selectedId,
    ariaLabel: `Step ${step.label}${step.status ? `, ${stateLabel(step.status)}` : ""}${
      step.problems && step.problems.length > 0 ? `, ${step.problems.length} problem(s)` : ""
    }`,
  }));
  const edges: Edge[] = edgesOf(model).map((e) => {
    const target = byId.get(e.target);
    const source = byId.get(e.source);
    const flowing = target?.status === "running" || target?.status === "dispatched";
    return {
      ...e,
      animated: flowing,
      markerEnd: { type: MarkerType.ArrowClosed },
      style: source?.status === "completed" ? { stroke: "var(--mantine-color-green-6)" } : undefined,
    };
  });
  return { nodes, edges };
}
