import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { ME, platform } from "../../../test/fixtures/handlers";
import { logIn, ORIGIN, renderRoutes } from "../../../test/render";
import { server } from "../../../test/server";
import { getSession } from "../../api/session";
import { routes } from "../../routes";

const LOGIN = `${ORIGIN}/authorization/v1/login`;

function loginHandler() {
  return http.post(LOGIN, async ({ request }) => {
    const body = (await request.json()) as { username: string; password: string };
    if (body.username !== "alice" || body.password !== "s3cret") {
      return HttpResponse.json({ error: "unauthenticated", detail: "wrong username or password" }, { status: 401 });
    }
    return HttpResponse.json({
      access_token: "tok-alice",
      token_type: "bearer",
      expires_at: new Date(Date.now() + 3600_000).toISOString(),
      user: { id: "u1", username: "alice", is_admin: false, created_at: "2026-01-01T00:00:00Z" },
    });
  });
}

describe("login", () => {
  it("sends a visitor to the login page, shows the service's refusal, then goes back where they were", async () => {
    server.use(...platform, loginHandler());
    const user = userEvent.setup();
    const { router } = renderRoutes(routes, ["/p/demo"]);

    expect(await screen.findByRole("heading", { name: "Ryax" })).toBeInTheDocument();
    expect(router.state.location.pathname).toBe("/login");
    const submit = screen.getByRole("button", { name: "Log in" });
    expect(submit).toBeDisabled();

    await user.type(screen.getByLabelText(/Username/), "alice");
    await user.type(screen.getByLabelText(/Password/), "wrong");
    await user.click(submit);
    expect(await screen.findByText("wrong username or password")).toBeInTheDocument();
    expect(getSession()).toBeNull();

    await user.clear(screen.getByLabelText(/Password/));
    await user.type(screen.getByLabelText(/Password/), "s3cret{Enter}");
    expect(await screen.findByRole("heading", { name: "Dashboard" })).toBeInTheDocument();
    expect(router.state.location.pathname).toBe("/p/demo");
    expect(await screen.findByRole("link", { name: "demo-wf" })).toBeInTheDocument();
    expect(getSession()?.token).toBe("tok-alice");
    expect(JSON.parse(sessionStorage.getItem("ryax.session") ?? "{}")).toMatchObject({ token: "tok-alice", user: { username: "alice" } });
  });

  it("goes back to the login page with the reason when the services refuse the token", async () => {
    logIn("expired-token");
    // (the first handler given wins)
    server.use(
      http.get(`${ORIGIN}/studio/v1/projects/:project/workflows`, () =>
        HttpResponse.json({ error: "unauthenticated", detail: "token expired" }, { status: 401 }),
      ),
      ...platform,
    );
    const { router } = renderRoutes(routes, ["/p/demo"]);
    expect(await screen.findByText(/Your session has expired or was revoked/)).toBeInTheDocument();
    expect(router.state.location.pathname).toBe("/login");
    expect(getSession()).toBeNull();
  });

  it("logs out: revokes the token and forgets the session", async () => {
    logIn("tok-alice");
    let revoked: string | null = null;
    server.use(
      ...platform,
      http.post(`${ORIGIN}/authorization/v1/logout`, ({ request }) => {
        revoked = request.headers.get("authorization");
        return new HttpResponse(null, { status: 204 });
      }),
    );
    const user = userEvent.setup();
    const { router } = renderRoutes(routes, ["/p/demo"]);
    await user.click(await screen.findByRole("button", { name: /Account menu of alice/ }));
    await user.click(await screen.findByRole("menuitem", { name: "Log out", hidden: true }));
    await waitFor(() => expect(router.state.location.pathname).toBe("/login"));
    expect(revoked).toBe("Bearer tok-alice");
    expect(getSession()).toBeNull();
    expect(sessionStorage.getItem("ryax.session")).toBeNull();
  });

  it("lands on the user's project, or says there is none", async () => {
    logIn();
    server.use(...platform);
    const { router, unmount } = renderRoutes(routes, ["/"]);
    await waitFor(() => expect(router.state.location.pathname).toBe("/p/demo"));
    unmount();

    server.use(http.get(`${ORIGIN}/authorization/v1/me`, () => HttpResponse.json({ ...ME, projects: [] })));
    renderRoutes(routes, ["/"]);
    expect(await screen.findByRole("heading", { name: "No project yet" })).toBeInTheDocument();
  });
});
