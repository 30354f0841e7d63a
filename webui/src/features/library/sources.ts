import type { ActionSource } from "../../api/types";

export const BUILDABLE = new Set(["valid", "build_failed"]);

export function canBuild(s: Pick<ActionSource, "state" | "action_id" | "version">): boolean {
  return !!s.action_id && !!s.version && (BUILDABLE.has(s.state) || s.state === "built");
}
