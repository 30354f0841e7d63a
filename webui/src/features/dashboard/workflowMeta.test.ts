import { describe, expect, it } from "vitest";

import { workflowSummary } from "../../../test/fixtures/handlers";
import { matches, triggerName } from "./workflowMeta";

const httpTrigger = { step_id: "api", action_id: "httpapijson", version: "1.0", name: "HTTP API JSON", kind: "trigger" as const, builtin: true };

describe("triggerName", () => {
  it("is the studio's name for the trigger, null without a trigger", () => {
    expect(triggerName(workflowSummary({ trigger: httpTrigger }))).toBe("HTTP API JSON");
    expect(triggerName(workflowSummary({ trigger: { ...httpTrigger, action_id: "gone", name: "gone", kind: null, builtin: false } }))).toBe("gone");
    expect(triggerName(workflowSummary({ trigger: null }))).toBeNull();
  });
});

describe("matches", () => {
  const none = { text: "", state: null, trigger: null, category: null };

  it("filters by text, state, trigger and category together", () => {
    const w = workflowSummary({ name: "Word counter", description: "counts words", deployment: null, trigger: httpTrigger, categories: ["Text"] });
    expect(matches(w, none)).toBe(true);
    expect(matches(w, { ...none, text: "COUNTS" })).toBe(true);
    expect(matches(w, { ...none, text: "zzz" })).toBe(false);
    expect(matches(w, { ...none, state: "not_deployed" })).toBe(true);
    expect(matches(w, { ...none, state: "deployed" })).toBe(false);
    expect(matches(w, { ...none, trigger: "HTTP API JSON", category: "Text" })).toBe(true);
    expect(matches(w, { ...none, trigger: "Timer" })).toBe(false);
    expect(matches(w, { ...none, category: "Storage" })).toBe(false);
    expect(matches(workflowSummary({ trigger: null }), { ...none, trigger: "HTTP API JSON" })).toBe(false);
  });
});
