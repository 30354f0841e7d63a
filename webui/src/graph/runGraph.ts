/**
 * A run as a graph: the snapshot the run's deployment used gives the steps and their links;
 * the run's executions give each step's live state, progress, attempts and timings.
 */
import type { Execution, RunDetail, Snapshot } from "../api/types";
import { formatDuration, secondsBetween } from "../lib/format";
import type { GraphModel, GraphStep, StepStatus } from "./model";

const TERMINAL_RUN = new Set(["completed", "failed", "cancelled"]);

/** The executions that count: the last attempt of each branch of the step. */
export function latestAttempts(executions: Execution[]): Execution[] {
  const byBranch = new Map<string, Execution>();
  for (const e of executions) {
    const seen = byBranch.get(e.branch);
    if (!seen || e.attempt > seen.attempt) byBranch.set(e.branch, e);
  }
  return [...byBranch.values()];
}

/**
 * One state for a step from the last attempts of its branches: anything still going on wins,
 * then a failure, then a cancellation; all completed is completed. A step without execution is
 * pending while the run goes on, skipped once it has ended. An attempt lost with its worker is
 * waiting for its next attempt while the run goes on, and failed once the run has ended.
 */
export function stepStatus(latest: Pick<Execution, "state">[], runState: string): StepStatus {
  const ended = TERMINAL_RUN.has(runState);
  if (latest.length === 0) return ended ? "skipped" : "pending";
  const states = new Set(latest.map((e) => (e.state === "lost" ? (ended ? "failed" : "waiting") : e.state)));
  for (const s of ["running", "dispatched", "waiting", "failed", "cancelled"] as const) {
    if (states.has(s)) return s;
  }
  if ([...states].every((s) => s === "completed")) return "completed";
  // a state this UI does not know yet: show it as going on rather than done
  return "running";
}

/** Mean progress of the step's branches (a completed branch counts as 1). */
export function stepProgress(latest: Pick<Execution, "state" | "progress">[]): number | null {
  if (latest.length === 0) return null;
  const values = latest.map((e) => (e.state === "completed" ? 1 : Math.min(1, Math.max(0, e.progress || 0))));
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function stepDetail(latest: Execution[], now: number): string | undefined {
  if (latest.length === 0) return undefined;
  const parts: string[] = [];
  if (latest.length > 1) {
    const done = latest.filter((e) => e.state === "completed").length;
    parts.push(`${done}/${latest.length} branches`);
  }
  const attempts = Math.max(...latest.map((e) => e.attempt));
  if (attempts > 1) parts.push(`attempt ${attempts}`);
  if (latest.length === 1) {
    const e = latest[0];
    if (e) {
      const seconds = e.duration_seconds ?? (e.started_at && !e.ended_at ? secondsBetween(e.started_at, null, now) : null);
      if (seconds !== null) parts.push(formatDuration(seconds));
      if (e.site_name) parts.push(e.site_name);
    }
  }
  return parts.join(" · ") || undefined;
}

export function runGraph(run: RunDetail, snapshot: Snapshot | undefined, now = Date.now()): GraphModel {
  const byStep = new Map<string, Execution[]>();
  for (const e of run.steps) {
    const list = byStep.get(e.step_id) ?? [];
    list.push(e);
    byStep.set(e.step_id, list);
  }
  const build = (id: string, base: Omit<GraphStep, "status" | "progress" | "detail">): GraphStep => {
    const latest = latestAttempts(byStep.get(id) ?? []);
    const status = stepStatus(latest, run.state);
    return {
      ...base,
      status,
      progress: status === "running" || status === "completed" ? stepProgress(latest) : null,
      detail: stepDetail(latest, now),
    };
  };
  if (snapshot) {
    const known = new Set(snapshot.steps.map((s) => s.step_id));
    const steps = snapshot.steps.map((s) =>
      build(s.step_id, {
        id: s.step_id,
        label: s.human_name || s.step_id,
        actionId: s.action_id,
        version: s.action_version,
        kind: s.action_kind,
        parents: s.parent_step_ids,
      }),
    );
    // executions of steps the snapshot does not list (should not happen) are still shown
    for (const [id, executions] of byStep) {
      if (!known.has(id)) {
        steps.push(build(id, { id, label: id, actionId: "", version: "", kind: executions[0]?.is_trigger ? "trigger" : undefined, parents: [] }));
      }
    }
    return { steps };
  }
  // Without the snapshot: the steps the run has executions of, without links.
  return {
    steps: [...byStep.entries()].map(([id, executions]) =>
      build(id, { id, label: id, actionId: "", version: "", kind: executions[0]?.is_trigger ? "trigger" : undefined, parents: [] }),
    ),
  };
}
