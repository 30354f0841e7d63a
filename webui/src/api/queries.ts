/**
 * What the pages read, as TanStack Query options: one key scheme, one place for the polling
 * intervals that make the pages live. Every call goes through the typed clients.
 */
import { infiniteQueryOptions, queryOptions } from "@tanstack/react-query";

import { api, unwrap } from "./client";
import type { Build, Deployment, RunDetail, StudioDeployment } from "./types";

/** Polling intervals (ms) while something may change. */
export const LIVE = {
  /** a run that is going on, a build in progress, a deployment that is moving */
  fast: 1500,
  /** lists whose rows change state (workflows, runs, sites) */
  normal: 5000,
  /** what rarely changes (repositories, the endpoints document) */
  slow: 30000,
} as const;

const TERMINAL_RUN_STATES = new Set(["completed", "failed", "cancelled"]);
const SETTLED_DEPLOYMENT_STATES = new Set(["deployed", "undeployed", "failed"]);

export function isRunTerminal(state: string): boolean {
  return TERMINAL_RUN_STATES.has(state);
}

export function isDeploymentSettled(state: string | undefined | null): boolean {
  return !state || SETTLED_DEPLOYMENT_STATES.has(state);
}

export function isBuildRunning(build: Pick<Build, "state"> | undefined): boolean {
  return build?.state === "requested";
}

const path = (project: string) => ({ path: { project } });

function blobToDataUrl(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(typeof reader.result === "string" ? reader.result : "");
    reader.onerror = () => reject(reader.error ?? new Error("the logo could not be read"));
    reader.readAsDataURL(blob);
  });
}

// ---- authorization ------------------------------------------------------------------------

export const authQueries = {
  me: () =>
    queryOptions({
      queryKey: ["authorization", "me"],
      queryFn: () => unwrap(api.authorization.GET("/authorization/v1/me")),
      staleTime: 60_000,
    }),
  users: () =>
    queryOptions({
      queryKey: ["authorization", "users"],
      queryFn: () => unwrap(api.authorization.GET("/authorization/v1/users")),
    }),
  projects: () =>
    queryOptions({
      queryKey: ["authorization", "projects"],
      queryFn: () => unwrap(api.authorization.GET("/authorization/v1/projects")),
    }),
  project: (project: string) =>
    queryOptions({
      queryKey: ["authorization", "project", project],
      queryFn: () =>
        unwrap(api.authorization.GET("/authorization/v1/projects/{project}", { params: path(project) })),
    }),
  tokens: () =>
    queryOptions({
      queryKey: ["authorization", "tokens"],
      queryFn: () => unwrap(api.authorization.GET("/authorization/v1/tokens")),
    }),
};

// ---- repository ---------------------------------------------------------------------------

export const repositoryQueries = {
  repositories: (project: string) =>
    queryOptions({
      queryKey: ["repository", project, "repositories"],
      queryFn: () =>
        unwrap(api.repository.GET("/repository/v1/projects/{project}/repositories", { params: path(project) })),
      refetchInterval: LIVE.slow,
    }),
  scan: (project: string, scanId: string) =>
    queryOptions({
      queryKey: ["repository", project, "scan", scanId],
      queryFn: () =>
        unwrap(
          api.repository.GET("/repository/v1/projects/{project}/scans/{scan_id}", {
            params: { path: { project, scan_id: scanId } },
          }),
        ),
      staleTime: Infinity, // a scan's report never changes
    }),
  sources: (project: string) =>
    queryOptions({
      queryKey: ["repository", project, "actions"],
      queryFn: () =>
        unwrap(api.repository.GET("/repository/v1/projects/{project}/actions", { params: path(project) })),
      // faster while something builds
      refetchInterval: (query) =>
        query.state.data?.actions.some((a) => a.state === "building") ? LIVE.fast : LIVE.normal,
    }),
  builds: (project: string, actionId: string, version: string) =>
    queryOptions({
      queryKey: ["repository", project, "builds", actionId, version],
      queryFn: () =>
        unwrap(
          api.repository.GET("/repository/v1/projects/{project}/actions/{action_id}/{version}/builds", {
            params: { path: { project, action_id: actionId, version } },
          }),
        ),
      refetchInterval: (query) =>
        query.state.data?.builds.some((b) => b.state === "requested") ? LIVE.fast : LIVE.normal,
    }),
  build: (project: string, buildId: string) =>
    queryOptions({
      queryKey: ["repository", project, "build", buildId],
      queryFn: () =>
        unwrap(
          api.repository.GET("/repository/v1/projects/{project}/builds/{build_id}", {
            params: { path: { project, build_id: buildId } },
          }),
        ),
      refetchInterval: (query) => (isBuildRunning(query.state.data) ? LIVE.fast : false),
    }),
};

// ---- studio -------------------------------------------------------------------------------

function studioDeploymentMoving(d: StudioDeployment | null | undefined): boolean {
  return !!d && !isDeploymentSettled(d.state);
}

export const studioQueries = {
  catalogue: (project: string) =>
    queryOptions({
      queryKey: ["studio", project, "actions"],
      queryFn: () => unwrap(api.studio.GET("/studio/v1/projects/{project}/actions", { params: path(project) })),
      // the studio learns of a finished build a moment after the repository: the library's
      // catalogue and the editor's palette show it within seconds
      refetchInterval: LIVE.normal,
      staleTime: 10_000,
    }),
  workflows: (project: string) =>
    queryOptions({
      queryKey: ["studio", project, "workflows"],
      queryFn: () =>
        unwrap(api.studio.GET("/studio/v1/projects/{project}/workflows", { params: path(project) })),
      refetchInterval: (query) =>
        query.state.data?.workflows.some((w) => studioDeploymentMoving(w.deployment)) ? LIVE.fast : LIVE.normal,
    }),
  workflow: (project: string, workflow: string) =>
    queryOptions({
      queryKey: ["studio", project, "workflow", workflow],
      queryFn: () =>
        unwrap(
          api.studio.GET("/studio/v1/projects/{project}/workflows/{workflow}", {
            params: { path: { project, workflow } },
          }),
        ),
      refetchInterval: (query) => (studioDeploymentMoving(query.state.data?.deployment) ? LIVE.fast : LIVE.normal),
    }),
  secrets: (project: string) =>
    queryOptions({
      queryKey: ["studio", project, "secrets"],
      queryFn: () => unwrap(api.studio.GET("/studio/v1/projects/{project}/secrets", { params: path(project) })),
      staleTime: 10_000,
    }),
  snapshot: (project: string, snapshot: string) =>
    queryOptions({
      queryKey: ["studio", project, "snapshot", snapshot],
      queryFn: () =>
        unwrap(
          api.studio.GET("/studio/v1/projects/{project}/snapshots/{snapshot}", {
            params: { path: { project, snapshot } },
          }),
        ),
      staleTime: Infinity, // snapshots are immutable
    }),
  logo: (project: string, actionId: string, version: string) =>
    queryOptions({
      queryKey: ["studio", project, "logo", actionId, version],
      // read with the token (an <img src> cannot send it), kept as a data: URL
      queryFn: async () => {
        const blob = await unwrap(
          api.studio.GET("/studio/v1/projects/{project}/actions/{action_id}/versions/{version}/logo", {
            params: { path: { project, action_id: actionId, version } },
            parseAs: "blob",
          }),
        );
        return blobToDataUrl(blob);
      },
      staleTime: Infinity,
      gcTime: 30 * 60_000,
      retry: false,
    }),
};

// ---- runner -------------------------------------------------------------------------------

export interface RunFilter {
  workflowId?: string;
  state?: "pending" | "running" | "completed" | "failed" | "cancelled";
}

export const runnerQueries = {
  deployments: (project: string, workflowId?: string) =>
    queryOptions({
      queryKey: ["runner", project, "deployments", workflowId ?? null],
      queryFn: () =>
        unwrap(
          api.runner.GET("/runner/v1/projects/{project}/deployments", {
            params: { path: { project }, query: workflowId ? { workflow_id: workflowId } : {} },
          }),
        ),
      refetchInterval: (query) =>
        query.state.data?.deployments.some((d: Deployment) => !isDeploymentSettled(d.state))
          ? LIVE.fast
          : LIVE.normal,
    }),
  deployment: (project: string, deploymentId: string) =>
    queryOptions({
      queryKey: ["runner", project, "deployment", deploymentId],
      queryFn: () =>
        unwrap(
          api.runner.GET("/runner/v1/projects/{project}/deployments/{deployment_id}", {
            params: { path: { project, deployment_id: deploymentId } },
          }),
        ),
      refetchInterval: (query) => (isDeploymentSettled(query.state.data?.state) ? LIVE.normal : LIVE.fast),
    }),
  runs: (project: string, filter: RunFilter = {}) =>
    infiniteQueryOptions({
      queryKey: ["runner", project, "runs", filter],
      queryFn: ({ pageParam }) =>
        unwrap(
          api.runner.GET("/runner/v1/projects/{project}/runs", {
            params: {
              path: { project },
              query: {
                limit: 50,
                ...(filter.workflowId ? { workflow_id: filter.workflowId } : {}),
                ...(filter.state ? { state: filter.state } : {}),
                ...(pageParam ? { cursor: pageParam } : {}),
              },
            },
          }),
        ),
      initialPageParam: "",
      getNextPageParam: (last) => last.next_cursor ?? undefined,
      refetchInterval: LIVE.normal,
    }),
  run: (project: string, runId: string) =>
    queryOptions({
      queryKey: ["runner", project, "run", runId],
      queryFn: () =>
        unwrap(
          api.runner.GET("/runner/v1/projects/{project}/runs/{run_id}", {
            params: { path: { project, run_id: runId } },
          }),
        ),
      refetchInterval: (query) => {
        const run: RunDetail | undefined = query.state.data;
        return run && isRunTerminal(run.state) ? false : LIVE.fast;
      },
    }),
  sites: (project: string) =>
    queryOptions({
      queryKey: ["runner", project, "sites"],
      queryFn: () => unwrap(api.runner.GET("/runner/v1/projects/{project}/sites", { params: path(project) })),
      refetchInterval: LIVE.normal,
    }),
  endpointsOpenapi: (project: string) =>
    queryOptions({
      queryKey: ["runner", project, "endpoints-openapi"],
      queryFn: async () =>
        (await unwrap(
          api.runner.GET("/runner/v1/projects/{project}/endpoints/openapi.json", { params: path(project) }),
        )) as unknown,
      refetchInterval: LIVE.slow,
    }),
};
