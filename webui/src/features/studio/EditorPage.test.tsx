import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { ACTIONS, demoWorkflow } from "../../../test/fixtures/demo";
import { platform } from "../../../test/fixtures/handlers";
import { logIn, ORIGIN, renderRoutes } from "../../../test/render";
import { server } from "../../../test/server";
import type { Workflow } from "../../api/types";
import { routes } from "../../routes";

const W = `${ORIGIN}/studio/v1/projects/demo/workflows/w1`;

function studio(initial: Workflow) {
  let current = initial;
  const calls: { method: string; url: string; body: unknown }[] = [];
  server.use(
    http.get(`${ORIGIN}/studio/v1/projects/demo/actions`, () => HttpResponse.json({ actions: ACTIONS })),
    http.get(`${ORIGIN}/studio/v1/projects/demo/secrets`, () =>
      HttpResponse.json({ secrets: [{ name: "api-token", created_at: "2026-01-01T00:00:00Z", updated_at: "2026-01-01T00:00:00Z" }] }),
    ),
    http.get(`${ORIGIN}/runner/v1/projects/demo/sites`, () => HttpResponse.json({ sites: [] })),
    http.get(W, () => HttpResponse.json(current)),
    http.put(`${W}/steps/:step/inputs/:input`, async ({ request, params }) => {
      const body = (await request.json()) as Record<string, unknown>;
      calls.push({ method: "PUT", url: request.url, body });
      current = {
        ...current,
        updated_at: "2026-01-02T00:00:00Z",
        steps: current.steps.map((s) =>
          s.id === params.step ? { ...s, inputs: { ...s.inputs, [String(params.input)]: { static: body.static ?? null, secret: typeof body.secret === "string" ? body.secret : null, reference: null, file: null } } } : s,
        ),
        problems: [],
        valid: true,
      };
      return HttpResponse.json(current);
    }),
    http.put(`${W}/steps/:step/settings`, async ({ request, params }) => {
      const body = (await request.json()) as Workflow["steps"][number]["settings"];
      calls.push({ method: "PUT", url: request.url, body });
      // the studio answers the HPC parameters under their canonical keys
      const hpc = Object.fromEntries(Object.entries(body.hpc ?? {}).map(([k, v]) => [k === "tasks" ? "ntasks" : k, String(v)]));
      current = { ...current, steps: current.steps.map((s) => (s.id === params.step ? { ...s, settings: { ...body, hpc } } : s)) };
      return HttpResponse.json(current);
    }),
    http.post(`${W}/steps/:step/inputs/:input/file`, async ({ request, params }) => {
      const form = await request.formData();
      const file = form.get("file") as File;
      calls.push({ method: "POST", url: request.url, body: { name: file.name, text: await file.text() } });
      current = {
        ...current,
        updated_at: "2026-01-03T00:00:00Z",
        steps: current.steps.map((s) =>
          s.id === params.step
            ? { ...s, inputs: { ...s.inputs, [String(params.input)]: { static: null, secret: null, reference: null, file: { name: file.name, size: file.size, sha256: "ab", directory: false } } } }
            : s,
        ),
      };
      return HttpResponse.json(current);
    }),
    ...platform,
  );
  return calls;
}

describe("EditorPage", () => {
  it("shows the studio's problems on the step and its input, and saves a typed value", async () => {
    logIn();
    const broken = demoWorkflow({
      valid: false,
      problems: [{ code: "missing_input", message: "step 'join', input 'separator': required string input has no value", step_id: "join", input: "separator", line: null, path: null, file: null }],
    });
    const calls = studio(broken);
    const user = userEvent.setup();
    renderRoutes(routes, ["/p/demo/workflows/w1/edit"]);
    expect(await screen.findByText("All changes saved")).toBeInTheDocument();
    expect(screen.getByText("1 problem")).toBeInTheDocument();
    // the node says it, and the workflow panel lists it
    const panel = screen.getByRole("region", { name: "Workflow" });
    expect(within(panel).getByText("required string input has no value")).toBeInTheDocument();

    // select the step from the problem, then type its value
    await user.click(within(panel).getByRole("button", { name: "join.separator" }));
    const step = await screen.findByRole("region", { name: "Step join" });
    const field = within(step).getByRole("textbox", { name: /separator: string/ });
    expect(field).toHaveAccessibleDescription(expect.stringContaining("required string input has no value"));
    await user.clear(field);
    await user.type(field, " + ");
    expect(screen.getByText("Unsaved changes")).toBeInTheDocument();
    await user.keyboard("{Enter}");
    await waitFor(() => expect(calls).toHaveLength(1));
    expect(calls[0]).toMatchObject({ method: "PUT", body: { static: " + " } });
    expect(calls[0]?.url).toMatch(/\/steps\/join\/inputs\/separator$/);
    expect(await screen.findByText("All changes saved")).toBeInTheDocument();
    await waitFor(() => expect(screen.queryByText("1 problem")).not.toBeInTheDocument());
  });

  it("gives a password input a project secret only, and a file input an upload or a reference", async () => {
    logIn();
    studio(demoWorkflow());
    renderRoutes(routes, ["/p/demo/workflows/w1/edit"]);
    await screen.findByText("All changes saved");
    // the publisher's inputs: text (string), report (file), token (password)
    const canvas = screen.getByRole("group", { name: "Workflow canvas" });
    // a click without the pointer's mousedown: d3-drag needs a real window on the event
    fireEvent.click(within(canvas).getByText("Print to the run log"));
    const step = await screen.findByRole("region", { name: "Step log" });
    const token = within(step).getByRole("group", { name: "Input token" });
    expect(within(token).queryByRole("radiogroup")).not.toBeInTheDocument();
    expect(within(token).getByText("A password input takes a project secret only")).toBeInTheDocument();
    const report = within(step).getByRole("group", { name: "Input report" });
    expect(within(report).getAllByRole("radio").map((r) => r.getAttribute("value"))).toEqual(["file", "reference"]);
    expect(within(report).getByText("A file from an upstream output")).toBeInTheDocument();
    const text = within(step).getByRole("group", { name: "Input text" });
    expect(within(text).getAllByRole("radio").map((r) => r.getAttribute("value"))).toEqual(["static", "reference", "secret"]);
  });

  it("sets a step's HPC parameters and custom script next to its placement", async () => {
    logIn();
    const calls = studio(demoWorkflow());
    const user = userEvent.setup();
    renderRoutes(routes, ["/p/demo/workflows/w1/edit"]);
    await screen.findByText("All changes saved");
    const canvas = screen.getByRole("group", { name: "Workflow canvas" });
    fireEvent.click(within(canvas).getByText("Count words"));
    const step = await screen.findByRole("region", { name: "Step count" });
    const settings = within(step).getByRole("group", { name: "Settings of count" });
    const hpc = within(settings).getByLabelText("HPC parameters");
    await user.type(hpc, "partition=debug{Enter}tasks=4{Enter}");
    await user.type(within(settings).getByRole("textbox", { name: "HPC custom script" }), "srun ./count");
    await user.click(within(settings).getByRole("switch", { name: /Always warm/ }));
    await user.click(within(settings).getByRole("button", { name: "Apply settings" }));
    await waitFor(() => expect(calls).toHaveLength(1));
    expect(calls[0]?.url).toMatch(/\/steps\/count\/settings$/);
    expect(calls[0]?.body).toMatchObject({ site_name: null, always_warm: true, hpc: { partition: "debug", tasks: "4", custom_script: "srun ./count" } });
    // the answer's canonical keys are shown
    await waitFor(() => expect(within(settings).getByText("ntasks=4")).toBeInTheDocument());
    expect(within(settings).getByText("partition=debug")).toBeInTheDocument();
  });

  it("uploads a static file to a file input", async () => {
    logIn();
    const calls = studio(demoWorkflow());
    const user = userEvent.setup();
    renderRoutes(routes, ["/p/demo/workflows/w1/edit"]);
    await screen.findByText("All changes saved");
    const canvas = screen.getByRole("group", { name: "Workflow canvas" });
    fireEvent.click(within(canvas).getByText("Print to the run log"));
    const step = await screen.findByRole("region", { name: "Step log" });
    const report = within(step).getByRole("group", { name: "Input report" });
    await user.click(within(report).getByText("Upload"));
    const picker = report.querySelector<HTMLInputElement>('input[type="file"]');
    expect(picker).not.toBeNull();
    await user.upload(picker!, new File(["one two"], "words.txt", { type: "text/plain" }));
    await waitFor(() => expect(calls.some((c) => c.method === "POST")).toBe(true));
    const sent = calls.find((c) => c.method === "POST");
    expect(sent?.url).toMatch(/\/steps\/log\/inputs\/report\/file$/);
    // the part's content (jsdom's File loses its name through the test fetch: "blob")
    expect(sent?.body).toMatchObject({ text: "one two" });
    const shown = (sent?.body as { name: string }).name;
    expect(await within(canvas).findByText(`file ${shown}`)).toBeInTheDocument();
  });
});
