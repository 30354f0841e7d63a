import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { renderWithProviders } from "../../../test/render";
import type { Scan } from "../../api/types";
import { ScanReport } from "./ScanReport";

const SCAN: Scan = {
  id: "s1",
  origin: "git",
  name: "examples",
  repository_id: "repo1",
  branch: "main",
  commit: "0123456789abcdef",
  started_at: "2026-01-01T10:00:00Z",
  finished_at: "2026-01-01T10:00:02Z",
  forced: false,
  counts: { found: 3, new: 1, unchanged: 1, changed_same_version: 0, replaced: 0, invalid: 1, errors: 2, warnings: 1 },
  actions: [
    { path: "word-count", status: "new", action_id: "word-count", version: "1.0", kind: "processor", source_id: "a1", state: "valid", sha256: "x", recorded_sha256: null, message: "recorded", errors: [], warnings: [] },
    { path: "echo", status: "unchanged", action_id: "echo", version: "2.0", kind: "processor", source_id: "a2", state: "built", sha256: "y", recorded_sha256: "y", message: "same content", errors: [], warnings: [] },
    {
      path: "broken",
      status: "invalid",
      action_id: null,
      version: null,
      kind: null,
      source_id: null,
      state: null,
      sha256: null,
      recorded_sha256: null,
      message: "2 errors",
      errors: [],
      warnings: [],
    },
  ],
  errors: [
    // As the repository writes them: a located message starts with its field.
    { file: "broken/ryax_metadata.yaml", line: 18, field: "spec.inputs[0].type", message: "spec.inputs[0].type: expected one of string, longstring, integer…, got the string 'int'" },
    { file: "broken/ryax_handler.py", line: 0, field: "", message: "the handler file is missing" },
  ],
  warnings: [{ file: "echo/ryax_metadata.yaml", line: 3, field: "spec.logo", message: "spec.logo: logo.png not found: no logo" }],
  build_ids: [],
};

describe("ScanReport", () => {
  it("lists every located error: file, line, field and message (the field named once)", () => {
    renderWithProviders(<ScanReport scan={SCAN} />);
    const table = screen.getByRole("table", { name: "Scan errors" });
    const rows = within(table).getAllByRole("row").slice(1).map((r) => within(r).getAllByRole("cell").map((c) => c.textContent));
    expect(rows).toEqual([
      ["broken/ryax_metadata.yaml", "18", "spec.inputs[0].type", "expected one of string, longstring, integer…, got the string 'int'"],
      ["broken/ryax_handler.py", "—", "—", "the handler file is missing"],
    ]);
    expect(screen.getByRole("heading", { name: "2 errors" })).toBeInTheDocument();
  });

  it("shows the warnings apart, the counts and what each folder gave", () => {
    renderWithProviders(<ScanReport scan={SCAN} />);
    const warnings = screen.getByRole("table", { name: "Scan warnings" });
    expect(within(warnings).getByText("logo.png not found: no logo")).toBeInTheDocument();
    expect(screen.getByText("3 found")).toBeInTheDocument();
    expect(screen.getByText("1 invalid")).toBeInTheDocument();
    expect(screen.queryByText(/replaced/)).not.toBeInTheDocument();
    const found = screen.getByRole("table", { name: "Actions found" });
    expect(within(found).getByText("word-count 1.0")).toBeInTheDocument();
    expect(within(found).getByText("Invalid")).toBeInTheDocument();
    expect(screen.getByText("0123456789")).toBeInTheDocument();
  });

  it("says when nothing was found", () => {
    renderWithProviders(
      <ScanReport scan={{ ...SCAN, actions: [], errors: [], warnings: [], counts: { ...SCAN.counts, found: 0, errors: 0, warnings: 0 } }} />,
    );
    expect(screen.getByText(/No ryax_metadata.yaml was found/)).toBeInTheDocument();
    expect(screen.queryByRole("table", { name: "Scan errors" })).not.toBeInTheDocument();
  });
});
