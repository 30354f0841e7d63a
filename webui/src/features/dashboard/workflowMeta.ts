import type { StoreAction, WorkflowSummary } from "../../api/types";

export type Catalogue = Map<string, StoreAction>;

export function catalogueIndex(actions: StoreAction[]): Catalogue {
  return new Map(actions.map((a) => [`${a.action_id}@${a.version}`, a]));
}

/**
 * The trigger a card shows, from the studio's list itself (no workflow definition nor catalogue
 * read): its action's human name, its action id when the store no longer has the action.
 */
export function triggerName(w: Pick<WorkflowSummary, "trigger">): string | null {
  return w.trigger?.name ?? null;
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

export function matches(w: WorkflowSummary, f: DashboardFilter): boolean {
  const text = f.text.trim().toLowerCase();
  if (text && !w.name.toLowerCase().includes(text) && !w.description.toLowerCase().includes(text)) return false;
  if (f.state && deploymentState(w) !== f.state) return false;
  if (f.trigger && triggerName(w) !== f.trigger) return false;
  if (f.category && !w.categories.includes(f.category)) return false;
  return true;
}
