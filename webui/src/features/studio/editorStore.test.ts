import { describe, expect, it } from "vitest";

import { ApiError } from "../../api/errors";
import type { Workflow } from "../../api/types";
import { demoWorkflow } from "../../../test/fixtures/demo";
import { EditorStore } from "./editorStore";
import type { EditOp } from "./model";

/** A studio whose answers the test releases one by one. */
function fakeStudio(start: Workflow) {
  let current = start;
  const calls: { op: EditOp; resolve: () => void; reject: (e: unknown) => void }[] = [];
  const send = (op: EditOp) =>
    new Promise<Workflow>((resolve, reject) => {
      calls.push({
        op,
        resolve: () => {
          if (op.type === "moveSteps") {
            const to = new Map(op.moves.map((m) => [m.id, m.position]));
            current = { ...current, updated_at: new Date(Date.parse(current.updated_at) + 1000).toISOString(), steps: current.steps.map((s) => (to.has(s.id) ? { ...s, position: to.get(s.id) ?? null } : s)) };
          }
          if (op.type === "addLink") {
            current = { ...current, steps: current.steps.map((s) => (s.id === op.from ? { ...s, streams_to: [...s.streams_to, op.to] } : s)) };
          }
          if (op.type === "removeLink") {
            current = {
              ...current,
              steps: current.steps.map((s) => (s.id === op.from ? { ...s, streams_to: s.streams_to.filter((c) => c !== op.to) } : s)),
              problems: [{ code: "reference_not_upstream", message: "not upstream", step_id: op.to, input: "text", line: null, path: null, file: null }],
              valid: false,
            };
          }
          resolve(current);
        },
        reject,
      });
    });
  return { send, calls };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("EditorStore", () => {
  it("shows an edit at once, sends edits one at a time, and takes each answer with the rest still applied", async () => {
    const studio = fakeStudio(demoWorkflow());
    const store = new EditorStore(demoWorkflow(), studio.send);
    const untouched = store.getSnapshot().doc.steps.find((s) => s.id === "api");
    store.edit({ type: "moveSteps", moves: [{ id: "log", position: { x: 3, y: 5 } }] });
    store.edit({ type: "removeLink", from: "api", to: "report" });
    let snap = store.getSnapshot();
    expect(snap.saveState).toBe("saving");
    expect(snap.pending).toBe(2);
    expect(snap.doc.steps.find((s) => s.id === "log")?.position).toEqual({ x: 3, y: 5 });
    expect(snap.doc.steps.find((s) => s.id === "api")?.streamsTo).toEqual([]);
    expect(studio.calls).toHaveLength(1); // one at a time

    studio.calls[0]?.resolve();
    await tick();
    snap = store.getSnapshot();
    expect(snap.pending).toBe(1);
    // the queued unlink is still shown on top of the first answer
    expect(snap.doc.steps.find((s) => s.id === "api")?.streamsTo).toEqual([]);
    expect(studio.calls).toHaveLength(2);

    studio.calls[1]?.resolve();
    await store.flush();
    snap = store.getSnapshot();
    expect(snap.saveState).toBe("saved");
    expect(snap.saved).toBe(2);
    expect(snap.workflow.problems.map((p) => p.code)).toEqual(["reference_not_upstream"]);
    // what did not change keeps its identity (its node does not render again)
    expect(snap.doc.steps.find((s) => s.id === "api")).not.toBe(untouched);
    expect(snap.doc.steps.find((s) => s.id === "shout")).toBe(store.getSnapshot().doc.steps.find((s) => s.id === "shout"));
  });

  it("drops a refused edit and those queued after it, and keeps the refusal", async () => {
    const studio = fakeStudio(demoWorkflow());
    const store = new EditorStore(demoWorkflow(), studio.send);
    store.edit({ type: "addLink", from: "log", to: "report" }, { type: "setInput", step: "report", input: "title", value: { mode: "static", value: "x" } });
    studio.calls[0]?.reject(new ApiError({ status: 400, code: "invalid_input", detail: "would make a cycle" }));
    await store.flush();
    const snap = store.getSnapshot();
    expect(snap.saveState).toBe("failed");
    expect(snap.failed).toEqual({ type: "addLink", from: "log", to: "report" });
    expect((snap.error as ApiError).message).toBe("would make a cycle");
    expect(snap.doc.steps.find((s) => s.id === "log")?.streamsTo).toEqual([]);
    expect(snap.doc.steps.find((s) => s.id === "report")?.inputs.title).toEqual({ mode: "static", value: "Posted text" });
    expect(studio.calls).toHaveLength(1);
    store.dismissError();
    expect(store.getSnapshot().saveState).toBe("saved");
  });

  it("says unsaved while a field holds text, and takes newer answers from elsewhere only when idle", async () => {
    const studio = fakeStudio(demoWorkflow());
    const store = new EditorStore(demoWorkflow(), studio.send);
    store.setDirty("input:join.separator", true);
    expect(store.getSnapshot().saveState).toBe("unsaved");
    store.setDirty("input:join.separator", false);
    expect(store.getSnapshot().saveState).toBe("saved");

    const older = demoWorkflow({ updated_at: "2025-12-31T00:00:00Z", name: "older" });
    store.receive(older);
    expect(store.getSnapshot().doc.name).toBe("Word count demo");
    store.receive(demoWorkflow({ updated_at: "2026-01-02T00:00:00Z", name: "renamed elsewhere" }));
    expect(store.getSnapshot().doc.name).toBe("renamed elsewhere");

    store.edit({ type: "moveSteps", moves: [{ id: "log", position: { x: 1, y: 1 } }] });
    store.receive(demoWorkflow({ updated_at: "2026-02-01T00:00:00Z", name: "while saving" }));
    expect(store.getSnapshot().doc.name).toBe("renamed elsewhere");
    studio.calls[0]?.resolve();
    await store.flush();
  });

  it("undoes and redoes an edit by sending the edits that bring the model back, and forgets history an import replaced", async () => {
    const studio = fakeStudio(demoWorkflow());
    const store = new EditorStore(demoWorkflow(), studio.send);
    expect(store.getSnapshot().canUndo).toBe(false);
    expect(store.undo()).toBe(false);
    store.edit({ type: "removeLink", from: "api", to: "report" });
    studio.calls[0]?.resolve();
    await store.flush();
    expect(store.getSnapshot().canUndo).toBe(true);

    expect(store.undo()).toBe(true);
    let snap = store.getSnapshot();
    expect(snap.doc.steps.find((s) => s.id === "api")?.streamsTo).toContain("report");
    expect(snap.canUndo).toBe(false);
    expect(snap.canRedo).toBe(true);
    expect(studio.calls[1]?.op).toEqual({ type: "addLink", from: "api", to: "report" });
    studio.calls[1]?.resolve();
    await store.flush();

    expect(store.redo()).toBe(true);
    expect(studio.calls[2]?.op).toEqual({ type: "removeLink", from: "api", to: "report" });
    studio.calls[2]?.resolve();
    await store.flush();
    snap = store.getSnapshot();
    expect(snap.canUndo).toBe(true);
    expect(snap.canRedo).toBe(false);

    // a new edit ends what could be redone; an import ends the history
    store.edit({ type: "moveSteps", moves: [{ id: "log", position: { x: 9, y: 9 } }] });
    expect(store.getSnapshot().canRedo).toBe(false);
    studio.calls[3]?.resolve();
    await store.flush();
    store.receive(demoWorkflow({ updated_at: "2027-01-01T00:00:00Z" }), { force: true });
    expect(store.getSnapshot().canUndo).toBe(false);
  });

  it("forgets the history of an edit the studio refused", async () => {
    const studio = fakeStudio(demoWorkflow());
    const store = new EditorStore(demoWorkflow(), studio.send);
    store.edit({ type: "moveSteps", moves: [{ id: "log", position: { x: 2, y: 2 } }] });
    studio.calls[0]?.resolve();
    await store.flush();
    store.edit({ type: "addLink", from: "log", to: "report" });
    studio.calls[1]?.reject(new ApiError({ status: 400, code: "invalid_input", detail: "would make a cycle" }));
    await tick();
    // undo goes back over the move (the refused link was never made)
    expect(store.getSnapshot().canUndo).toBe(true);
    expect(store.undo()).toBe(true);
    expect(studio.calls[2]?.op.type).toBe("moveSteps");
    studio.calls[2]?.resolve();
    await store.flush();
    expect(store.getSnapshot().canUndo).toBe(false);
  });
});
