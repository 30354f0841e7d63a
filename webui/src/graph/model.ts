/**
 * The workflow graph as the UI draws it, whatever it comes from: a run (live states), a
 * workflow's definition (validation problems), and later the studio editor (which adds editing
 * callbacks to the same components).
 */

/** A step's state in a run: the runner's execution states, plus "pending" (not created yet)
 * and "skipped" (the run ended without running it). */
export type StepStatus =
  | "pending"
  | "waiting"
  | "dispatched"
  | "running"
  | "completed"
  | "failed"
  | "cancelled"
  | "skipped";

export interface GraphStep {
  id: string;
  label: string;
  actionId: string;
  version: string;
  kind?: "trigger" | "processor" | "publisher" | undefined;
  /** Upstream steps: an edge goes from each of them to this step. */
  parents: string[];
  /** A saved position (the studio's); else the layout places the step. */
  position?: { x: number; y: number } | null | undefined;
  status?: StepStatus | undefined;
  /** 0..1 while running. */
  progress?: number | null | undefined;
  /** A short line under the title: timings, branches, attempts. */
  detail?: string | undefined;
  /** Validation problems of the step (definition view, editor). */
  problems?: string[] | undefined;
}

export interface GraphModel {
  steps: GraphStep[];
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
}

/** The edges of a model; parents that are not steps of the model are ignored. */
export function edgesOf(model: GraphModel): GraphEdge[] {
  const ids = new Set(model.steps.map((s) => s.id));
  return model.steps.flatMap((step) =>
    step.parents.filter((p) => ids.has(p)).map((p) => ({ id: `${p}->${step.id}`, source: p, target: step.id })),
  );
}
