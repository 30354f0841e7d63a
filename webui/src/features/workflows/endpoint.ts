import { apiOrigin } from "../../api/client";

/** The URL of a workflow's HTTP endpoint (the runner's, through the gateway). */
export function endpointUrl(project: string, workflowName: string): string {
  return `${apiOrigin()}/runner/v1/projects/${encodeURIComponent(project)}/endpoints/${encodeURIComponent(workflowName)}`;
}
