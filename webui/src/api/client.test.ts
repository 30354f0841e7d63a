import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { server } from "../../test/server";
import { ORIGIN } from "../../test/render";
import { api, authFetch, unwrap } from "./client";
import { ApiError, describeDetail } from "./errors";
import { getNotice, getSession, startSession } from "./session";

const WORKFLOW = `${ORIGIN}/studio/v1/projects/:project/workflows/:workflow`;

function login() {
  startSession({ token: "secret-token", expiresAt: new Date(Date.now() + 60_000).toISOString(), user: { id: "u1", username: "alice", is_admin: false } });
}

describe("ApiError", () => {
  it("carries the service's error code and detail", () => {
    const e = ApiError.from(404, { error: "not_found", detail: "workflow w1 not found" }, "Not Found");
    expect(e.status).toBe(404);
    expect(e.code).toBe("not_found");
    expect(e.message).toBe("workflow w1 not found");
    expect(e.problems).toEqual([]);
  });

  it("keeps studio's located problems and the other keys", () => {
    const e = ApiError.from(422, {
      error: "invalid_workflow",
      detail: "the workflow is not valid",
      problems: [{ code: "missing_input", message: "no value", step_id: "s1", input: "x", line: 4 }, { nonsense: true }],
      run_id: "r1",
    });
    expect(e.problems).toEqual([{ code: "missing_input", message: "no value", step_id: "s1", input: "x", line: 4 }]);
    expect(e.extra).toEqual({ run_id: "r1" });
  });

  it("says something useful for a gateway page or an empty body", () => {
    expect(ApiError.from(502, "<html><body>Bad gateway</body></html>", "Bad Gateway").message).toBe("Bad Gateway");
    expect(ApiError.from(503, "", "").message).toBe("the request failed (503)");
    expect(ApiError.from(500, "plain text failure").message).toBe("plain text failure");
    expect(ApiError.network(new TypeError("fetch failed")).status).toBe(0);
  });

  it("turns structured details into one sentence", () => {
    expect(describeDetail({ name: "too long", url: ["not https", "private address"] })).toBe(
      "name: too long; url: not https; private address",
    );
  });
});

describe("the typed clients", () => {
  it("send the bearer token and return the data", async () => {
    login();
    let auth: string | null = null;
    server.use(
      http.get(WORKFLOW, ({ request, params }) => {
        auth = request.headers.get("authorization");
        return HttpResponse.json({ id: params.workflow, name: "wf" });
      }),
    );
    const wf = await unwrap(api.studio.GET("/studio/v1/projects/{project}/workflows/{workflow}", { params: { path: { project: "p", workflow: "w1" } } }));
    expect(auth).toBe("Bearer secret-token");
    expect(wf.id).toBe("w1");
  });

  it("throw one ApiError with the service's message (and studio's problems)", async () => {
    login();
    server.use(
      http.post(`${WORKFLOW}/deploy`, () =>
        HttpResponse.json(
          {
            error: "invalid_workflow",
            detail: "the workflow has 1 problem",
            problems: [{ code: "dangling_reference", message: "step s9 does not exist", step_id: "s2", input: "data" }],
          },
          { status: 422 },
        ),
      ),
    );
    const call = unwrap(api.studio.POST("/studio/v1/projects/{project}/workflows/{workflow}/deploy", { params: { path: { project: "p", workflow: "w1" } } }));
    await expect(call).rejects.toMatchObject({
      name: "ApiError",
      status: 422,
      code: "invalid_workflow",
      message: "the workflow has 1 problem",
      problems: [{ step_id: "s2", input: "data", message: "step s9 does not exist" }],
    });
  });

  it("end the session on a 401 (back to login, with the reason)", async () => {
    login();
    server.use(http.get(WORKFLOW, () => HttpResponse.json({ error: "unauthenticated", detail: "token expired" }, { status: 401 })));
    await expect(
      unwrap(api.studio.GET("/studio/v1/projects/{project}/workflows/{workflow}", { params: { path: { project: "p", workflow: "w1" } } })),
    ).rejects.toMatchObject({ status: 401, message: "token expired" });
    expect(getSession()).toBeNull();
    expect(getNotice()).toMatch(/session has expired/);
    expect(sessionStorage.getItem("ryax.session")).toBeNull();
  });

  it("do not end a session on a failed login (no token was sent)", async () => {
    server.use(
      http.post(`${ORIGIN}/authorization/v1/login`, () => HttpResponse.json({ error: "unauthenticated", detail: "wrong username or password" }, { status: 401 })),
    );
    await expect(unwrap(api.authorization.POST("/authorization/v1/login", { body: { username: "a", password: "b" } }))).rejects.toMatchObject({
      message: "wrong username or password",
    });
    expect(getNotice()).toBeNull();
  });

  it("report an unreachable platform as a network error", async () => {
    login();
    server.use(http.get(WORKFLOW, () => HttpResponse.error()));
    await expect(
      unwrap(api.studio.GET("/studio/v1/projects/{project}/workflows/{workflow}", { params: { path: { project: "p", workflow: "w1" } } })),
    ).rejects.toMatchObject({ status: 0, code: "network_error" });
  });

  it("authFetch follows the same rules for streams and downloads", async () => {
    login();
    server.use(
      http.get(`${ORIGIN}/runner/v1/projects/p/runs/r1/files/*`, () => HttpResponse.json({ error: "not_found", detail: "no file k in run r1" }, { status: 404 })),
    );
    await expect(authFetch("/runner/v1/projects/p/runs/r1/files/k")).rejects.toMatchObject({ status: 404, message: "no file k in run r1" });
  });
});
