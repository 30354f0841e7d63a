import dagre from "@dagrejs/dagre";

import { edgesOf, type GraphModel } from "./model";

export const NODE_WIDTH = 240;
export const NODE_HEIGHT = 96;

/**
 * Where each step is drawn: the saved positions when every step has one (the studio's
 * layout), otherwise a left-to-right layered layout.
 */
export function layout(model: GraphModel): Map<string, { x: number; y: number }> {
  const out = new Map<string, { x: number; y: number }>();
  if (model.steps.length > 0 && model.steps.every((s) => s.position)) {
    for (const s of model.steps) out.set(s.id, { x: s.position?.x ?? 0, y: s.position?.y ?? 0 });
    return out;
  }
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 32, ranksep: 72, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const s of model.steps) g.setNode(s.id, { width: NODE_WIDTH, height: NODE_HEIGHT });
  for (const e of edgesOf(model)) g.setEdge(e.source, e.target);
  dagre.layout(g);
  for (const s of model.steps) {
    const n = g.node(s.id) as { x: number; y: number } | undefined;
    // dagre gives centres; the flow wants top-left corners
    out.set(s.id, n ? { x: n.x - NODE_WIDTH / 2, y: n.y - NODE_HEIGHT / 2 } : { x: 0, y: 0 });
  }
  return out;
}
