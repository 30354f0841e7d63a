import { describe, expect, it } from "vitest";

import { execution, run, snapshot } from "../../test/fixtures/runner";
import { edgesOf } from "./model";
import { latestAttempts, runGraph, stepProgress, stepStatus } from "./runGraph";

describe("stepStatus", () => {
  it("is pending without execution while the run goes on, skipped once it ended", () => {
    expect(stepStatus([], "running")).toBe("pending");
    expect(stepStatus([], "completed")).toBe("skipped");
    expect(stepStatus([], "failed")).toBe("skipped");
  });

  it("lets what is going on win over what ended", () => {
    expect(stepStatus([{ state: "completed" }, { state: "running" }], "running")).toBe("running");
    expect(stepStatus([{ state: "completed" }, { state: "dispatched" }], "running")).toBe("dispatched");
    expect(stepStatus([{ state: "waiting" }, { state: "failed" }], "running")).toBe("waiting");
  });

  it("shows an attempt lost with its worker as waiting for the next one, failed once the run ended", () => {
    expect(stepStatus([{ state: "lost" }], "running")).toBe("waiting");
    expect(stepStatus([{ state: "completed" }, { state: "lost" }], "failed")).toBe("failed");
  });

  it("reports a failure before a cancellation, and completed only when all are", () => {
    expect(stepStatus([{ state: "completed" }, { state: "failed" }, { state: "cancelled" }], "failed")).toBe("failed");
    expect(stepStatus([{ state: "completed" }, { state: "cancelled" }], "cancelled")).toBe("cancelled");
    expect(stepStatus([{ state: "completed" }, { state: "completed" }], "completed")).toBe("completed");
  });
});

describe("latestAttempts", () => {
  it("keeps the last attempt of each branch (a retried failure that now runs is running)", () => {
    const latest = latestAttempts([
      execution({ step_id: "a", state: "failed", attempt: 1 }),
      execution({ step_id: "a", state: "running", attempt: 2 }),
      execution({ step_id: "a", state: "completed", branch: "split:1" }),
    ]);
    expect(latest.map((e) => [e.branch, e.attempt, e.state])).toEqual([
      ["", 2, "running"],
      ["split:1", 1, "completed"],
    ]);
    expect(stepStatus(latest, "running")).toBe("running");
  });
});

describe("stepProgress", () => {
  it("averages branches, a completed one counting as done", () => {
    expect(stepProgress([{ state: "running", progress: 0.5 }, { state: "completed", progress: 0 }])).toBe(0.75);
    expect(stepProgress([{ state: "running", progress: 3 }])).toBe(1);
    expect(stepProgress([])).toBeNull();
  });
});

describe("runGraph", () => {
  it("maps every snapshot step with its links and live state", () => {
    const r = run({
      steps: [
        execution({ step_id: "trigger", state: "completed", is_trigger: true, duration_seconds: 0.2 }),
        execution({ step_id: "split", state: "running", progress: 0.4, started_at: "2026-01-01T10:00:00Z" }),
      ],
    });
    const model = runGraph(r, snapshot(), Date.parse("2026-01-01T10:00:30Z"));
    const byId = Object.fromEntries(model.steps.map((s) => [s.id, s]));
    expect(Object.keys(byId)).toEqual(["trigger", "split", "a", "b"]);
    expect(byId.trigger).toMatchObject({ status: "completed", progress: 1, kind: "trigger", label: "TRIGGER", detail: "200 ms · local" });
    expect(byId.split).toMatchObject({ status: "running", progress: 0.4, detail: "30 s · local" });
    expect(byId.a).toMatchObject({ status: "pending", progress: null });
    expect(byId.b).toMatchObject({ status: "pending", kind: "publisher" });
    expect(edgesOf(model).map((e) => e.id)).toEqual(["trigger->split", "split->a", "split->b"]);
  });

  it("shows branches, attempts and steps that never ran once the run failed", () => {
    const r = run({
      state: "failed",
      steps: [
        execution({ step_id: "trigger", state: "completed" }),
        execution({ step_id: "split", state: "completed" }),
        execution({ step_id: "a", state: "completed", branch: "split:0" }),
        execution({ step_id: "a", state: "failed", branch: "split:1", attempt: 3 }),
      ],
    });
    const byId = Object.fromEntries(runGraph(r, snapshot()).steps.map((s) => [s.id, s]));
    expect(byId.a).toMatchObject({ status: "failed", detail: "1/2 branches · attempt 3", progress: null });
    expect(byId.b).toMatchObject({ status: "skipped" });
  });

  it("still shows the executions without the snapshot (no links)", () => {
    const r = run({ steps: [execution({ step_id: "x", state: "completed", is_trigger: true })] });
    const model = runGraph(r, undefined);
    expect(model.steps).toMatchObject([{ id: "x", status: "completed", kind: "trigger", parents: [] }]);
  });
});
