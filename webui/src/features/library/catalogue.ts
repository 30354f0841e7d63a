import type { StoreAction } from "../../api/types";

/** Versions of one action, newest first (by the time they became ready). */
export function groupVersions(actions: StoreAction[]): StoreAction[][] {
  const byId = new Map<string, StoreAction[]>();
  for (const a of actions) byId.set(a.action_id, [...(byId.get(a.action_id) ?? []), a]);
  return [...byId.values()]
    .map((versions) => versions.sort((a, b) => (b.ready_at ?? "").localeCompare(a.ready_at ?? "") || b.version.localeCompare(a.version)))
    .sort((a, b) => (a[0]?.human_name || a[0]?.action_id || "").localeCompare(b[0]?.human_name || b[0]?.action_id || ""));
}
