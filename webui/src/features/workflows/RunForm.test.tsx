import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { http, HttpResponse } from "msw";
import { describe, expect, it, vi } from "vitest";

import { io, TRIGGER_FIELDS } from "../../../test/fixtures/studio";
import { logIn, ORIGIN, renderWithProviders } from "../../../test/render";
import { server } from "../../../test/server";
import { RunForm } from "./RunForm";

const ENDPOINT = `${ORIGIN}/runner/v1/projects/demo/endpoints/w1`;

describe("RunForm", () => {
  it("draws one labelled control per trigger field, by type", () => {
    logIn();
    const { container } = renderWithProviders(<RunForm project="demo" endpoint="w1" fields={TRIGGER_FIELDS} onStarted={vi.fn()} />);
    expect(screen.getByRole("textbox", { name: /Title/ })).toBeRequired();
    expect(screen.getByText("What the report is called")).toBeInTheDocument();
    expect(screen.getByRole("combobox", { name: "mode" })).toHaveValue("fast");
    expect(screen.getByRole("textbox", { name: "count" })).not.toBeRequired();
    expect(screen.getByRole("textbox", { name: "ratio" })).toHaveValue("0.5");
    expect(screen.getByRole("checkbox", { name: "verbose" })).not.toBeChecked();
    expect(screen.getByRole("textbox", { name: "notes" })).toBeInTheDocument();
    expect(container.querySelector('input[type="file"]')).not.toBeNull();
    expect(screen.getByRole("button", { name: /Data file/ })).toBeInTheDocument();
  });

  it("offers an enum's values as choices", async () => {
    logIn();
    const user = userEvent.setup();
    renderWithProviders(<RunForm project="demo" endpoint="w1" fields={TRIGGER_FIELDS} onStarted={vi.fn()} />);
    await user.click(screen.getByRole("combobox", { name: "mode" }));
    const listbox = await screen.findByRole("listbox", { hidden: true });
    expect(within(listbox).getAllByRole("option", { hidden: true }).map((o) => o.textContent)).toEqual(["fast", "exact"]);
  });

  it("refuses to start without the required fields, naming each", async () => {
    logIn();
    const user = userEvent.setup();
    const started = vi.fn();
    let called = false;
    server.use(http.post(ENDPOINT, () => ((called = true), HttpResponse.json({}))));
    renderWithProviders(<RunForm project="demo" endpoint="w1" fields={TRIGGER_FIELDS} onStarted={started} />);
    await user.click(screen.getByRole("button", { name: "Start run" }));
    expect(await screen.findByText("Required")).toBeInTheDocument();
    expect(screen.getByText("Choose a file")).toBeInTheDocument();
    expect(called).toBe(false);
    expect(started).not.toHaveBeenCalled();
  });

  it("starts the run with a multipart body and hands over the run id", async () => {
    logIn();
    const user = userEvent.setup();
    const started = vi.fn();
    let received: { mode: string | null; title: unknown; file: string | null; verbose: unknown } | null = null;
    server.use(
      http.post(ENDPOINT, async ({ request }) => {
        const form = await request.formData();
        const file = form.get("data");
        received = {
          mode: new URL(request.url).searchParams.get("mode"),
          title: form.get("title"),
          // jsdom's File crosses Node's fetch as a plain Blob (its name is lost on the way, which a
          // browser keeps): the content is what this checks; runForm.test.ts checks the name.
          file: typeof file === "object" && file !== null ? await file.text() : null,
          verbose: form.get("verbose"),
        };
        return HttpResponse.json({ run_id: "r42", state: "pending", status_url: "/runner/..." }, { status: 202, headers: { "Ryax-Run-Id": "r42" } });
      }),
    );
    const { container } = renderWithProviders(<RunForm project="demo" endpoint="w1" fields={TRIGGER_FIELDS} onStarted={started} />);
    await user.type(screen.getByRole("textbox", { name: /Title/ }), "Q3 report");
    await user.click(screen.getByRole("checkbox", { name: "verbose" }));
    const input = container.querySelector<HTMLInputElement>('input[type="file"]');
    if (!input) throw new Error("no file input");
    await user.upload(input, new File(["a,b\n"], "numbers.csv", { type: "text/csv" }));
    await user.click(screen.getByRole("button", { name: "Start run" }));
    await waitFor(() => expect(started).toHaveBeenCalledWith("r42"));
    expect(received).toEqual({ mode: "async", title: "Q3 report", file: "a,b\n", verbose: "true" });
  });

  it("shows the runner's own message when it refuses the run", async () => {
    logIn();
    const user = userEvent.setup();
    server.use(
      http.post(ENDPOINT, () =>
        HttpResponse.json({ error: "not_deployed", detail: "workflow demo is not deployed yet (deploying)" }, { status: 409 }),
      ),
    );
    renderWithProviders(<RunForm project="demo" endpoint="w1" fields={[io({ name: "n", type: "integer" })]} onStarted={vi.fn()} />);
    await user.type(screen.getByRole("textbox", { name: "n" }), "3");
    await user.click(screen.getByRole("button", { name: "Start run" }));
    expect(await screen.findByText("workflow demo is not deployed yet (deploying)")).toBeInTheDocument();
    expect(screen.getByText(/not_deployed · HTTP 409/)).toBeInTheDocument();
  });
});
