import { describe, expect, it } from "vitest";

import { workflowSummary } from "../../../test/fixtures/handlers";
import type { StoreAction, WorkflowStep } from "../../api/types";
import { catalogueIndex, matches, workflowMeta } from "./workflowMeta";

function action(action_id: string, kind: StoreAction["kind"], categories: string[], human_name = ""): StoreAction {
  return {
    action_id,
    version: "1.0",
    kind,
    human_name,
    description: "",
    type: "python3",
    categories,
    inputs: [],
    outputs: [],
    resources: { cpu: null, memory_bytes: null, time_seconds: null, gpu: null },
    artefact_key: "",
    artefact_sha256: "",
    has_logo: false,
    repository_id: "",
    source_commit: "",
    build_id: "",
    ready_at: null,
    builtin: false,
    dynamic_outputs: false,
  };
}

function step(id: string, action_id: string, streams_to: string[] = []): WorkflowStep {
  return { id, action_id, version: "1.0", human_name: null, position: null, inputs: {}, outputs: [], streams_to, settings: { labels: {}, timeout_seconds: null, retries: null, site_name: null, node_pool: null, resources: null } };
}

const catalogue = catalogueIndex([
  action("http-endpoint", "trigger", ["Triggers"], "HTTP endpoint"),
  action("word-count", "processor", ["Text", "Demo"]),
  action("to-s3", "publisher", ["Storage"]),
]);

describe("workflowMeta", () => {
  it("names the trigger by its action and gathers every category", () => {
    const meta = workflowMeta({ steps: [step("count", "word-count", ["save"]), step("t", "http-endpoint", ["count"]), step("save", "to-s3")] }, catalogue);
    expect(meta).toEqual({ trigger: "HTTP endpoint", triggerActionId: "http-endpoint", categories: ["Demo", "Storage", "Text", "Triggers"] });
  });

  it("falls back to the first step nothing streams to when the store does not know the action", () => {
    const meta = workflowMeta({ steps: [step("b", "gone-b"), step("a", "gone-a", ["b"])] }, catalogue);
    expect(meta.trigger).toBe("gone-a");
    expect(workflowMeta({ steps: [] }, catalogue).trigger).toBeNull();
  });
});

describe("matches", () => {
  const meta = { trigger: "HTTP endpoint", triggerActionId: "http-endpoint", categories: ["Text"] };
  const none = { text: "", state: null, trigger: null, category: null };

  it("filters by text, state, trigger and category together", () => {
    const w = workflowSummary({ name: "Word counter", description: "counts words", deployment: null });
    expect(matches(w, meta, none)).toBe(true);
    expect(matches(w, meta, { ...none, text: "COUNTS" })).toBe(true);
    expect(matches(w, meta, { ...none, text: "zzz" })).toBe(false);
    expect(matches(w, meta, { ...none, state: "not_deployed" })).toBe(true);
    expect(matches(w, meta, { ...none, state: "deployed" })).toBe(false);
    expect(matches(w, meta, { ...none, trigger: "HTTP endpoint", category: "Text" })).toBe(true);
    expect(matches(w, meta, { ...none, category: "Storage" })).toBe(false);
    expect(matches(w, undefined, { ...none, trigger: "HTTP endpoint" })).toBe(false);
  });
});
