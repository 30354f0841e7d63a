import { humanize } from "../lib/format";

/** One colour per state name, shared by deployments, runs, steps, builds, sources and sites. */
const COLORS: Record<string, string> = {
  // going on
  requested: "blue",
  deploying: "blue",
  building: "blue",
  running: "blue",
  dispatched: "cyan",
  undeploying: "orange",
  // waiting
  pending: "gray",
  waiting: "gray",
  waiting_for_site: "yellow",
  unplaced: "yellow",
  changed_same_version: "yellow",
  // good
  deployed: "green",
  ready: "green",
  completed: "green",
  succeeded: "green",
  built: "green",
  online: "green",
  new: "green",
  valid: "teal",
  replaced: "indigo",
  // neutral
  undeployed: "gray",
  not_deployed: "gray",
  unchanged: "gray",
  skipped: "gray",
  // bad
  failed: "red",
  build_failed: "red",
  invalid: "red",
  offline: "red",
  cancelled: "orange",
  lost: "orange",
};

const LABELS: Record<string, string> = {
  requested: "Requested",
  waiting_for_site: "Waiting for a site",
  build_failed: "Build failed",
  changed_same_version: "Changed, same version",
  not_deployed: "Not deployed",
};

export function stateColor(state: string): string {
  return COLORS[state] ?? "gray";
}

export function stateLabel(state: string): string {
  return LABELS[state] ?? humanize(state);
}
