import { useQuery } from "@tanstack/react-query";
import { createContext, useContext } from "react";

import { authQueries } from "../../api/queries";
import type { Role } from "../../api/types";

export interface ProjectScopeValue {
  /** How the project is named in addresses and API paths (its name). */
  name: string;
  id: string;
  /** The caller's role (admins act as owners). */
  role: Role | null;
  canWrite: boolean;
  canManage: boolean;
}

export const ProjectContext = createContext<ProjectScopeValue | null>(null);

/** The project of the page (under /p/:project). */
export function useProject(): ProjectScopeValue {
  const value = useContext(ProjectContext);
  if (!value) throw new Error("useProject() outside of a project page");
  return value;
}

export function useMe() {
  return useQuery(authQueries.me());
}

const LAST_PROJECT = "ryax.lastProject";

export function rememberProject(name: string): void {
  try {
    localStorage.setItem(LAST_PROJECT, name);
  } catch {
    // not remembered: the first project is shown next time
  }
}

export function lastProject(): string | null {
  try {
    return localStorage.getItem(LAST_PROJECT);
  } catch {
    return null;
  }
}

/** Project pages' addresses. */
export const to = {
  dashboard: (p: string) => `/p/${encodeURIComponent(p)}`,
  library: (p: string, tab?: string) => `/p/${encodeURIComponent(p)}/library${tab ? `?tab=${tab}` : ""}`,
  build: (p: string, buildId: string) => `/p/${encodeURIComponent(p)}/library/builds/${encodeURIComponent(buildId)}`,
  workflow: (p: string, id: string) => `/p/${encodeURIComponent(p)}/workflows/${encodeURIComponent(id)}`,
  editor: (p: string, id: string) => `/p/${encodeURIComponent(p)}/workflows/${encodeURIComponent(id)}/edit`,
  runs: (p: string) => `/p/${encodeURIComponent(p)}/runs`,
  run: (p: string, id: string) => `/p/${encodeURIComponent(p)}/runs/${encodeURIComponent(id)}`,
  sites: (p: string) => `/p/${encodeURIComponent(p)}/sites`,
  endpoints: (p: string) => `/p/${encodeURIComponent(p)}/endpoints`,
};
