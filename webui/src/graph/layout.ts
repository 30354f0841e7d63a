import dagre from "@dagrejs/dagre";

import { edgesOf, type GraphModel } from "./model";

export const NODE_WIDTH = 240;
export const NODE_HEIGHT = 96;

/**
 * A step's saved `position` is in grid cells, as the published YAML writes it (`{x: 0, y: 1}`:
 * first column, second row) and as the editor saves it (fractions of a cell once moved by
 * hand): one cell is GRID_X by GRID_Y pixels on the canvas.
 */
export const GRID_X = 320;
export const GRID_Y = 200;
/** The editor snaps to an eighth of a cell, so saved positions stay short decimals (0.125). */
export const SNAP: [number, number] = [GRID_X / 8, GRID_Y / 8];

export interface XY {
  x: number;
  y: number;
}

export interface Size {
  width: number;
  height: number;
}

/** Grid cells (saved) -> canvas pixels (top-left corner of the node). */
export function gridToPixels(p: XY): XY {
  return { x: p.x * GRID_X, y: p.y * GRID_Y };
}

/** Canvas pixels -> grid cells, rounded to a thousandth of a cell. */
export function pixelsToGrid(p: XY): XY {
  const round = (v: number) => Math.round(v * 1000) / 1000 || 0;
  return { x: round(p.x / GRID_X), y: round(p.y / GRID_Y) };
}

export interface LayoutStep {
  id: string;
  parents: string[];
  position?: XY | null | undefined;
}

/** How many of these boxes overlap another one (a collapsed layout has many). */
export function overlapCount(placed: { at: XY; size: Size }[]): number {
  const sorted = [...placed].sort((a, b) => a.at.x - b.at.x);
  const hit = new Set<number>();
  for (let i = 0; i < sorted.length; i++) {
    const a = sorted[i];
    if (!a) continue;
    for (let j = i + 1; j < sorted.length; j++) {
      const b = sorted[j];
      if (!b) continue;
      if (b.at.x >= a.at.x + a.size.width) break;
      if (b.at.y < a.at.y + a.size.height && a.at.y < b.at.y + b.size.height) {
        hit.add(i);
        hit.add(j);
      }
    }
  }
  return hit.size;
}

export function overlapping(placed: { at: XY; size: Size }[]): boolean {
  return overlapCount(placed) > 0;
}

export type LayoutSource = "saved" | "auto";

/**
 * Where each step is drawn (pixels, top-left corners): its saved grid position when every step
 * has one and the steps do not fall on top of each other; otherwise a left-to-right layered
 * layout (dagre) of the whole graph, `source: "auto"`. `tolerance` is the share of steps that may
 * overlap another before the saved layout counts as collapsed (0 for a read-only graph; the
 * editor lets a user put a step over another without the whole layout changing).
 */
export function layoutSteps(
  steps: LayoutStep[],
  sizeOf: (id: string) => Size = () => ({ width: NODE_WIDTH, height: NODE_HEIGHT }),
  tolerance = 0,
): { positions: Map<string, XY>; source: LayoutSource } {
  const positions = new Map<string, XY>();
  if (steps.length > 0 && steps.every((s) => s.position)) {
    const placed = steps.map((s) => ({ id: s.id, at: gridToPixels(s.position ?? { x: 0, y: 0 }), size: sizeOf(s.id) }));
    if (overlapCount(placed) <= tolerance * steps.length) {
      for (const p of placed) positions.set(p.id, p.at);
      return { positions, source: "saved" };
    }
  }
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 32, ranksep: 72, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  const ids = new Set(steps.map((s) => s.id));
  for (const s of steps) g.setNode(s.id, sizeOf(s.id));
  for (const s of steps) for (const p of s.parents) if (ids.has(p)) g.setEdge(p, s.id);
  dagre.layout(g);
  for (const s of steps) {
    const n = g.node(s.id) as { x: number; y: number } | undefined;
    const { width, height } = sizeOf(s.id);
    // dagre gives centres; the flow wants top-left corners
    positions.set(s.id, n ? { x: n.x - width / 2, y: n.y - height / 2 } : { x: 0, y: 0 });
  }
  return { positions, source: "auto" };
}

/** The read-only graph's layout (run page, workflow page). */
export function layout(model: GraphModel): Map<string, XY> {
  const parents = new Map<string, string[]>();
  for (const e of edgesOf(model)) parents.set(e.target, [...(parents.get(e.target) ?? []), e.source]);
  return layoutSteps(model.steps.map((s) => ({ id: s.id, parents: parents.get(s.id) ?? [], position: s.position }))).positions;
}
