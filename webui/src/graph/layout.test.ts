import { describe, expect, it } from "vitest";

import { demoWorkflow } from "../../test/fixtures/demo";
import { GRID_X, GRID_Y, gridToPixels, layout, layoutSteps, NODE_HEIGHT, NODE_WIDTH, overlapping, pixelsToGrid } from "./layout";
import { workflowGraph } from "./workflowGraph";

describe("the saved positions", () => {
  it("are grid cells: the YAML's {x: 1, y: 2} is a column and a row, not pixels", () => {
    expect(gridToPixels({ x: 1, y: 2 })).toEqual({ x: GRID_X, y: 2 * GRID_Y });
    expect(pixelsToGrid({ x: GRID_X * 1.5, y: -GRID_Y / 8 })).toEqual({ x: 1.5, y: -0.125 });
  });

  it("lay the demo out on its grid, with no two steps on top of each other", () => {
    const model = workflowGraph(demoWorkflow(), new Map());
    const positions = layout(model);
    expect(positions.get("api")).toEqual({ x: 0, y: 0 });
    expect(positions.get("report")).toEqual({ x: 0, y: GRID_Y });
    expect(positions.get("shout")).toEqual({ x: -GRID_X, y: 3 * GRID_Y });
    expect(positions.get("slug")).toEqual({ x: GRID_X, y: 3 * GRID_Y });
    const boxes = [...positions.values()].map((at) => ({ at, size: { width: NODE_WIDTH, height: NODE_HEIGHT } }));
    expect(overlapping(boxes)).toBe(false);
  });

  it("fall back to an automatic layout when a step has none, or when steps collapse", () => {
    const missing = layoutSteps([
      { id: "a", parents: [], position: { x: 0, y: 0 } },
      { id: "b", parents: ["a"], position: null },
    ]);
    expect(missing.source).toBe("auto");
    expect(missing.positions.get("b")!.x).toBeGreaterThan(missing.positions.get("a")!.x);
    const collapsed = layoutSteps([
      { id: "a", parents: [], position: { x: 0, y: 0 } },
      { id: "b", parents: ["a"], position: { x: 0.1, y: 0.1 } },
    ]);
    expect(collapsed.source).toBe("auto");
    expect(overlapping([...collapsed.positions.values()].map((at) => ({ at, size: { width: NODE_WIDTH, height: NODE_HEIGHT } })))).toBe(false);
  });
});
