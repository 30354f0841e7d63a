import {
  ActionIcon,
  Alert,
  Anchor,
  Badge,
  Button,
  Checkbox,
  Divider,
  Group,
  NumberInput,
  Select,
  Stack,
  Switch,
  TagsInput,
  Text,
  Textarea,
  TextInput,
  Title,
} from "@mantine/core";
import { IconPlus, IconTrash, IconX } from "@tabler/icons-react";
import { useEffect, useState } from "react";

import type { ActionIO, IOType, ProblemOut, Site } from "../../api/types";
import { InputField } from "./InputField";
import {
  actionOf,
  isTrigger,
  outputsOf,
  parentsOf,
  referenceChoices,
  referenceOps,
  shortMessage,
  type Catalogue,
  type EditOp,
  type EditorDoc,
  type EditorStep,
  type ProblemsIndex,
  type WorkflowResult,
} from "./model";

const TYPES: IOType[] = ["string", "longstring", "integer", "float", "boolean", "enum", "file", "directory"];
const MIB = 1024 * 1024;

export interface InspectorProps {
  project: string;
  doc: EditorDoc;
  catalogue: Catalogue;
  problems: ProblemsIndex;
  secrets: string[];
  sites: Site[];
  editable: boolean;
  onEdit: (ops: EditOp[]) => void;
  onRefuse: (reason: string) => void;
  setDirty: (key: string, dirty: boolean) => void;
  onSelect: (stepId: string | null) => void;
}

/** Keeps a form's draft, reset when what it edits changes; says when it differs. */
function useDraft<T>(value: T, key: string, setDirty: (key: string, dirty: boolean) => void) {
  const [draft, setDraft] = useState(value);
  const [source, setSource] = useState(value);
  if (source !== value) {
    setSource(value);
    setDraft(value);
  }
  const dirty = JSON.stringify(draft) !== JSON.stringify(value);
  useEffect(() => {
    setDirty(key, dirty);
    return () => setDirty(key, false);
  }, [key, dirty, setDirty]);
  return [draft, setDraft, dirty] as const;
}

/** `key=value` items as a mapping (an item without `=` or without a key is left out). */
function pairs(items: string[]): Record<string, string> {
  return Object.fromEntries(
    items
      .map((i) => i.split(/=(.*)/s))
      .filter((kv): kv is [string, string] => !!kv[0]?.trim() && kv[1] !== undefined)
      .map(([k, v]) => [k.trim(), v.trim()]),
  );
}

function SettingsForm({ step, sites, editable, onEdit, setDirty }: { step: EditorStep; sites: Site[]; editable: boolean; onEdit: InspectorProps["onEdit"]; setDirty: InspectorProps["setDirty"] }) {
  const [s, set, dirty] = useDraft(step.settings, `settings:${step.id}`, setDirty);
  const r = s.resources ?? { cpu: null, memory_bytes: null, time_seconds: null, gpu: null };
  const setR = (change: Partial<typeof r>) => {
    const next = { ...r, ...change };
    set({ ...s, resources: Object.values(next).every((v) => v === null) ? null : next });
  };
  const num = (v: string | number) => (typeof v === "number" ? v : null);
  const site = sites.find((x) => x.name === s.site_name);
  const pools = [...new Set((site ? [site] : sites).flatMap((x) => x.node_pools.map((p) => p.name)))];
  const siteNames = sites.map((x) => x.name);
  const labels = Object.entries(s.labels).map(([k, v]) => `${k}=${v}`);
  const { custom_script: script, ...params } = s.hpc;
  const hpcTags = Object.entries(params).map(([k, v]) => `${k}=${v}`);
  const setHpc = (next: Record<string, string>, nextScript: string | undefined) =>
    set({ ...s, hpc: nextScript ? { ...next, custom_script: nextScript } : next });
  return (
    <Stack gap="xs" component="fieldset" style={{ border: 0, padding: 0, margin: 0 }} aria-label={`Settings of ${step.id}`}>
      <Group grow gap="xs">
        <Select
          size="xs"
          label="Site"
          placeholder="Any site"
          data={s.site_name && !siteNames.includes(s.site_name) ? [s.site_name, ...siteNames] : siteNames}
          value={s.site_name}
          onChange={(v) => set({ ...s, site_name: v, node_pool: null })}
          clearable
          searchable
          disabled={!editable}
        />
        <Select
          size="xs"
          label="Node pool"
          placeholder="Any pool"
          data={s.node_pool && !pools.includes(s.node_pool) ? [s.node_pool, ...pools] : pools}
          value={s.node_pool}
          onChange={(v) => set({ ...s, node_pool: v })}
          clearable
          searchable
          disabled={!editable}
        />
      </Group>
      <Group grow gap="xs">
        <NumberInput size="xs" label="Retries" min={0} max={100} allowDecimal={false} value={s.retries ?? ""} onChange={(v) => set({ ...s, retries: num(v) })} disabled={!editable} />
        <NumberInput size="xs" label="Timeout (s)" min={0} value={s.timeout_seconds ?? ""} onChange={(v) => set({ ...s, timeout_seconds: num(v) })} disabled={!editable} />
      </Group>
      <Group grow gap="xs">
        <NumberInput size="xs" label="CPU (cores)" min={0} decimalScale={3} value={r.cpu ?? ""} onChange={(v) => setR({ cpu: num(v) })} disabled={!editable} />
        <NumberInput
          size="xs"
          label="Memory (MiB)"
          min={0}
          allowDecimal={false}
          value={r.memory_bytes === null ? "" : Math.round(r.memory_bytes / MIB)}
          onChange={(v) => setR({ memory_bytes: typeof v === "number" ? v * MIB : null })}
          disabled={!editable}
        />
      </Group>
      <Group grow gap="xs">
        <NumberInput size="xs" label="GPU" min={0} allowDecimal={false} value={r.gpu ?? ""} onChange={(v) => setR({ gpu: num(v) })} disabled={!editable} />
        <NumberInput size="xs" label="Time limit (s)" min={0} value={r.time_seconds ?? ""} onChange={(v) => setR({ time_seconds: num(v) })} disabled={!editable} />
      </Group>
      <TagsInput
        size="xs"
        label="Placement labels"
        description="key=value, matched against the sites' labels"
        value={labels}
        onChange={(items) =>
          set({
            ...s,
            labels: pairs(items),
          })
        }
        disabled={!editable}
      />
      <Switch
        size="xs"
        label="Always warm"
        description="Keep its action process running while idle: no cold start, its memory kept"
        checked={s.always_warm === true}
        onChange={(e) => set({ ...s, always_warm: e.currentTarget.checked ? true : null })}
        disabled={!editable}
      />
      <TagsInput
        size="xs"
        label="HPC parameters"
        description="key=value for a Slurm site: partition, nodes, ntasks, cpus_per_task, mem, time, gpus, account, qos, exclusive..."
        value={hpcTags}
        onChange={(items) => setHpc(pairs(items), script)}
        disabled={!editable}
      />
      <Textarea
        size="xs"
        label="HPC custom script"
        description="bash run in the Slurm job instead of the action (inputs as variables, export the outputs)"
        autosize
        minRows={2}
        maxRows={10}
        styles={{ input: { fontFamily: "monospace" } }}
        value={script ?? ""}
        onChange={(e) => setHpc(params, e.currentTarget.value || undefined)}
        disabled={!editable}
      />
      {editable && (
        <Group justify="flex-end" gap="xs">
          <Button size="xs" variant="default" disabled={!dirty} onClick={() => set(step.settings)}>
            Reset
          </Button>
          <Button size="xs" disabled={!dirty} onClick={() => onEdit([{ type: "setSettings", step: step.id, settings: s }])}>
            Apply settings
          </Button>
        </Group>
      )}
    </Stack>
  );
}

const emptyOutput = (): ActionIO => ({ name: "", type: "string", human_name: "", help: "", optional: false, enum_values: [], has_default: false, default: null, origin: "body" });

/** The outputs a trigger with dynamic outputs declares (an HTTP endpoint's request fields). */
function OutputsForm({ step, editable, onEdit, setDirty }: { step: EditorStep; editable: boolean; onEdit: InspectorProps["onEdit"]; setDirty: InspectorProps["setDirty"] }) {
  const [rows, set, dirty] = useDraft(step.outputs, `outputs:${step.id}`, setDirty);
  const change = (i: number, c: Partial<ActionIO>) => set(rows.map((r, j) => (j === i ? { ...r, ...c } : r)));
  return (
    <Stack gap="xs" role="group" aria-label={`Declared outputs of ${step.id}`}>
      {rows.length === 0 && (
        <Text size="xs" c="dimmed">
          No field yet: each output is a field of the request (body, path or query).
        </Text>
      )}
      {rows.map((o, i) => (
        <Stack key={i} gap={4} p={6} style={{ border: "1px solid var(--mantine-color-default-border)", borderRadius: 6 }} role="group" aria-label={`Output ${i + 1}`}>
          <Group gap={4} grow wrap="nowrap">
            <TextInput size="xs" label="Name" value={o.name} onChange={(e) => change(i, { name: e.currentTarget.value })} disabled={!editable} />
            <Select size="xs" label="Type" data={TYPES} value={o.type} onChange={(v) => v && change(i, { type: v })} allowDeselect={false} disabled={!editable} />
            <Select size="xs" label="From" data={["body", "path", "query", "header"]} value={o.origin ?? null} onChange={(v) => change(i, { origin: v ?? null })} clearable disabled={!editable} />
          </Group>
          <Group gap={4} grow wrap="nowrap">
            <TextInput size="xs" label="Label" value={o.human_name} onChange={(e) => change(i, { human_name: e.currentTarget.value })} disabled={!editable} />
            <TextInput size="xs" label="Help" value={o.help} onChange={(e) => change(i, { help: e.currentTarget.value })} disabled={!editable} />
          </Group>
          {o.type === "enum" && <TagsInput size="xs" label="Enum values" value={o.enum_values} onChange={(v) => change(i, { enum_values: v })} disabled={!editable} />}
          <Group justify="space-between">
            <Checkbox size="xs" label="Optional" checked={o.optional} onChange={(e) => change(i, { optional: e.currentTarget.checked })} disabled={!editable} />
            {editable && (
              <ActionIcon size="sm" variant="subtle" color="red" onClick={() => set(rows.filter((_, j) => j !== i))} aria-label={`Remove output ${o.name || i + 1}`}>
                <IconTrash size={14} aria-hidden />
              </ActionIcon>
            )}
          </Group>
        </Stack>
      ))}
      {editable && (
        <Group justify="space-between" gap="xs">
          <Button size="xs" variant="subtle" leftSection={<IconPlus size={14} aria-hidden />} onClick={() => set([...rows, emptyOutput()])}>
            Add output
          </Button>
          <Button size="xs" disabled={!dirty} onClick={() => onEdit([{ type: "setOutputs", step: step.id, outputs: rows }])}>
            Apply outputs
          </Button>
        </Group>
      )}
    </Stack>
  );
}

function ProblemLines({ problems, onSelect }: { problems: ProblemOut[]; onSelect?: (stepId: string) => void }) {
  return (
    <Stack gap={4} component="ul" p={0} m={0} aria-label="Problems" style={{ listStyle: "none" }}>
      {problems.map((p, i) => (
        <Text key={`${p.code}-${i}`} size="xs" c="red" component="li">
          {p.step_id && onSelect ? (
            <Anchor component="button" size="xs" onClick={() => onSelect(p.step_id ?? "")} fw={600}>
              {p.step_id}
              {p.input ? `.${p.input}` : ""}
            </Anchor>
          ) : null}{" "}
          {shortMessage(p)} <Badge size="xs" variant="outline" color="red" tt="none">{p.code}</Badge>
        </Text>
      ))}
    </Stack>
  );
}

/** Everything about the selected step. */
export function StepInspector({ step, ...props }: InspectorProps & { step: EditorStep }) {
  const { project, doc, catalogue, problems, secrets, sites, editable, onEdit, onRefuse, setDirty } = props;
  const action = actionOf(catalogue, step);
  const trigger = isTrigger(step, catalogue);
  const mine = problems.steps.get(step.id);
  const versions = [...catalogue.values()].filter((a) => a.action_id === step.actionId).map((a) => a.version);
  const parents = parentsOf(doc).get(step.id) ?? [];
  const [name, setName] = useState(step.humanName ?? "");
  const [nameSource, setNameSource] = useState(step.humanName);
  if (nameSource !== step.humanName) {
    setNameSource(step.humanName);
    setName(step.humanName ?? "");
  }
  const dirtyKey = (input: string) => `input:${step.id}.${input}`;
  return (
    <Stack gap="sm" component="section" aria-label={`Step ${step.id}`}>
      <Group justify="space-between" wrap="nowrap" align="flex-start">
        <Stack gap={0} style={{ minWidth: 0 }}>
          <Title order={3} size="h5" style={{ wordBreak: "break-word" }}>
            {step.humanName || action?.human_name || step.id}
          </Title>
          <Text size="xs" c="dimmed">
            step <b>{step.id}</b> · {step.actionId} · {action?.kind ?? "not in the store"}
          </Text>
        </Stack>
        {editable && (
          <Button
            size="xs"
            color="red"
            variant="light"
            leftSection={<IconTrash size={14} aria-hidden />}
            onClick={() => {
              onEdit([{ type: "removeStep", id: step.id }]);
              props.onSelect(null);
            }}
          >
            Delete step
          </Button>
        )}
      </Group>
      {mine && mine.step.length > 0 && (
        <Alert color="red" variant="light" p="xs">
          <ProblemLines problems={mine.step} />
        </Alert>
      )}
      <Group grow gap="xs" align="flex-start">
        <TextInput
          size="xs"
          label="Display name"
          placeholder={action?.human_name}
          value={name}
          disabled={!editable}
          onChange={(e) => {
            setName(e.currentTarget.value);
            setDirty(`name:${step.id}`, e.currentTarget.value !== (step.humanName ?? ""));
          }}
          onBlur={() => {
            setDirty(`name:${step.id}`, false);
            const next = name.trim() || null;
            if (next !== step.humanName) onEdit([{ type: "renameStep", id: step.id, humanName: next }]);
          }}
        />
        <Select
          size="xs"
          label="Version"
          data={versions.includes(step.version) ? versions : [step.version, ...versions]}
          value={step.version}
          onChange={(v) => v && v !== step.version && onEdit([{ type: "changeVersion", id: step.id, version: v }])}
          allowDeselect={false}
          disabled={!editable}
        />
      </Group>
      {action?.description && (
        <Text size="xs" c="dimmed">
          {action.description}
        </Text>
      )}
      <Divider label="Inputs" labelPosition="left" />
      {!action && <Text size="xs">The action is not in the project&apos;s store: its inputs are unknown.</Text>}
      {action?.inputs.length === 0 && <Text size="xs" c="dimmed">No input.</Text>}
      {action?.inputs.map((io) => (
        <InputField
          key={io.name}
          project={project}
          stepId={step.id}
          io={io}
          value={step.inputs[io.name]}
          problems={mine?.inputs.get(io.name)}
          choices={referenceChoices(doc, catalogue, step.id, io)}
          secrets={secrets}
          editable={editable}
          onSet={(value) => onEdit([{ type: "setInput", step: step.id, input: io.name, value }])}
          onUnset={() => onEdit([{ type: "unsetInput", step: step.id, input: io.name }])}
          onUpload={(file) => onEdit([{ type: "uploadFile", step: step.id, input: io.name, file, directory: io.type === "directory" }])}
          onReference={(ref) => {
            const check = referenceOps(doc, catalogue, step.id, io.name, ref);
            if (check.ok) onEdit(check.ops);
            else onRefuse(check.reason);
          }}
          setDirty={(d) => setDirty(dirtyKey(io.name), d)}
        />
      ))}
      {[...(mine?.inputs.entries() ?? [])]
        .filter(([input]) => !action?.inputs.some((i) => i.name === input))
        .map(([input, list]) => (
          <Alert key={input} color="red" variant="light" p="xs" title={`Input ${input}`}>
            <ProblemLines problems={list} />
            {editable && (
              <Button size="compact-xs" variant="subtle" color="red" mt={4} onClick={() => onEdit([{ type: "unsetInput", step: step.id, input }])}>
                Remove this value
              </Button>
            )}
          </Alert>
        ))}
      {action?.dynamic_outputs && (
        <>
          <Divider label="Outputs (declared here)" labelPosition="left" />
          <OutputsForm step={step} editable={editable} onEdit={onEdit} setDirty={setDirty} />
        </>
      )}
      {!action?.dynamic_outputs && outputsOf(step, action).length > 0 && (
        <>
          <Divider label="Outputs" labelPosition="left" />
          <Text size="xs">
            {outputsOf(step, action)
              .map((o) => `${o.name} (${o.type})`)
              .join(", ")}
          </Text>
        </>
      )}
      <Divider label="Links" labelPosition="left" />
      <Stack gap={4}>
        <Text size="xs" c="dimmed">
          Runs after: {trigger ? "nothing (the trigger starts runs)" : parents.length === 0 ? "nothing yet" : ""}
        </Text>
        <Group gap={4}>
          {parents.map((p) => (
            <Badge
              key={p}
              variant="light"
              tt="none"
              rightSection={
                editable ? (
                  <ActionIcon size="xs" variant="transparent" onClick={() => onEdit([{ type: "removeLink", from: p, to: step.id }])} aria-label={`Unlink ${p} → ${step.id}`}>
                    <IconX size={10} aria-hidden />
                  </ActionIcon>
                ) : undefined
              }
            >
              {p}
            </Badge>
          ))}
        </Group>
        <Text size="xs" c="dimmed">
          Then: {step.streamsTo.length === 0 ? "nothing" : step.streamsTo.join(", ")}
        </Text>
      </Stack>
      <Divider label="Placement, retries, resources and HPC" labelPosition="left" />
      <SettingsForm key={step.id} step={step} sites={sites} editable={editable} onEdit={onEdit} setDirty={setDirty} />
    </Stack>
  );
}

function ResultsForm({ doc, catalogue, editable, onEdit, setDirty }: Pick<InspectorProps, "doc" | "catalogue" | "editable" | "onEdit" | "setDirty">) {
  const [rows, set, dirty] = useDraft(doc.results, "results", setDirty);
  const outputs = doc.steps.flatMap((s) => outputsOf(s, actionOf(catalogue, s)).map((o) => ({ value: `${s.id}.${o.name}`, label: `${s.id}.${o.name} (${o.type})` })));
  const change = (i: number, c: Partial<WorkflowResult>) => set(rows.map((r, j) => (j === i ? { ...r, ...c } : r)));
  return (
    <Stack gap="xs" role="group" aria-label="Results">
      {rows.length === 0 && (
        <Text size="xs" c="dimmed">
          No result: an HTTP endpoint then answers with the run id only.
        </Text>
      )}
      {rows.map((r, i) => (
        <Group key={i} gap={4} wrap="nowrap" align="flex-end" role="group" aria-label={`Result ${i + 1}`}>
          <TextInput size="xs" label="Key" value={r.key} onChange={(e) => change(i, { key: e.currentTarget.value })} disabled={!editable} style={{ flex: 1 }} />
          <Select
            size="xs"
            label="Output"
            data={outputs.some((o) => o.value === `${r.step}.${r.output}`) || !r.step ? outputs : [{ value: `${r.step}.${r.output}`, label: `${r.step}.${r.output}` }, ...outputs]}
            value={r.step ? `${r.step}.${r.output}` : null}
            onChange={(v) => {
              const [step = "", output = ""] = (v ?? "").split(/\.(.*)/s);
              change(i, { step, output });
            }}
            searchable
            disabled={!editable}
            style={{ flex: 1.4 }}
          />
          {editable && (
            <ActionIcon variant="subtle" color="red" mb={4} onClick={() => set(rows.filter((_, j) => j !== i))} aria-label={`Remove result ${r.key || i + 1}`}>
              <IconTrash size={14} aria-hidden />
            </ActionIcon>
          )}
        </Group>
      ))}
      {editable && (
        <Group justify="space-between">
          <Button size="xs" variant="subtle" leftSection={<IconPlus size={14} aria-hidden />} onClick={() => set([...rows, { key: "", step: "", output: "" }])}>
            Add result
          </Button>
          <Button size="xs" disabled={!dirty || rows.some((r) => !r.key || !r.step)} onClick={() => onEdit([{ type: "setResults", results: rows }])}>
            Apply results
          </Button>
        </Group>
      )}
    </Stack>
  );
}

/** The workflow as a whole (nothing selected): name, description, results, every problem. */
export function WorkflowInspector(props: InspectorProps & { allProblems: ProblemOut[] }) {
  const { doc, editable, onEdit, setDirty, allProblems, onSelect } = props;
  const [name, setName] = useState(doc.name);
  const [description, setDescription] = useState(doc.description);
  const [source, setSource] = useState(doc);
  if (source.name !== doc.name || source.description !== doc.description) {
    setSource(doc);
    setName(doc.name);
    setDescription(doc.description);
  }
  return (
    <Stack gap="sm" component="section" aria-label="Workflow">
      <Title order={3} size="h5">
        Workflow
      </Title>
      <TextInput
        size="xs"
        label="Name"
        description="Unique in the project; it names the HTTP endpoint too"
        value={name}
        disabled={!editable}
        onChange={(e) => {
          setName(e.currentTarget.value);
          setDirty("workflow:name", e.currentTarget.value !== doc.name);
        }}
        onBlur={() => {
          setDirty("workflow:name", false);
          if (name.trim() && name.trim() !== doc.name) onEdit([{ type: "updateWorkflow", name: name.trim() }]);
        }}
      />
      <Textarea
        size="xs"
        label="Description"
        autosize
        minRows={2}
        value={description}
        disabled={!editable}
        onChange={(e) => {
          setDescription(e.currentTarget.value);
          setDirty("workflow:description", e.currentTarget.value !== doc.description);
        }}
        onBlur={() => {
          setDirty("workflow:description", false);
          if (description !== doc.description) onEdit([{ type: "updateWorkflow", description }]);
        }}
      />
      <Divider label="Results (what an HTTP endpoint answers)" labelPosition="left" />
      <ResultsForm {...props} />
      <Divider label={`Problems (${allProblems.length})`} labelPosition="left" />
      {allProblems.length === 0 ? (
        <Text size="xs" c="green">
          None: the workflow can be deployed.
        </Text>
      ) : (
        <ProblemLines problems={allProblems} onSelect={onSelect} />
      )}
      <Text size="xs" c="dimmed">
        Select a step to edit its inputs, links and settings.
      </Text>
    </Stack>
  );
}
