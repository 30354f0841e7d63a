import { screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { renderWithProviders } from "../../test/render";
import { ApiError } from "../api/errors";
import { ErrorAlert } from "./ErrorAlert";

describe("ErrorAlert", () => {
  it("shows the service's message, its code and status, and each located problem", () => {
    const error = ApiError.from(422, {
      error: "invalid_workflow",
      detail: "the workflow is not valid",
      problems: [
        { code: "missing_input", message: "no value and no default", step_id: "count", input: "text", line: null, path: null },
        { code: "yaml_syntax", message: "mapping values are not allowed here", step_id: null, input: null, line: 12, path: "spec.functions[1]" },
      ],
    });
    renderWithProviders(<ErrorAlert error={error} title="The workflow was not deployed" />);
    const alert = screen.getByRole("alert");
    expect(alert).toHaveTextContent("The workflow was not deployed");
    expect(alert).toHaveTextContent("the workflow is not valid");
    expect(alert).toHaveTextContent("invalid_workflow · HTTP 422");
    expect(screen.getByRole("list", { name: "Problems" })).toHaveTextContent("step count, input text: no value and no default");
    expect(screen.getByRole("list", { name: "Problems" })).toHaveTextContent("spec.functions[1], line 12: mapping values are not allowed here");
  });

  it("shows any other thrown value without a status", () => {
    renderWithProviders(<ErrorAlert error={new Error("boom")} />);
    expect(screen.getByRole("alert")).toHaveTextContent("Something went wrong");
    expect(screen.getByRole("alert")).toHaveTextContent("boom");
    expect(screen.queryByText(/HTTP/)).not.toBeInTheDocument();
  });
});
