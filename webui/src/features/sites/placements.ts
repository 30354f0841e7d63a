import type { Deployment } from "../../api/types";

export interface Placed {
  deployment: Deployment;
  stepId: string;
  nodePool: string;
  state: string;
}

/** This project's deployed steps, by site id. */
export function placementsBySite(deployments: Deployment[]): Map<string, Placed[]> {
  const out = new Map<string, Placed[]>();
  for (const d of deployments) {
    if (d.state === "undeployed") continue;
    for (const s of d.steps) {
      if (!s.site_id || s.state === "undeployed") continue;
      out.set(s.site_id, [...(out.get(s.site_id) ?? []), { deployment: d, stepId: s.step_id, nodePool: s.node_pool, state: s.state }]);
    }
  }
  return out;
}
