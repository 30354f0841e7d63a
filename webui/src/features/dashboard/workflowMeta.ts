import type { StoreAction, Workflow, WorkflowSummary } from "../../api/types";

/** What a dashboard card shows beyond the summary: the trigger and the categories. */
export interface WorkflowMeta {
  /** The trigger step's action, as a person reads it ("HTTP endpoint", "Timer"...). */
  trigger: string | null;
  triggerActionId: string | null;
  /** Every category of the actions the workflow uses. */
  categories: string[];
}

export type Catalogue = Map<string, StoreAction>;

export function catalogueIndex(actions: StoreAction[]): Catalogue {
  return new Map(actions.map((a) => [`${a.action_id}@${a.version}`, a]));
}

/**
 * The trigger is the step whose action is of kind `trigger`; when the catalogue does not know
 * the action (removed from the store), the step no other step streams to.
 */
export function workflowMeta(workflow: Pick<Workflow, "steps">, catalogue: Catalogue): WorkflowMeta {
  const actionOf = (s: { action_id: string; version: string }) => catalogue.get(`${s.action_id}@${s.version}`);
  const fed = new Set(workflow.steps.flatMap((s) => s.streams_to));
  const trigger =
    workflow.steps.find((s) => actionOf(s)?.kind === "trigger") ??
    workflow.steps.find((s) => !fed.has(s.id));
  const categories = new Set<string>();
  for (const step of workflow.steps) for (const c of actionOf(step)?.categories ?? []) categories.add(c);
  const action = trigger ? actionOf(trigger) : undefined;
  return {
    trigger: trigger ? action?.human_name || trigger.action_id : null,
    triggerActionId: trigger?.action_id ?? null,
    categories: [...categories].sort((a, b) => a.localeCompare(b)),
  };
}

/** The deployment state a card shows: the studio's, or "not_deployed". */
export function deploymentState(w: Pick<WorkflowSummary, "deployment">): string {
  return w.deployment?.state ?? "not_deployed";
}

export interface DashboardFilter {
  text: string;
  state: string | null;
  trigger: string | null;
  category: string | null;
}

export function matches(w: WorkflowSummary, meta: WorkflowMeta | undefined, f: DashboardFilter): boolean {
  const text = f.text.trim().toLowerCase();
  if (text && !w.name.toLowerCase().includes(text) && !w.description.toLowerCase().includes(text)) return false;
  if (f.state && deploymentState(w) !== f.state) return false;
  if (f.trigger && meta?.trigger !== f.trigger) return false;
  if (f.category && !meta?.categories.includes(f.category)) return false;
  return true;
}
