/**
 * The studio editor's model: a workflow's definition as the editor holds it, the edits a user
 * makes (each one call of the studio's API), and the rules the editor checks before sending
 * (the studio's own: typed references, secrets, triggers, cycles). Pure functions, no React:
 * the store (editorStore.ts) applies the edits optimistically and sends them in order.
 */
import type { ActionIO, IOType, ProblemOut, StoreAction, Workflow, WorkflowStep } from "../../api/types";
import type { XY } from "../../graph/layout";

export type Catalogue = Map<string, StoreAction>;

export type InputMode = "static" | "reference" | "secret" | "file";

export type InputValue =
  | { mode: "static"; value: unknown }
  | { mode: "secret"; name: string }
  | { mode: "reference"; step: string; output: string }
  /** A static file (or directory, kept as a tar) uploaded to the studio: shown by name. */
  | { mode: "file"; name: string; size: number; directory: boolean };

export interface Resources {
  cpu: number | null;
  memory_bytes: number | null;
  time_seconds: number | null;
  gpu: number | null;
}

/** Per-step settings the studio keeps (PUT .../steps/{step}/settings). */
export interface StepSettings {
  timeout_seconds: number | null;
  retries: number | null;
  site_name: string | null;
  node_pool: string | null;
  labels: Record<string, string>;
  resources: Resources | null;
  /** Ryax's HPC add-on parameters for a Slurm site (partition, nodes, custom_script...), as
   * texts under the studio's canonical keys. */
  hpc: Record<string, string>;
  /** Keep its action process running while idle (no cold start); null = the default (no). */
  always_warm: boolean | null;
}

export interface EditorStep {
  id: string;
  actionId: string;
  version: string;
  humanName: string | null;
  /** Grid cells, as the studio stores it (null: never placed). */
  position: XY | null;
  inputs: Record<string, InputValue>;
  /** Outputs declared in the workflow (a trigger with dynamic outputs: its request fields). */
  outputs: ActionIO[];
  streamsTo: string[];
  settings: StepSettings;
}

export interface WorkflowResult {
  key: string;
  step: string;
  output: string;
}

export interface EditorDoc {
  name: string;
  description: string;
  steps: EditorStep[];
  results: WorkflowResult[];
}

export type EditOp =
  | { type: "addStep"; id: string; actionId: string; version: string; position: XY; trigger: boolean }
  | { type: "removeStep"; id: string }
  | { type: "moveSteps"; moves: { id: string; position: XY }[] }
  | { type: "renameStep"; id: string; humanName: string | null }
  | { type: "changeVersion"; id: string; version: string }
  | { type: "setInput"; step: string; input: string; value: InputValue }
  | { type: "unsetInput"; step: string; input: string }
  /** Upload a file (a directory: a zip or tar of its contents) as an input's static value. */
  | { type: "uploadFile"; step: string; input: string; file: File; directory: boolean }
  | { type: "addLink"; from: string; to: string }
  | { type: "removeLink"; from: string; to: string }
  | { type: "setOutputs"; step: string; outputs: ActionIO[] }
  | { type: "setSettings"; step: string; settings: StepSettings }
  | { type: "setResults"; results: WorkflowResult[] }
  | { type: "updateWorkflow"; name?: string; description?: string };

export const EMPTY_SETTINGS: StepSettings = {
  timeout_seconds: null,
  retries: null,
  site_name: null,
  node_pool: null,
  labels: {},
  resources: null,
  hpc: {},
  always_warm: null,
};

// ---- from the studio's answer --------------------------------------------------------------

export function inputValueOf(v: WorkflowStep["inputs"][string]): InputValue {
  if (v.reference) return { mode: "reference", step: v.reference.step, output: v.reference.output };
  if (typeof v.secret === "string") return { mode: "secret", name: v.secret };
  if (v.file) return { mode: "file", name: v.file.name, size: v.file.size, directory: v.file.directory };
  return { mode: "static", value: v.static };
}

export function stepOf(s: WorkflowStep): EditorStep {
  return {
    id: s.id,
    actionId: s.action_id,
    version: s.version,
    humanName: s.human_name,
    position: s.position ? { x: s.position.x, y: s.position.y } : null,
    inputs: Object.fromEntries(Object.entries(s.inputs).map(([k, v]) => [k, inputValueOf(v)])),
    outputs: s.outputs,
    streamsTo: s.streams_to,
    settings: {
      timeout_seconds: s.settings.timeout_seconds,
      retries: s.settings.retries,
      site_name: s.settings.site_name,
      node_pool: s.settings.node_pool,
      labels: s.settings.labels ?? {},
      resources: s.settings.resources,
      hpc: Object.fromEntries(Object.entries(s.settings.hpc ?? {}).map(([k, v]) => [k, String(v)])),
      always_warm: s.settings.always_warm ?? null,
    },
  };
}

export function fromWorkflow(w: Pick<Workflow, "name" | "description" | "steps" | "results">): EditorDoc {
  return {
    name: w.name,
    description: w.description,
    steps: w.steps.map(stepOf),
    results: w.results.map((r) => ({ key: r.key, step: r.step, output: r.output })),
  };
}

/** `next`, reusing every part of `prev` that did not change (memoized nodes stay put). */
export function reuse(prev: EditorDoc | null, next: EditorDoc): EditorDoc {
  if (!prev) return next;
  const before = new Map(prev.steps.map((s) => [s.id, s]));
  let same = prev.steps.length === next.steps.length;
  const steps = next.steps.map((s, i) => {
    const old = before.get(s.id);
    const kept = old && JSON.stringify(old) === JSON.stringify(s) ? old : s;
    if (kept !== prev.steps[i]) same = false;
    return kept;
  });
  const results = JSON.stringify(prev.results) === JSON.stringify(next.results) ? prev.results : next.results;
  if (same && results === prev.results && prev.name === next.name && prev.description === next.description) return prev;
  return { ...next, steps: same ? prev.steps : steps, results };
}

// ---- the catalogue ---------------------------------------------------------------------------

export const actionKey = (actionId: string, version: string) => `${actionId}@${version}`;

export function actionOf(catalogue: Catalogue, step: Pick<EditorStep, "actionId" | "version">): StoreAction | undefined {
  return catalogue.get(actionKey(step.actionId, step.version));
}

/** The outputs a step produces: its action's, plus its own when the action has dynamic outputs. */
export function outputsOf(step: EditorStep, action: StoreAction | undefined): ActionIO[] {
  if (!action) return step.outputs;
  return action.dynamic_outputs ? [...action.outputs, ...step.outputs] : action.outputs;
}

export function isTrigger(step: EditorStep, catalogue: Catalogue): boolean {
  return actionOf(catalogue, step)?.kind === "trigger";
}

// ---- edits -----------------------------------------------------------------------------------

function mapStep(doc: EditorDoc, id: string, change: (s: EditorStep) => EditorStep): EditorDoc {
  return { ...doc, steps: doc.steps.map((s) => (s.id === id ? change(s) : s)) };
}

/** The edit applied to the model, as the studio applies it (optimistic view while it is sent). */
export function apply(doc: EditorDoc, op: EditOp): EditorDoc {
  switch (op.type) {
    case "addStep": {
      const step: EditorStep = {
        id: op.id,
        actionId: op.actionId,
        version: op.version,
        humanName: null,
        position: op.position,
        inputs: {},
        outputs: [],
        streamsTo: [],
        settings: EMPTY_SETTINGS,
      };
      // the studio puts a trigger first (the format's rule)
      return { ...doc, steps: op.trigger ? [step, ...doc.steps] : [...doc.steps, step] };
    }
    case "removeStep":
      return {
        ...doc,
        steps: doc.steps
          .filter((s) => s.id !== op.id)
          .map((s) => (s.streamsTo.includes(op.id) ? { ...s, streamsTo: s.streamsTo.filter((c) => c !== op.id) } : s)),
      };
    case "moveSteps": {
      const to = new Map(op.moves.map((m) => [m.id, m.position]));
      return { ...doc, steps: doc.steps.map((s) => (to.has(s.id) ? { ...s, position: to.get(s.id) ?? null } : s)) };
    }
    case "renameStep":
      return mapStep(doc, op.id, (s) => ({ ...s, humanName: op.humanName }));
    case "changeVersion":
      return mapStep(doc, op.id, (s) => ({ ...s, version: op.version }));
    case "setInput":
      return mapStep(doc, op.step, (s) => ({ ...s, inputs: { ...s.inputs, [op.input]: op.value } }));
    case "uploadFile":
      return mapStep(doc, op.step, (s) => ({
        ...s,
        inputs: { ...s.inputs, [op.input]: { mode: "file", name: uploadedName(op.file.name, op.directory), size: op.file.size, directory: op.directory } },
      }));
    case "unsetInput":
      return mapStep(doc, op.step, (s) => ({ ...s, inputs: Object.fromEntries(Object.entries(s.inputs).filter(([k]) => k !== op.input)) }));
    case "addLink":
      return mapStep(doc, op.from, (s) => (s.streamsTo.includes(op.to) ? s : { ...s, streamsTo: [...s.streamsTo, op.to] }));
    case "removeLink":
      return mapStep(doc, op.from, (s) => ({ ...s, streamsTo: s.streamsTo.filter((c) => c !== op.to) }));
    case "setOutputs":
      return mapStep(doc, op.step, (s) => ({ ...s, outputs: op.outputs }));
    case "setSettings":
      return mapStep(doc, op.step, (s) => ({ ...s, settings: op.settings }));
    case "setResults":
      return { ...doc, results: op.results };
    case "updateWorkflow":
      return { ...doc, name: op.name ?? doc.name, description: op.description ?? doc.description };
  }
}

/** What the save-state line says an edit was. */
export function describeOp(op: EditOp): string {
  switch (op.type) {
    case "addStep":
      return `add step ${op.id}`;
    case "removeStep":
      return `remove step ${op.id}`;
    case "moveSteps":
      return op.moves.length === 1 ? `move ${op.moves[0]?.id ?? ""}` : `move ${op.moves.length} steps`;
    case "renameStep":
      return `rename ${op.id}`;
    case "changeVersion":
      return `switch ${op.id} to version ${op.version}`;
    case "setInput":
      return `set ${op.step}.${op.input}`;
    case "uploadFile":
      return `upload ${op.file.name} to ${op.step}.${op.input}`;
    case "unsetInput":
      return `unset ${op.step}.${op.input}`;
    case "addLink":
      return `link ${op.from} → ${op.to}`;
    case "removeLink":
      return `unlink ${op.from} → ${op.to}`;
    case "setOutputs":
      return `outputs of ${op.step}`;
    case "setSettings":
      return `settings of ${op.step}`;
    case "setResults":
      return "results";
    case "updateWorkflow":
      return "name and description";
  }
}

// ---- ids -------------------------------------------------------------------------------------

/** The studio's rule for step ids. */
export const STEP_ID_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** A free step id made from the action's id: `uppercase`, then `uppercase-2`... */
export function newStepId(doc: EditorDoc, actionId: string): string {
  const base =
    actionId
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .replace(/^[^a-z0-9]+/, "")
      .replace(/-+$/, "")
      .slice(0, 56) || "step";
  const taken = new Set(doc.steps.map((s) => s.id));
  if (!taken.has(base)) return base;
  for (let n = 2; ; n++) if (!taken.has(`${base}-${n}`)) return `${base}-${n}`;
}

// ---- the graph ---------------------------------------------------------------------------------

export function parentsOf(doc: EditorDoc): Map<string, string[]> {
  const parents = new Map<string, string[]>();
  for (const s of doc.steps) for (const c of s.streamsTo) parents.set(c, [...(parents.get(c) ?? []), s.id]);
  return parents;
}

/** Every step upstream of `id` (through links). */
export function ancestors(doc: EditorDoc, id: string, parents = parentsOf(doc)): Set<string> {
  const seen = new Set<string>();
  const todo = [...(parents.get(id) ?? [])];
  while (todo.length > 0) {
    const current = todo.pop();
    if (current === undefined || seen.has(current)) continue;
    seen.add(current);
    todo.push(...(parents.get(current) ?? []));
  }
  seen.delete(id);
  return seen;
}

/** Every step downstream of `id`. */
export function descendants(doc: EditorDoc, id: string): Set<string> {
  const byId = new Map(doc.steps.map((s) => [s.id, s]));
  const seen = new Set<string>();
  const todo = [id];
  while (todo.length > 0) {
    const current = byId.get(todo.pop() ?? "");
    for (const c of current?.streamsTo ?? []) {
      if (!seen.has(c)) {
        seen.add(c);
        todo.push(c);
      }
    }
  }
  return seen;
}

// ---- types: what an input accepts --------------------------------------------------------------

/** The modes an input can be given, by type (the studio's rules). */
export function inputModes(type: IOType): InputMode[] {
  if (type === "password") return ["secret"]; // a password takes a project secret only
  if (type === "file" || type === "directory") return ["file", "reference"]; // uploaded, or upstream
  if (type === "string" || type === "longstring") return ["static", "reference", "secret"];
  return ["static", "reference"];
}

const article = (word: string) => (/^[aeiou]/.test(word) ? "an" : "a");

/** Why `input` cannot take `output` (the studio's `type_mismatch` rule), or null. */
export function referenceRefusal(input: ActionIO, output: ActionIO): string | null {
  if (input.type === "password") return "a password input takes a project secret only, not an output";
  if (output.type !== input.type) return `${article(input.type)} ${input.type} input cannot take ${article(output.type)} ${output.type} output`;
  if (input.type === "enum") {
    const extra = output.enum_values.filter((v) => !input.enum_values.includes(v));
    if (extra.length > 0) return `the enum output may be ${extra.join(", ")}, which this input does not accept`;
  }
  return null;
}

export const LINK_OUT = "out";
export const LINK_IN = "in";
export const inputHandle = (name: string) => `i:${name}`;
export const outputHandle = (name: string) => `o:${name}`;

export interface Connection {
  source: string;
  sourceHandle: string | null;
  target: string;
  targetHandle: string | null;
}

export type ConnectionCheck = { ok: true; ops: EditOp[] } | { ok: false; reason: string };

/**
 * What drawing an edge means, or why it is refused: a step-to-step edge links them (`streams_to`);
 * an output-to-input edge sets the input to a reference to that output, and links the two steps
 * when the source is not upstream yet (a reference must come from upstream).
 */
export function checkConnection(doc: EditorDoc, catalogue: Catalogue, c: Connection): ConnectionCheck {
  const source = doc.steps.find((s) => s.id === c.source);
  const target = doc.steps.find((s) => s.id === c.target);
  if (!source || !target) return { ok: false, reason: "unknown step" };
  if (source.id === target.id) return { ok: false, reason: "a step cannot feed itself" };
  if (isTrigger(target, catalogue)) return { ok: false, reason: "a trigger cannot have upstream steps" };
  const linked = source.streamsTo.includes(target.id);
  const cycle = descendants(doc, target.id).has(source.id);
  const sourceHandle = c.sourceHandle ?? LINK_OUT;
  const targetHandle = c.targetHandle ?? LINK_IN;
  if (sourceHandle === LINK_OUT && targetHandle === LINK_IN) {
    if (linked) return { ok: false, reason: `${source.id} already streams to ${target.id}` };
    if (cycle) return { ok: false, reason: `linking ${source.id} → ${target.id} would make a cycle` };
    return { ok: true, ops: [{ type: "addLink", from: source.id, to: target.id }] };
  }
  if (!sourceHandle.startsWith("o:") || !targetHandle.startsWith("i:")) {
    return { ok: false, reason: "draw from an output to an input, or from a step to a step" };
  }
  const outputName = sourceHandle.slice(2);
  const inputName = targetHandle.slice(2);
  const output = outputsOf(source, actionOf(catalogue, source)).find((o) => o.name === outputName);
  const input = actionOf(catalogue, target)?.inputs.find((i) => i.name === inputName);
  if (!output) return { ok: false, reason: `${source.id} has no output ${outputName}` };
  if (!input) return { ok: false, reason: `${target.id} has no input ${inputName}` };
  const refused = referenceRefusal(input, output);
  if (refused) return { ok: false, reason: refused };
  const upstream = ancestors(doc, target.id).has(source.id);
  if (!upstream && cycle) return { ok: false, reason: `${source.id} is downstream of ${target.id}: the link would make a cycle` };
  const ops: EditOp[] = [];
  if (!upstream) ops.push({ type: "addLink", from: source.id, to: target.id });
  ops.push({ type: "setInput", step: target.id, input: inputName, value: { mode: "reference", step: source.id, output: outputName } });
  return { ok: true, ops };
}

export interface OutputChoice {
  step: string;
  output: ActionIO;
  /** Already upstream: no link needed. */
  upstream: boolean;
}

/** The outputs an input may refer to: same type, not downstream of the step (no cycle). */
export function referenceChoices(doc: EditorDoc, catalogue: Catalogue, stepId: string, input: ActionIO): OutputChoice[] {
  const below = descendants(doc, stepId);
  const above = ancestors(doc, stepId);
  const out: OutputChoice[] = [];
  for (const s of doc.steps) {
    if (s.id === stepId || below.has(s.id)) continue;
    for (const o of outputsOf(s, actionOf(catalogue, s))) {
      if (referenceRefusal(input, o) === null) out.push({ step: s.id, output: o, upstream: above.has(s.id) });
    }
  }
  return out;
}

/** Setting an input to a reference from the panel: the same rules as drawing the edge. */
export function referenceOps(doc: EditorDoc, catalogue: Catalogue, stepId: string, input: string, ref: { step: string; output: string }): ConnectionCheck {
  return checkConnection(doc, catalogue, { source: ref.step, sourceHandle: outputHandle(ref.output), target: stepId, targetHandle: inputHandle(input) });
}

// ---- the studio's problems, where they belong ---------------------------------------------------

export interface StepProblems {
  /** Every problem of the step (its inputs' included). */
  all: ProblemOut[];
  /** The step's own (not about one input). */
  step: ProblemOut[];
  inputs: Map<string, ProblemOut[]>;
}

export interface ProblemsIndex {
  /** About the workflow as a whole (no trigger, results...). */
  workflow: ProblemOut[];
  steps: Map<string, StepProblems>;
}

export function indexProblems(problems: ProblemOut[]): ProblemsIndex {
  const index: ProblemsIndex = { workflow: [], steps: new Map() };
  for (const p of problems) {
    if (!p.step_id) {
      index.workflow.push(p);
      continue;
    }
    let entry = index.steps.get(p.step_id);
    if (!entry) {
      entry = { all: [], step: [], inputs: new Map() };
      index.steps.set(p.step_id, entry);
    }
    entry.all.push(p);
    if (p.input) entry.inputs.set(p.input, [...(entry.inputs.get(p.input) ?? []), p]);
    else entry.step.push(p);
  }
  return index;
}

/** The message without the studio's `step 'x', input 'y': ` prefix (the UI shows where). */
export function shortMessage(p: ProblemOut): string {
  return p.message.replace(/^step '[^']*'(, input '[^']*')?: /, "");
}

// ---- the published document ------------------------------------------------------------------

/** A directory uploaded as `data.zip` or `data.tar.gz` is named `data` (as the studio does). */
export function uploadedName(name: string, directory: boolean): string {
  if (!directory) return name;
  const suffix = [".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip"].find((x) => name.toLowerCase().endsWith(x) && name.length > x.length);
  return suffix ? name.slice(0, -suffix.length) : name;
}

function valueDoc(v: InputValue, step: string, input: string): unknown {
  if (v.mode === "static") return v.value;
  if (v.mode === "secret") return { project_variable_value: v.name };
  if (v.mode === "file") {
    // where the studio's zip export puts it (docs/reference/workflows.md, "Workflow zip")
    const path = `files/${step}/${input}/${v.name}`;
    return v.directory ? { static_directory: `${path}/` } : { static_file: path };
  }
  return { reference_value: `${v.step}.${v.output}` };
}

function outputDoc(io: ActionIO): Record<string, unknown> {
  const doc: Record<string, unknown> = { name: io.name, human_name: io.human_name, help: io.help, type: io.type };
  if (io.optional) doc.optional = true;
  if (io.enum_values.length > 0) doc.enum_values = io.enum_values;
  if (io.origin) doc.origin = io.origin;
  return doc;
}

const MEMORY_UNITS: [string, number][] = [
  ["T", 1024 ** 4],
  ["G", 1024 ** 3],
  ["M", 1024 ** 2],
  ["K", 1024],
];
const TIME_UNITS: [string, number][] = [
  ["d", 86400],
  ["h", 3600],
  ["m", 60],
];

/** `1G` for a whole number of a unit, else the bytes (as the studio's export writes it). */
export function memoryText(n: number): string | number {
  const found = MEMORY_UNITS.find(([, size]) => n > 0 && n % size === 0);
  return found ? `${n / found[1]}${found[0]}` : n;
}

/** `10m` for a whole number of a unit, else `Ns` or the seconds (as the studio writes it). */
export function durationText(seconds: number): string | number {
  if (seconds <= 0 || !Number.isInteger(seconds)) return seconds;
  const found = TIME_UNITS.find(([, size]) => seconds % size === 0);
  return found ? `${seconds / found[1]}${found[0]}` : `${seconds}s`;
}

const COUNT_KEYS = new Set(["ntasks", "ntasks_per_node", "cpus_per_task", "gpus"]);

/** A step's settings as the studio's export writes them (docs/reference/workflows.md). */
function settingsDoc(s: StepSettings): Record<string, unknown> {
  const f: Record<string, unknown> = {};
  const r = s.resources;
  if (r && Object.values(r).some((v) => v !== null)) {
    const res: Record<string, unknown> = {};
    if (r.cpu !== null) res.cpu = r.cpu;
    if (r.memory_bytes !== null) res.memory = memoryText(r.memory_bytes);
    if (r.time_seconds !== null) res.time = durationText(r.time_seconds);
    if (r.gpu !== null) res.gpu = r.gpu;
    f.resources = res;
  }
  if (Object.keys(s.hpc).length > 0) {
    f.addons = {
      hpc: Object.fromEntries(
        Object.entries(s.hpc).map(([k, v]) => [
          k,
          COUNT_KEYS.has(k) || (k === "nodes" && /^\d+$/.test(v)) ? Number(v) : k === "exclusive" ? v === "true" : v,
        ]),
      ),
    };
  }
  const placement: Record<string, unknown> = {};
  if (s.site_name !== null) placement.site = s.site_name;
  if (s.node_pool !== null) placement.node_pool = s.node_pool;
  if (Object.keys(s.labels).length > 0) placement.labels = s.labels;
  if (Object.keys(placement).length > 0) f.placement = placement;
  if (s.timeout_seconds !== null) f.timeout = durationText(s.timeout_seconds);
  if (s.retries !== null) f.retries = s.retries;
  if (s.always_warm !== null) f.always_warm = s.always_warm;
  return f;
}

/**
 * The model as the published Ryax YAML document (what the studio's export writes; human names
 * are not in that format).
 */
export function toDocument(doc: EditorDoc): Record<string, unknown> {
  const spec: Record<string, unknown> = { human_name: doc.name };
  if (doc.description) spec.description = doc.description;
  spec.functions = doc.steps.map((s) => {
    const f: Record<string, unknown> = { id: s.id, from: s.actionId, version: s.version };
    if (s.position) f.position = { x: s.position.x, y: s.position.y };
    if (Object.keys(s.inputs).length > 0) f.inputs_values = Object.fromEntries(Object.entries(s.inputs).map(([k, v]) => [k, valueDoc(v, s.id, k)]));
    if (s.outputs.length > 0) f.outputs = s.outputs.map(outputDoc);
    f.streams_to = s.streamsTo;
    Object.assign(f, settingsDoc(s.settings));
    return f;
  });
  if (doc.results.length > 0) spec.results = doc.results.map((r) => ({ key: r.key, reference_value: `${r.step}.${r.output}` }));
  return { apiVersion: "ryax.tech/v2.0", kind: "Workflows", spec };
}

// ---- undo ------------------------------------------------------------------------------------

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The edits that turn `from` into `to` (what undo and redo send): steps removed, then added,
 * then each step's own fields, links, inputs (after the links, so a reference finds its
 * upstream step) and the results. A step added back takes its place first when it was first in
 * `to` (the studio puts a trigger first).
 */
export function diffDocs(from: EditorDoc, to: EditorDoc): EditOp[] {
  const ops: EditOp[] = [];
  if (from.name !== to.name || from.description !== to.description) {
    ops.push({ type: "updateWorkflow", name: to.name, description: to.description });
  }
  const was = new Map(from.steps.map((s) => [s.id, s]));
  const will = new Map(to.steps.map((s) => [s.id, s]));
  for (const s of from.steps) if (!will.has(s.id)) ops.push({ type: "removeStep", id: s.id });
  const moves: { id: string; position: XY }[] = [];
  to.steps.forEach((s, index) => {
    const old = was.get(s.id);
    if (!old) {
      ops.push({ type: "addStep", id: s.id, actionId: s.actionId, version: s.version, position: s.position ?? { x: 0, y: 0 }, trigger: index === 0 });
    } else {
      if (old.version !== s.version) ops.push({ type: "changeVersion", id: s.id, version: s.version });
      if (s.position && !same(old.position, s.position)) moves.push({ id: s.id, position: s.position });
    }
    if ((old?.humanName ?? null) !== s.humanName) ops.push({ type: "renameStep", id: s.id, humanName: s.humanName });
    if (!same(old?.outputs ?? [], s.outputs)) ops.push({ type: "setOutputs", step: s.id, outputs: s.outputs });
    if (!same(old?.settings ?? EMPTY_SETTINGS, s.settings)) ops.push({ type: "setSettings", step: s.id, settings: s.settings });
  });
  if (moves.length > 0) ops.push({ type: "moveSteps", moves });
  for (const s of from.steps) {
    const target = will.get(s.id);
    if (!target) continue;
    for (const child of s.streamsTo) if (!target.streamsTo.includes(child) && will.has(child)) ops.push({ type: "removeLink", from: s.id, to: child });
  }
  for (const s of to.steps) {
    const old = was.get(s.id);
    for (const child of s.streamsTo) if (!old?.streamsTo.includes(child)) ops.push({ type: "addLink", from: s.id, to: child });
  }
  for (const s of to.steps) {
    const old = was.get(s.id);
    for (const [input, value] of Object.entries(s.inputs)) {
      if (!old || !same(old.inputs[input], value)) ops.push({ type: "setInput", step: s.id, input, value });
    }
    if (old) for (const input of Object.keys(old.inputs)) if (!(input in s.inputs)) ops.push({ type: "unsetInput", step: s.id, input });
  }
  if (!same(from.results, to.results)) ops.push({ type: "setResults", results: to.results });
  return ops;
}
