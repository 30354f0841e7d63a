import type { StoreAction } from "../../api/types";
import { groupVersions } from "../library/catalogue";

const KIND_ORDER = { trigger: 0, processor: 1, publisher: 2 } as const;

export interface PaletteFilter {
  text: string;
  kind: string;
  category: string | null;
}

/** The newest version of each action that matches, triggers first, then by name. */
export function paletteActions(actions: StoreAction[], f: PaletteFilter): StoreAction[] {
  const needle = f.text.trim().toLowerCase();
  return groupVersions(actions)
    .map((versions) => versions[0])
    .filter((a): a is StoreAction => !!a)
    .filter(
      (a) =>
        (f.kind === "all" || a.kind === f.kind) &&
        (!f.category || a.categories.some((c) => c.toLowerCase() === f.category?.toLowerCase())) &&
        (!needle || [a.action_id, a.human_name, a.description, ...a.categories].some((v) => v.toLowerCase().includes(needle))),
    )
    .sort((a, b) => KIND_ORDER[a.kind] - KIND_ORDER[b.kind] || (a.human_name || a.action_id).localeCompare(b.human_name || b.action_id));
}

