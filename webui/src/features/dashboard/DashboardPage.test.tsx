import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { platform, workflowSummary } from "../../../test/fixtures/handlers";
import { logIn, ORIGIN, renderRoutes } from "../../../test/render";
import { server } from "../../../test/server";
import { routes } from "../../routes";

const deployment = (state: string, reason = "") => ({
  id: "d",
  workflow_id: "w",
  snapshot_id: "s",
  state,
  reason,
  state_seq: 1,
  requested_by: "alice",
  requested_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
});

describe("DashboardPage", () => {
  it("shows a card per workflow with its state and reason, and filters them", async () => {
    logIn();
    const httpTrigger = { step_id: "api", action_id: "httpapijson", version: "1.0", name: "HTTP API JSON", kind: "trigger" as const, builtin: true };
    const timer = { step_id: "tick", action_id: "emitgw", version: "1.0", name: "Emit every interval", kind: "trigger" as const, builtin: true };
    const perWorkflow: string[] = [];
    server.use(
      http.get(`${ORIGIN}/studio/v1/projects/:project/workflows`, () =>
        HttpResponse.json({
          workflows: [
            workflowSummary({ id: "w1", name: "word-count", deployment: deployment("deployed"), trigger: httpTrigger, categories: ["HTTP", "Text", "Trigger"] }),
            workflowSummary({ id: "w2", name: "nightly-report", description: "every night", deployment: deployment("waiting_for_site", "no online site has the node pool gpu"), trigger: timer, categories: ["Time"] }),
            workflowSummary({ id: "w3", name: "draft" }),
          ],
        }),
      ),
      // The list is enough: neither a definition nor the catalogue is read.
      http.get(`${ORIGIN}/studio/v1/projects/:project/workflows/:workflow`, ({ params }) => {
        perWorkflow.push(String(params.workflow));
        return HttpResponse.json({ error: "unexpected" }, { status: 500 });
      }),
      http.get(`${ORIGIN}/studio/v1/projects/:project/actions`, () => {
        perWorkflow.push("catalogue");
        return HttpResponse.json({ error: "unexpected" }, { status: 500 });
      }),
      ...platform,
    );
    const user = userEvent.setup();
    renderRoutes(routes, ["/p/demo"]);
    const card = await screen.findByRole("article", { name: "Workflow nightly-report" });
    expect(within(card).getByText("Waiting for a site")).toBeInTheDocument();
    expect(within(card).getByText("no online site has the node pool gpu")).toBeInTheDocument();
    expect(within(screen.getByRole("article", { name: "Workflow word-count" })).getByText("Deployed")).toBeInTheDocument();
    expect(within(screen.getByRole("article", { name: "Workflow draft" })).getByText("Not deployed")).toBeInTheDocument();
    const wordCount = screen.getByRole("article", { name: "Workflow word-count" });
    expect(within(wordCount).getByText("HTTP API JSON")).toBeInTheDocument();
    expect(within(wordCount).getByText("Text")).toBeInTheDocument();
    expect(within(card).getByText("Emit every interval")).toBeInTheDocument();
    expect(within(screen.getByRole("article", { name: "Workflow draft" })).getByText("no trigger")).toBeInTheDocument();

    await user.click(screen.getByRole("combobox", { name: "Trigger" }));
    await user.click(await screen.findByRole("option", { name: "Emit every interval", hidden: true }));
    await waitFor(() => expect(screen.getByText("1 of 3 workflows")).toBeInTheDocument());
    expect(screen.getByRole("article", { name: "Workflow nightly-report" })).toBeInTheDocument();
    expect(screen.queryByRole("article", { name: "Workflow word-count" })).not.toBeInTheDocument();

    await user.type(screen.getByRole("textbox", { name: "Search" }), "night");
    await waitFor(() => expect(screen.queryByRole("article", { name: "Workflow word-count" })).not.toBeInTheDocument());
    expect(screen.getByText("1 of 3 workflows")).toBeInTheDocument();
    expect(perWorkflow).toEqual([]);
  });

  it("creates a workflow and opens it in the editor", async () => {
    logIn();
    let created: unknown = null;
    server.use(
      http.post(`${ORIGIN}/studio/v1/projects/demo/workflows`, async ({ request }) => {
        created = await request.json();
        return HttpResponse.json({ ...workflowSummary({ id: "w9", name: "fresh" }), steps: [], results: [], valid: false, problems: [] }, { status: 201 });
      }),
      ...platform,
    );
    const user = userEvent.setup();
    const { router } = renderRoutes(routes, ["/p/demo"]);
    await user.click(await screen.findByRole("button", { name: "New workflow" }));
    const dialog = await screen.findByRole("dialog", { name: "New workflow" });
    await user.type(within(dialog).getByRole("textbox", { name: /Name/ }), "fresh");
    await user.click(within(dialog).getByRole("button", { name: "Create" }));
    await waitFor(() => expect(router.state.location.pathname).toBe("/p/demo/workflows/w9/edit"));
    expect(created).toEqual({ name: "fresh", description: "" });
  });

  it("says which name is taken when the studio refuses it", async () => {
    logIn();
    server.use(
      http.post(`${ORIGIN}/studio/v1/projects/demo/workflows`, () =>
        HttpResponse.json({ error: "already_exists", detail: "a workflow named fresh exists" }, { status: 409 }),
      ),
      ...platform,
    );
    const user = userEvent.setup();
    renderRoutes(routes, ["/p/demo"]);
    await user.click(await screen.findByRole("button", { name: "New workflow" }));
    const dialog = await screen.findByRole("dialog", { name: "New workflow" });
    await user.type(within(dialog).getByRole("textbox", { name: /Name/ }), "fresh");
    await user.click(within(dialog).getByRole("button", { name: "Create" }));
    expect(await within(dialog).findByText("a workflow named fresh exists")).toBeInTheDocument();
  });
});
