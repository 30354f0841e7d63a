import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { platform, workflowSummary } from "../../../test/fixtures/handlers";
import { snapshot } from "../../../test/fixtures/runner";
import { io } from "../../../test/fixtures/studio";
import { logIn, ORIGIN, renderRoutes } from "../../../test/render";
import { server } from "../../../test/server";
import { routes } from "../../routes";

const WF = `${ORIGIN}/studio/v1/projects/demo/workflows/w1`;

function workflow(deployment: Record<string, unknown> | null) {
  return {
    ...workflowSummary(),
    steps: [],
    results: [],
    valid: false,
    problems: [{ code: "missing_input", message: "no value and no default", step_id: "count", input: "text" }],
    deployment,
  };
}

/** Deployment d1 of w1, deployed, asked for at midnight. */
function deployed() {
  return {
    id: "d1",
    workflow_id: "w1",
    snapshot_id: "snap1",
    state: "deployed",
    reason: "",
    state_seq: 3,
    requested_by: "alice",
    requested_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-01-01T00:00:05Z",
  };
}

const empty = [
  http.get(`${ORIGIN}/runner/v1/projects/demo/runs`, () => HttpResponse.json({ runs: [], next_cursor: null })),
  http.get(`${ORIGIN}/runner/v1/projects/demo/deployments`, () => HttpResponse.json({ deployments: [] })),
];

describe("WorkflowPage", () => {
  it("shows the studio's problems when a deploy is refused", async () => {
    logIn();
    server.use(
      http.get(WF, () => HttpResponse.json(workflow(null))),
      http.post(`${WF}/deploy`, () =>
        HttpResponse.json(
          {
            error: "invalid_workflow",
            detail: "demo-wf cannot be deployed: 1 problem",
            problems: [{ code: "missing_input", message: "no value and no default", step_id: "count", input: "text" }],
          },
          { status: 422 },
        ),
      ),
      ...empty,
      ...platform,
    );
    const user = userEvent.setup();
    renderRoutes(routes, ["/p/demo/workflows/w1"]);
    const card = await screen.findByRole("region", { name: "Deployment" });
    expect(within(card).getByText("Not deployed")).toBeInTheDocument();
    expect(screen.getByText("Deploy the workflow to start runs.")).toBeInTheDocument();
    await user.click(within(card).getByRole("button", { name: "Deploy" }));
    const alert = await within(card).findByRole("alert");
    expect(alert).toHaveTextContent("demo-wf cannot be deployed: 1 problem");
    expect(alert).toHaveTextContent("step count, input text: no value and no default");
  });

  it("offers the run form of a deployed HTTP endpoint, and its URL", async () => {
    logIn();
    const dep = {
      id: "d1",
      workflow_id: "w1",
      snapshot_id: "snap1",
      state: "waiting_for_site",
      reason: "step count: asks 8 cpu; the closest node pool, gpu@hpc-1, has 4 cpu",
      state_seq: 2,
      requested_by: "alice",
      requested_at: "2026-01-01T00:00:00Z",
      updated_at: "2026-01-01T00:00:00Z",
    };
    const state = { current: dep };
    server.use(
      http.get(WF, () => HttpResponse.json({ ...workflow(state.current), valid: true, problems: [] })),
      http.get(`${ORIGIN}/studio/v1/projects/demo/snapshots/snap1`, () =>
        HttpResponse.json({ ...snapshot(), trigger_fields: [io({ name: "text", type: "longstring", human_name: "Text" })] }),
      ),
      ...empty,
      ...platform,
    );
    renderRoutes(routes, ["/p/demo/workflows/w1"]);
    const card = await screen.findByRole("region", { name: "Deployment" });
    expect(within(card).getByText("Waiting for a site")).toBeInTheDocument();
    expect(within(card).getByText("step count: asks 8 cpu; the closest node pool, gpu@hpc-1, has 4 cpu")).toBeInTheDocument();

    state.current = { ...dep, state: "deployed", reason: "" };
    // the page follows a moving deployment on its own
    expect(await screen.findByRole("textbox", { name: /Text/ }, { timeout: 4000 })).toBeInTheDocument();
    expect(screen.getByRole("textbox", { name: "Endpoint URL" })).toHaveValue(`${ORIGIN}/runner/v1/projects/demo/endpoints/demo-wf`);
    await waitFor(() => expect(within(card).getByText("Deployed")).toBeInTheDocument());
    expect(within(card).queryByText("Changed since deployed")).not.toBeInTheDocument();
  });

  it("says when the workflow changed after its deployment was asked for", async () => {
    logIn();
    const dep = deployed();
    server.use(
      http.get(WF, () => HttpResponse.json({ ...workflow(dep), valid: true, problems: [], updated_at: "2026-01-01T00:10:00Z" })),
      http.get(`${ORIGIN}/studio/v1/projects/demo/snapshots/snap1`, () => HttpResponse.json(snapshot())),
      ...empty,
      ...platform,
    );
    renderRoutes(routes, ["/p/demo/workflows/w1"]);
    const card = await screen.findByRole("region", { name: "Deployment" });
    expect(await within(card).findByText("Changed since deployed")).toBeInTheDocument();
    expect(within(card).getByText(/redeploy it to apply the changes/)).toBeInTheDocument();
  });

  it("redeploys: undeploys, waits until undeployed, deploys again", async () => {
    logIn();
    const dep = deployed();
    const calls: string[] = [];
    const state = { current: dep, polls: 0 };
    server.use(
      http.get(WF, () => {
        if (state.current.state === "undeploying" && ++state.polls >= 2) state.current = { ...state.current, state: "undeployed" };
        return HttpResponse.json({ ...workflow(state.current), valid: true, problems: [] });
      }),
      http.post(`${WF}/undeploy`, () => {
        calls.push("undeploy");
        state.current = { ...state.current, state: "undeploying" };
        return HttpResponse.json(state.current, { status: 202 });
      }),
      http.post(`${WF}/deploy`, () => {
        calls.push(`deploy after ${state.current.state}`);
        state.current = { ...dep, id: "d2", state: "requested" };
        return HttpResponse.json(state.current, { status: 202 });
      }),
      http.get(`${ORIGIN}/studio/v1/projects/demo/snapshots/snap1`, () => HttpResponse.json(snapshot())),
      ...empty,
      ...platform,
    );
    const user = userEvent.setup();
    renderRoutes(routes, ["/p/demo/workflows/w1"]);
    const card = await screen.findByRole("region", { name: "Deployment" });
    await user.click(await within(card).findByRole("button", { name: "Redeploy" }));
    const dialog = await screen.findByRole("dialog");
    expect(dialog).toHaveTextContent("runs going on are cancelled");
    await user.click(within(dialog).getByRole("button", { name: "Redeploy" }));
    await waitFor(() => expect(calls).toEqual(["undeploy", "deploy after undeployed"]), { timeout: 4000 });
  });
});
