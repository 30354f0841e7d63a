import { readFileSync } from "node:fs";
import path from "node:path";

import { describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";

import { ACTIONS, demoWorkflow } from "../../../test/fixtures/demo";
import { catalogueIndex } from "../dashboard/workflowMeta";
import {
  apply,
  checkConnection,
  diffDocs,
  EMPTY_SETTINGS,
  fromWorkflow,
  indexProblems,
  inputHandle,
  inputModes,
  LINK_IN,
  LINK_OUT,
  newStepId,
  outputHandle,
  referenceChoices,
  reuse,
  shortMessage,
  toDocument,
  type EditOp,
  type EditorDoc,
} from "./model";

const catalogue = catalogueIndex(ACTIONS);
const demo = () => fromWorkflow(demoWorkflow());
const ref = (source: string, output: string, target: string, input: string) => ({
  source,
  sourceHandle: outputHandle(output),
  target,
  targetHandle: inputHandle(input),
});
const empty: EditorDoc = { name: "w", description: "", steps: [], results: [] };

describe("the YAML round trip through the model", () => {
  it("gives back examples/workflows/demo.yaml from what the studio answers for it", () => {
    const file = readFileSync(path.resolve(__dirname, "../../../../examples/workflows/demo.yaml"), "utf8");
    const text = stringify(toDocument(demo()));
    expect(parse(text)).toEqual(parse(file));
  });

  it("keeps edits in the document: a secret, a static value, a removed link", () => {
    let doc = demo();
    doc = apply(doc, { type: "setInput", step: "join", input: "separator", value: { mode: "static", value: " / " } });
    doc = apply(doc, { type: "setInput", step: "report", input: "title", value: { mode: "secret", name: "report-title" } });
    doc = apply(doc, { type: "removeLink", from: "count", to: "slug" });
    const spec = parse(stringify(toDocument(doc))) as { spec: { functions: Record<string, unknown>[] } };
    const byId = Object.fromEntries(spec.spec.functions.map((f) => [f.id as string, f]));
    expect(byId.join?.inputs_values).toMatchObject({ separator: " / " });
    expect(byId.report?.inputs_values).toMatchObject({ title: { project_variable_value: "report-title" } });
    expect(byId.count?.streams_to).toEqual(["shout"]);
  });

  it("writes a step's settings as the studio's export does", () => {
    const settings = {
      timeout_seconds: 3600,
      retries: 2,
      site_name: "hpc",
      node_pool: "debug",
      labels: { zone: "eu" },
      resources: { cpu: 2, memory_bytes: 1024 ** 3, time_seconds: 600, gpu: null },
      hpc: { partition: "debug", nodes: "2", ntasks: "4", exclusive: "true", custom_script: "srun ./a" },
      always_warm: true,
    };
    const doc = apply(demo(), { type: "setSettings", step: "count", settings });
    const spec = parse(stringify(toDocument(doc))) as { spec: { functions: Record<string, unknown>[] } };
    const count = spec.spec.functions.find((f) => f.id === "count");
    expect(count).toMatchObject({
      resources: { cpu: 2, memory: "1G", time: "10m" },
      addons: { hpc: { partition: "debug", nodes: 2, ntasks: 4, exclusive: true, custom_script: "srun ./a" } },
      placement: { site: "hpc", node_pool: "debug", labels: { zone: "eu" } },
      timeout: "1h",
      retries: 2,
      always_warm: true,
    });
    expect(spec.spec.functions.find((f) => f.id === "log")).not.toHaveProperty("addons");
    expect(spec.spec.functions.find((f) => f.id === "log")).not.toHaveProperty("always_warm");
  });
});

describe("adding steps", () => {
  it("names a step after its action, unique in the workflow, within the studio's id rule", () => {
    expect(newStepId(empty, "uppercase")).toBe("uppercase");
    const doc = apply(empty, { type: "addStep", id: "uppercase", actionId: "uppercase", version: "1.0", position: { x: 1, y: 0 }, trigger: false });
    expect(newStepId(doc, "uppercase")).toBe("uppercase-2");
    expect(newStepId(empty, "My_Action.v2")).toBe("my-action-v2");
    expect(newStepId(empty, "--")).toBe("step");
  });

  it("puts a trigger first and the others after, as the studio does", () => {
    let doc = apply(empty, { type: "addStep", id: "a", actionId: "uppercase", version: "1.0", position: { x: 1, y: 0 }, trigger: false });
    doc = apply(doc, { type: "addStep", id: "api", actionId: "httpapijson", version: "1.0", position: { x: 0, y: 0 }, trigger: true });
    expect(doc.steps.map((s) => s.id)).toEqual(["api", "a"]);
    expect(doc.steps[0]?.position).toEqual({ x: 0, y: 0 });
  });

  it("removes a step with its links and keeps the references to it (the studio reports them)", () => {
    const doc = apply(demo(), { type: "removeStep", id: "count" });
    expect(doc.steps.find((s) => s.id === "report")?.streamsTo).toEqual([]);
    expect(doc.steps.find((s) => s.id === "log")?.inputs.total).toEqual({ mode: "reference", step: "count", output: "total" });
  });
});

describe("linking", () => {
  it("links two steps, and refuses a second link, a cycle, a link into the trigger or to itself", () => {
    const doc = demo();
    const link = (source: string, target: string) => checkConnection(doc, catalogue, { source, sourceHandle: LINK_OUT, target, targetHandle: LINK_IN });
    expect(link("api", "log")).toEqual({ ok: true, ops: [{ type: "addLink", from: "api", to: "log" }] });
    expect(link("api", "report")).toMatchObject({ ok: false, reason: "api already streams to report" });
    expect(link("log", "report")).toMatchObject({ ok: false, reason: "linking log → report would make a cycle" });
    expect(link("report", "api")).toMatchObject({ ok: false, reason: "a trigger cannot have upstream steps" });
    expect(link("join", "join")).toMatchObject({ ok: false, reason: "a step cannot feed itself" });
  });

  it("refuses to mix a step handle with an input handle", () => {
    expect(checkConnection(demo(), catalogue, { source: "api", sourceHandle: LINK_OUT, target: "log", targetHandle: inputHandle("text") })).toMatchObject({ ok: false });
  });
});

describe("typed references", () => {
  it("sets a reference from an upstream output without a new link", () => {
    expect(checkConnection(demo(), catalogue, ref("api", "text", "join", "left"))).toEqual({
      ok: true,
      ops: [{ type: "setInput", step: "join", input: "left", value: { mode: "reference", step: "api", output: "text" } }],
    });
  });

  it("links the steps as well when the source is not upstream yet", () => {
    let doc = apply(empty, { type: "addStep", id: "wc", actionId: "word-count", version: "1.0", position: { x: 0, y: 0 }, trigger: false });
    doc = apply(doc, { type: "addStep", id: "mr", actionId: "make-report", version: "1.0", position: { x: 0, y: 0 }, trigger: false });
    const check = checkConnection(doc, catalogue, ref("mr", "report", "wc", "document"));
    expect(check).toEqual({
      ok: true,
      ops: [
        { type: "addLink", from: "mr", to: "wc" },
        { type: "setInput", step: "wc", input: "document", value: { mode: "reference", step: "mr", output: "report" } },
      ],
    });
  });

  it("refuses outputs of another type, password inputs, downstream sources", () => {
    const doc = demo();
    expect(checkConnection(doc, catalogue, ref("count", "total", "log", "text"))).toEqual({ ok: false, reason: "a string input cannot take an integer output" });
    expect(checkConnection(doc, catalogue, ref("report", "report", "join", "left"))).toMatchObject({ ok: false, reason: "a string input cannot take a file output" });
    expect(checkConnection(doc, catalogue, ref("join", "text", "log", "token"))).toMatchObject({ ok: false, reason: /secret only/ });
    expect(checkConnection(doc, catalogue, ref("log", "missing", "report", "text"))).toMatchObject({ ok: false });
    expect(checkConnection(doc, catalogue, ref("join", "text", "report", "text"))).toMatchObject({ ok: false, reason: /cycle/ });
  });

  it("offers the same-typed outputs of the steps that are not downstream", () => {
    const doc = demo();
    const text = ACTIONS.find((a) => a.action_id === "print-publisher")?.inputs.find((i) => i.name === "text");
    const choices = referenceChoices(doc, catalogue, "join", text!);
    expect(choices.map((c) => `${c.step}.${c.output.name}:${c.upstream}`)).toEqual(["api.text:true", "shout.upper:true", "slug.slug:true"]);
    const file = ACTIONS.find((a) => a.action_id === "word-count")?.inputs[0];
    expect(referenceChoices(doc, catalogue, "log", file!).map((c) => `${c.step}.${c.output.name}`)).toEqual(["report.report", "count.counts"]);
  });
});

describe("input modes", () => {
  it("follows the studio's rules by type", () => {
    expect(inputModes("string")).toEqual(["static", "reference", "secret"]);
    expect(inputModes("longstring")).toEqual(["static", "reference", "secret"]);
    expect(inputModes("integer")).toEqual(["static", "reference"]);
    expect(inputModes("enum")).toEqual(["static", "reference"]);
    expect(inputModes("boolean")).toEqual(["static", "reference"]);
    expect(inputModes("password")).toEqual(["secret"]);
    expect(inputModes("file")).toEqual(["file", "reference"]);
    expect(inputModes("directory")).toEqual(["file", "reference"]);
  });

  it("reads each mode from the studio's answer and applies each edit", () => {
    const w = demoWorkflow();
    w.steps[1]!.inputs.title = { static: null, secret: "title", reference: null, file: null };
    const doc = fromWorkflow(w);
    expect(doc.steps[1]?.inputs).toEqual({ text: { mode: "reference", step: "api", output: "text" }, title: { mode: "secret", name: "title" } });
    expect(doc.steps[0]?.inputs.timeout).toEqual({ mode: "static", value: 30 });
    const unset = apply(doc, { type: "unsetInput", step: "report", input: "title" });
    expect(Object.keys(unset.steps[1]?.inputs ?? {})).toEqual(["text"]);
  });
});

describe("static files", () => {
  it("are read from the studio's answer, uploaded, and written as the zip export names them", () => {
    const w = demoWorkflow();
    w.steps[2]!.inputs.document = { static: null, secret: null, reference: null, file: { name: "words.txt", size: 19, sha256: "ab", directory: false } };
    const doc = fromWorkflow(w);
    expect(doc.steps[2]?.inputs.document).toEqual({ mode: "file", name: "words.txt", size: 19, directory: false });
    const uploaded = apply(doc, {
      type: "uploadFile",
      step: "count",
      input: "document",
      file: new File(["a b c"], "data.tar.gz"),
      directory: true,
    });
    expect(uploaded.steps[2]?.inputs.document).toEqual({ mode: "file", name: "data", size: 5, directory: true });
    const spec = parse(stringify(toDocument(doc))) as { spec: { functions: { inputs_values?: Record<string, unknown> }[] } };
    expect(spec.spec.functions[2]?.inputs_values?.document).toEqual({ static_file: "files/count/document/words.txt" });
    const dirSpec = parse(stringify(toDocument(uploaded))) as typeof spec;
    expect(dirSpec.spec.functions[2]?.inputs_values?.document).toEqual({ static_directory: "files/count/document/data/" });
  });
});

describe("the studio's problems", () => {
  it("go to their step and input, the rest to the workflow", () => {
    const index = indexProblems([
      { code: "no_trigger", message: "the workflow has no trigger", step_id: null, input: null, line: null, path: null, file: null },
      { code: "missing_input", message: "step 'join', input 'left': required string input has no value", step_id: "join", input: "left", line: null, path: null, file: null },
      { code: "not_connected", message: "step 'join': is not downstream of the trigger", step_id: "join", input: null, line: null, path: null, file: null },
    ]);
    expect(index.workflow.map((p) => p.code)).toEqual(["no_trigger"]);
    const join = index.steps.get("join");
    expect(join?.all).toHaveLength(2);
    expect(join?.step.map((p) => p.code)).toEqual(["not_connected"]);
    expect(join?.inputs.get("left")?.map(shortMessage)).toEqual(["required string input has no value"]);
    expect(shortMessage(join!.step[0]!)).toBe("is not downstream of the trigger");
  });
});

describe("reuse", () => {
  it("keeps the objects of the steps that did not change", () => {
    const before = demo();
    const after = apply(before, { type: "moveSteps", moves: [{ id: "log", position: { x: 2, y: 5 } }] });
    const again = reuse(after, fromWorkflow(demoWorkflow({ steps: demoWorkflow().steps.map((s) => (s.id === "log" ? { ...s, position: { x: 2, y: 5 } } : s)) })));
    expect(again).toBe(after);
    const changed = reuse(before, fromWorkflow(demoWorkflow({ name: "other" })));
    expect(changed.steps).toBe(before.steps);
    expect(changed.name).toBe("other");
  });
});

describe("undo: the edits from one model to another", () => {
  const sorted = (d: EditorDoc) => ({ ...d, steps: [...d.steps].sort((a, b) => a.id.localeCompare(b.id)) });
  const edits: Record<string, EditOp[]> = {
    "a removed step, its links and the references to it": [{ type: "removeStep", id: "count" }],
    "an added step with values and settings": [
      { type: "addStep", id: "extra", actionId: "uppercase", version: "1.0", position: { x: 7, y: 2 }, trigger: false },
      { type: "addLink", from: "api", to: "extra" },
      { type: "setInput", step: "extra", input: "text", value: { mode: "reference", step: "api", output: "text" } },
      { type: "setSettings", step: "extra", settings: { ...EMPTY_SETTINGS, site_name: "hpc-1", retries: 2 } },
    ],
    "moves, a rename, a value unset, results, the name": [
      { type: "moveSteps", moves: [{ id: "log", position: { x: 4, y: 4 } }, { id: "join", position: { x: 5, y: 1 } }] },
      { type: "renameStep", id: "join", humanName: "Join them" },
      { type: "unsetInput", step: "join", input: "separator" },
      { type: "setResults", results: [] },
      { type: "updateWorkflow", name: "renamed", description: "d" },
    ],
  };
  for (const [what, ops] of Object.entries(edits)) {
    it(`undoes and redoes ${what}`, () => {
      const before = demo();
      const after = ops.reduce(apply, before);
      expect(sorted(after)).not.toEqual(sorted(before));
      const undone = diffDocs(after, before).reduce(apply, after);
      expect(sorted(undone)).toEqual(sorted(before));
      const redone = diffDocs(undone, after).reduce(apply, undone);
      expect(sorted(redone)).toEqual(sorted(after));
    });
  }

  it("sends nothing between equal models", () => {
    expect(diffDocs(demo(), demo())).toEqual([]);
  });
});
