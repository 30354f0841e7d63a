import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { platform } from "../../../test/fixtures/handlers";
import { execution, run, snapshot } from "../../../test/fixtures/runner";
import { logIn, ORIGIN, renderRoutes } from "../../../test/render";
import { server } from "../../../test/server";
import { routes } from "../../routes";

const RUN = `${ORIGIN}/runner/v1/projects/demo/runs/r1`;

function handlers(state: { cancelled: boolean }) {
  return [
    http.get(RUN, () =>
      HttpResponse.json(
        run({
          state: state.cancelled ? "cancelled" : "running",
          steps: [
            execution({ step_id: "trigger", state: "completed", is_trigger: true, outputs: { text: "hello" } }),
            execution({
              step_id: "split",
              state: "running",
              progress: 0.5,
              inputs: { text: "hello" },
              started_at: "2026-01-01T10:00:00Z",
            }),
            execution({
              step_id: "a",
              state: "completed",
              outputs: { report: { type: "file", name: "report.csv", size: 2048, sha256: "abc", key: "k", download_url: "/runner/v1/projects/demo/runs/r1/files/k" } },
            }),
          ],
        }),
      ),
    ),
    http.get(`${ORIGIN}/runner/v1/projects/demo/deployments/d1`, () => HttpResponse.json({ id: "d1", snapshot_id: "snap1", state: "deployed", steps: [] })),
    http.get(`${ORIGIN}/studio/v1/projects/demo/snapshots/snap1`, () => HttpResponse.json(snapshot())),
    http.get(`${RUN}/logs/stream`, () => {
      const body = ["hello from split", "half way"]
        .map((text, i) => `event: log\ndata: ${JSON.stringify({ execution_id: "split-1", step_id: "split", seq: i + 1, stream: "stdout", line: text, at: "2026-01-01T10:00:01.000Z" })}\n\n`)
        .join("");
      return new HttpResponse(body + 'event: end\ndata: {"run_id": "r1"}\n\n', { headers: { "Content-Type": "text/event-stream" } });
    }),
    http.post(`${RUN}/cancel`, () => {
      state.cancelled = true;
      return HttpResponse.json(run({ state: "cancelled" }));
    }),
  ];
}

describe("RunPage", () => {
  it("shows each step's live state and progress on the graph and in the steps list", async () => {
    logIn();
    server.use(...handlers({ cancelled: false }), ...platform);
    const user = userEvent.setup();
    renderRoutes(routes, ["/p/demo/runs/r1"]);
    expect(await screen.findByRole("heading", { name: "Run of demo" })).toBeInTheDocument();
    const graph = screen.getByRole("group", { name: "Graph of the run of demo" });
    // each step is a node named by its label and live state
    const node = (name: string) => graph.querySelector(`.react-flow__node[aria-label="${name}"]`);
    await waitFor(
      () => {
        expect(node("Step TRIGGER, Completed")).not.toBeNull();
        expect(node("Step SPLIT, Running")).not.toBeNull();
        expect(node("Step A, Completed")).not.toBeNull();
        expect(node("Step B, Pending")).not.toBeNull();
      },
      { timeout: 4000 },
    );
    expect(graph.querySelector('[aria-label="SPLIT progress"]')).toHaveAttribute("aria-valuenow", "50");

    await user.click(screen.getByRole("tab", { name: /Steps/ }));
    const table = screen.getByRole("table", { name: "Steps of the run" });
    const rows = within(table).getAllByRole("row").slice(1);
    expect(rows.map((r) => within(r).getAllByRole("cell")[1]?.textContent)).toEqual(["Completed", "Running", "Completed", "Pending"]);
    expect(within(table).getByRole("progressbar", { name: "SPLIT progress" })).toHaveAttribute("aria-valuenow", "50");
  });

  it("shows a step's inputs, outputs and files when selected", async () => {
    logIn();
    server.use(...handlers({ cancelled: false }), ...platform);
    const user = userEvent.setup();
    renderRoutes(routes, ["/p/demo/runs/r1?step=a"]);
    const panel = await screen.findByRole("complementary", { name: "Step A" });
    expect(within(panel).getByRole("button", { name: "Download report.csv (2.0 KiB)" })).toBeInTheDocument();
    expect(within(panel).getByRole("table", { name: "Outputs" })).toHaveTextContent("report");
    await user.click(within(panel).getByRole("button", { name: /Show this step/ }));
    expect(screen.getByRole("combobox", { name: "Step" })).toHaveValue("A");
  });

  it("streams the run's logs", async () => {
    logIn();
    server.use(...handlers({ cancelled: false }), ...platform);
    renderRoutes(routes, ["/p/demo/runs/r1"]);
    const log = await screen.findByRole("log", { name: "Log lines" });
    await waitFor(() => expect(log).toHaveTextContent("hello from split"));
    expect(log).toHaveTextContent("half way");
    expect(await screen.findByText("Complete")).toBeInTheDocument();
  });

  it("cancels the run after confirmation", async () => {
    logIn();
    const state = { cancelled: false };
    server.use(...handlers(state), ...platform);
    const user = userEvent.setup();
    renderRoutes(routes, ["/p/demo/runs/r1"]);
    await user.click(await screen.findByRole("button", { name: "Cancel run" }));
    await user.click(await screen.findByRole("button", { name: "Cancel the run", hidden: true }));
    await waitFor(() => expect(state.cancelled).toBe(true));
    expect(await screen.findByText("Cancelled")).toBeInTheDocument();
  });
});
