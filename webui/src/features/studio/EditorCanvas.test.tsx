import { act, render } from "@testing-library/react";
import type { NodeProps, NodeTypes } from "@xyflow/react";
import { memo } from "react";
import { describe, expect, it } from "vitest";

import { Providers } from "../../Providers";
import { testQueryClient } from "../../../test/render";
import { ACTIONS, demoWorkflow } from "../../../test/fixtures/demo";
import type { WorkflowStep } from "../../api/types";
import { catalogueIndex } from "../dashboard/workflowMeta";
import { EditorCanvas, type EditorCanvasProps } from "./EditorCanvas";
import { EditorNode } from "./EditorNode";
import { placeSteps } from "./flow";
import { apply, fromWorkflow, indexProblems, type EditorDoc } from "./model";
import type { EditorFlowNode } from "./nodeModel";

const catalogue = catalogueIndex(ACTIONS);

/** A trigger and 99 steps in a chain, on a 10 x 10 grid. */
function bigDoc(): EditorDoc {
  const base = demoWorkflow().steps[0]!;
  const steps: WorkflowStep[] = [{ ...base, position: { x: 0, y: 0 }, streams_to: ["s1"] }];
  for (let i = 1; i < 100; i++) {
    steps.push({
      id: `s${i}`,
      action_id: "uppercase",
      version: "1.0",
      human_name: null,
      position: { x: i % 10, y: Math.floor(i / 10) },
      inputs: { text: { static: null, secret: null, reference: { step: "api", output: "text" }, file: null } },
      outputs: [],
      streams_to: i < 99 ? [`s${i + 1}`] : [],
      settings: base.settings,
    });
  }
  return fromWorkflow(demoWorkflow({ steps }));
}

describe("EditorCanvas with 100 steps", () => {
  it("renders each node once, and again only the node an edit changes", () => {
    const renders = new Map<string, number>();
    const Counting = memo(function Counting(props: NodeProps<EditorFlowNode>) {
      renders.set(props.id, (renders.get(props.id) ?? 0) + 1);
      return <EditorNode {...props} />;
    });
    const nodeTypes: NodeTypes = { editor: Counting };
    let doc = bigDoc();
    const problems = indexProblems([]);
    const props = (d: EditorDoc): EditorCanvasProps => ({
      doc: d,
      catalogue,
      problems,
      positions: placeSteps(d, catalogue).positions,
      selectedId: null,
      onSelect: () => undefined,
      editable: true,
      onEdit: () => undefined,
      onRefuse: () => undefined,
      onDropAction: () => undefined,
      height: 800,
      nodeTypes,
    });
    const client = testQueryClient();
    const t0 = performance.now();
    const view = render(
      <Providers client={client}>
        <EditorCanvas {...props(doc)} />
      </Providers>,
    );
    const firstRender = performance.now() - t0;
    expect(renders.size).toBe(100);
    const afterFirst = new Map(renders);

    // move one step (what a drag ends with), then set an input of another
    doc = apply(doc, { type: "moveSteps", moves: [{ id: "s42", position: { x: 2.5, y: 4.25 } }] });
    doc = apply(doc, { type: "setInput", step: "s7", input: "text", value: { mode: "static", value: "hi" } });
    const t1 = performance.now();
    act(() => {
      view.rerender(
        <Providers client={client}>
          <EditorCanvas {...props(doc)} />
        </Providers>,
      );
    });
    const update = performance.now() - t1;
    const again = [...renders.entries()].filter(([id, n]) => n !== afterFirst.get(id)).map(([id]) => id).sort();
    expect(again).toEqual(["s42", "s7"]);
    // jsdom timings, for the record (the browser test measures the real thing)
    console.info(`100-step canvas: first render ${firstRender.toFixed(0)} ms, an edit ${update.toFixed(0)} ms`);
  });
});
