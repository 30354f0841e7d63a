/**
 * Typed clients of the four services, through the gateway on the same origin. The types come
 * from the services' own OpenAPI documents (src/api/generated, `npm run api:check`), so a call
 * that no longer matches the code does not type-check.
 *
 * Every call carries the session's bearer token; a 401 ends the session (back to login); a
 * failed answer becomes one `ApiError` with the service's `error`, `detail` (and `problems`).
 */
import createClient, { type Middleware } from "openapi-fetch";

import { ApiError } from "./errors";
import type { paths as AuthorizationPaths } from "./generated/authorization";
import type { paths as RepositoryPaths } from "./generated/repository";
import type { paths as RunnerPaths } from "./generated/runner";
import type { paths as StudioPaths } from "./generated/studio";
import { expire, getToken } from "./session";

/** The origin the gateway answers on (the page's own). */
export function apiOrigin(): string {
  return typeof window === "undefined" ? "" : window.location.origin;
}

/** Adds the bearer token; a 401 to a call that carried one ends the session. */
export const authMiddleware: Middleware = {
  onRequest({ request }) {
    const token = getToken();
    if (token && !request.headers.has("Authorization")) {
      request.headers.set("Authorization", `Bearer ${token}`);
    }
    return request;
  },
  onResponse({ request, response }) {
    if (response.status === 401 && request.headers.has("Authorization")) {
      expire("Your session has expired or was revoked: log in again.");
    }
    return undefined;
  },
};

function make<Paths extends object>() {
  const client = createClient<Paths>({
    baseUrl: apiOrigin(),
    // Looked up at each call (tests replace it).
    fetch: (request: Request) => globalThis.fetch(request),
  });
  client.use(authMiddleware);
  return client;
}

export const api = {
  authorization: make<AuthorizationPaths>(),
  repository: make<RepositoryPaths>(),
  studio: make<StudioPaths>(),
  runner: make<RunnerPaths>(),
};

interface Result<D> {
  data?: D;
  error?: unknown;
  response: Response;
}

/**
 * The answer's data, or an `ApiError` thrown with the service's message.
 *
 *     const wf = await unwrap(api.studio.GET("/studio/v1/projects/{project}/workflows/{workflow}", {...}))
 */
export async function unwrap<D>(request: Promise<Result<D>>): Promise<D> {
  return (await unwrapWithResponse(request)).data;
}

/** The same, with the answer (for its headers). */
export async function unwrapWithResponse<D>(request: Promise<Result<D>>): Promise<{ data: D; response: Response }> {
  let result: Result<D>;
  try {
    result = await request;
  } catch (cause) {
    if (cause instanceof ApiError) throw cause;
    throw ApiError.network(cause);
  }
  if (!result.response.ok) {
    throw ApiError.from(result.response.status, result.error ?? "", result.response.statusText);
  }
  return { data: result.data as D, response: result.response };
}

/**
 * A call the typed clients cannot make (a stream, a download link the runner gave): the same
 * token, the same 401 rule, the same error type.
 */
export async function authFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const token = getToken();
  if (token) headers.set("Authorization", `Bearer ${token}`);
  let response: Response;
  try {
    response = await globalThis.fetch(path.startsWith("/") ? apiOrigin() + path : path, {
      ...init,
      headers,
    });
  } catch (cause) {
    if (init.signal?.aborted) throw cause;
    throw ApiError.network(cause);
  }
  if (response.status === 401 && token) {
    expire("Your session has expired or was revoked: log in again.");
  }
  if (!response.ok) throw await ApiError.fromResponse(response);
  return response;
}
