import {
  ActionIcon,
  Button,
  FileInput,
  Group,
  Modal,
  NumberInput,
  PasswordInput,
  SegmentedControl,
  Select,
  Stack,
  Switch,
  Text,
  Textarea,
  TextInput,
  Tooltip,
} from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { IconPlus, IconX } from "@tabler/icons-react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { memo, useState, type KeyboardEvent, type SubmitEvent } from "react";

import { api, unwrap } from "../../api/client";
import type { ActionIO, ProblemOut } from "../../api/types";
import { ErrorAlert } from "../../components/ErrorAlert";
import { inputModes, shortMessage, type InputMode, type InputValue, type OutputChoice } from "./model";

const MODE_LABEL: Record<InputMode, string> = { static: "Value", reference: "Reference", secret: "Secret", file: "Upload" };

export interface InputFieldProps {
  project: string;
  stepId: string;
  io: ActionIO;
  value: InputValue | undefined;
  problems: ProblemOut[] | undefined;
  choices: OutputChoice[];
  secrets: string[];
  editable: boolean;
  onSet: (value: InputValue) => void;
  onUnset: () => void;
  onReference: (ref: { step: string; output: string }) => void;
  /** Upload a file (a directory input: a zip or tar of its contents) as the static value. */
  onUpload?: (file: File) => void;
  setDirty: (dirty: boolean) => void;
}

function sizeText(size: number): string {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KiB`;
  return `${(size / 1024 / 1024).toFixed(1)} MiB`;
}

function NewSecret({ project, onCreated }: { project: string; onCreated: (name: string) => void }) {
  const [opened, { open, close }] = useDisclosure(false);
  const [name, setName] = useState("");
  const [value, setValue] = useState("");
  const client = useQueryClient();
  const create = useMutation({
    mutationFn: () => unwrap(api.studio.POST("/studio/v1/projects/{project}/secrets", { params: { path: { project } }, body: { name: name.trim(), value } })),
    onSuccess: (s) => {
      void client.invalidateQueries({ queryKey: ["studio", project, "secrets"] });
      onCreated(s.name);
      setName("");
      setValue("");
      close();
    },
  });
  const submit = (e: SubmitEvent) => {
    e.preventDefault();
    create.mutate();
  };
  return (
    <>
      <Tooltip label="New project secret">
        <ActionIcon variant="default" size="lg" onClick={open} aria-label="New project secret">
          <IconPlus size={16} aria-hidden />
        </ActionIcon>
      </Tooltip>
      <Modal opened={opened} onClose={close} title="New project secret" centered>
        <form onSubmit={submit}>
          <Stack>
            {create.isError && <ErrorAlert error={create.error} title="The secret was not created" />}
            <TextInput label="Name" required data-autofocus value={name} onChange={(e) => setName(e.currentTarget.value)} maxLength={128} />
            <PasswordInput label="Value" description="Stored encrypted; never shown again" required value={value} onChange={(e) => setValue(e.currentTarget.value)} />
            <Group justify="flex-end">
              <Button variant="default" onClick={close}>
                Cancel
              </Button>
              <Button type="submit" loading={create.isPending} disabled={!name.trim() || !value}>
                Create
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
    </>
  );
}

/** A static value's editor by type; text is committed on blur or Enter. */
function StaticEditor({
  io,
  value,
  label,
  error,
  editable,
  onCommit,
  setDirty,
}: {
  io: ActionIO;
  value: unknown;
  label: string;
  error: string | undefined;
  editable: boolean;
  onCommit: (v: unknown) => void;
  setDirty: (dirty: boolean) => void;
}) {
  const initialText = value === undefined || value === null ? "" : typeof value === "string" ? value : JSON.stringify(value);
  const [text, setText] = useState(initialText);
  const [num, setNum] = useState<string | number>(typeof value === "number" ? value : "");
  const placeholder = io.has_default ? `default: ${JSON.stringify(io.default)}` : undefined;
  const change = (t: string) => {
    setText(t);
    setDirty(t !== initialText);
  };
  const commitText = () => {
    setDirty(false);
    if (text !== initialText) onCommit(text);
  };
  const enter = (e: KeyboardEvent) => {
    if (e.key === "Enter" && !(io.type === "longstring" && !e.ctrlKey)) {
      e.preventDefault();
      commitText();
    }
  };
  const common = { label, error, disabled: !editable, description: io.help || undefined, size: "xs" as const };
  switch (io.type) {
    case "longstring":
      return (
        <Textarea {...common} autosize minRows={2} maxRows={8} value={text} placeholder={placeholder} onChange={(e) => change(e.currentTarget.value)} onBlur={commitText} onKeyDown={enter} />
      );
    case "integer":
    case "float":
      return (
        <NumberInput
          {...common}
          value={num}
          placeholder={placeholder}
          allowDecimal={io.type === "float"}
          onChange={(v) => {
            setNum(v);
            setDirty(v !== value);
          }}
          onBlur={() => {
            setDirty(false);
            if (typeof num === "number" && num !== value) onCommit(num);
          }}
          onKeyDown={(e) => {
            if (e.key === "Enter" && typeof num === "number" && num !== value) {
              setDirty(false);
              onCommit(num);
            }
          }}
        />
      );
    case "boolean":
      return <Switch {...common} size="sm" checked={value === true} onChange={(e) => onCommit(e.currentTarget.checked)} />;
    case "enum":
      return <Select {...common} data={io.enum_values} value={typeof value === "string" ? value : null} placeholder={placeholder ?? "Pick a value"} onChange={(v) => v !== null && onCommit(v)} allowDeselect={false} />;
    default:
      return <TextInput {...common} value={text} placeholder={placeholder} onChange={(e) => change(e.currentTarget.value)} onBlur={commitText} onKeyDown={enter} />;
  }
}

/**
 * One input of a step: its mode (a static value, a reference to an upstream output, a project
 * secret: the ones its type allows), the editor of that mode, and the studio's problems on it.
 */
export const InputField = memo(function InputField({
  project,
  stepId,
  io,
  value,
  problems,
  choices,
  secrets,
  editable,
  onSet,
  onUnset,
  onReference,
  onUpload,
  setDirty,
}: InputFieldProps) {
  const modes = inputModes(io.type);
  const [chosen, setChosen] = useState<InputMode>(value?.mode ?? modes[0] ?? "static");
  const mode = modes.includes(chosen) ? chosen : (modes[0] ?? "static");
  const label = `${io.human_name || io.name} (${io.name}: ${io.type})${!io.optional && !io.has_default ? " *" : ""}`;
  const error = problems && problems.length > 0 ? problems.map(shortMessage).join("; ") : undefined;
  const fieldId = `${stepId}.${io.name}`;
  let editor;
  if (mode === "static") {
    editor = (
      <StaticEditor
        key={JSON.stringify(value?.mode === "static" ? value.value : null)}
        io={io}
        value={value?.mode === "static" ? value.value : undefined}
        label={label}
        error={error}
        editable={editable}
        onCommit={(v) => onSet({ mode: "static", value: v })}
        setDirty={setDirty}
      />
    );
  } else if (mode === "file") {
    const current = value?.mode === "file" ? value : null;
    const directory = io.type === "directory";
    editor = (
      <FileInput
        size="xs"
        label={label}
        description={
          directory
            ? "A zip or tar of the directory's contents, stored by the studio"
            : "A file stored by the studio (the action reads it like any file input)"
        }
        placeholder={current ? `${current.name} (${sizeText(current.size)})` : directory ? "Pick a .zip or .tar" : "Pick a file"}
        accept={directory ? ".zip,.tar,.tgz,.tar.gz,.tar.bz2,.tar.xz" : undefined}
        value={null}
        disabled={!editable || !onUpload}
        error={error}
        clearable={false}
        onChange={(file) => file && onUpload?.(file)}
      />
    );
  } else if (mode === "reference") {
    const current = value?.mode === "reference" ? `${value.step}.${value.output}` : null;
    const data = choices.map((c) => ({ value: `${c.step}.${c.output.name}`, label: `${c.step}.${c.output.name}${c.upstream ? "" : " (links the steps)"}` }));
    if (current && !data.some((d) => d.value === current)) data.unshift({ value: current, label: `${current} (not available)` });
    editor = (
      <Select
        size="xs"
        label={label}
        description={io.type === "file" || io.type === "directory" ? `A ${io.type} from an upstream output` : "An upstream output of the same type"}
        placeholder={data.length ? "Pick an output" : `No upstream ${io.type} output`}
        data={data}
        value={current}
        searchable
        disabled={!editable}
        error={error}
        onChange={(v) => {
          if (!v) return;
          const [step = "", output = ""] = v.split(/\.(.*)/s);
          onReference({ step, output });
        }}
        allowDeselect={false}
      />
    );
  } else {
    const current = value?.mode === "secret" ? value.name : null;
    const data = current && !secrets.includes(current) ? [current, ...secrets] : secrets;
    editor = (
      <Group gap={4} align="flex-end" wrap="nowrap">
        <Select
          size="xs"
          style={{ flex: 1 }}
          label={label}
          description={io.type === "password" ? "A password input takes a project secret only" : "A project secret (its value is never shown)"}
          placeholder={secrets.length ? "Pick a secret" : "No secret in this project"}
          data={data}
          value={current}
          searchable
          disabled={!editable}
          error={error}
          onChange={(v) => v && onSet({ mode: "secret", name: v })}
          allowDeselect={false}
        />
        {editable && <NewSecret project={project} onCreated={(name) => onSet({ mode: "secret", name })} />}
      </Group>
    );
  }
  return (
    <Stack gap={4} data-input={fieldId} role="group" aria-label={`Input ${io.name}`}>
      <Group justify="space-between" gap={4} wrap="nowrap">
        {modes.length > 1 ? (
          <SegmentedControl
            size="xs"
            value={mode}
            onChange={setChosen}
            data={modes.map((m) => ({ value: m, label: MODE_LABEL[m] }))}
            disabled={!editable}
            aria-label={`Mode of ${io.name}`}
          />
        ) : (
          <Text size="xs" c="dimmed">
            {MODE_LABEL[mode]}
          </Text>
        )}
        {value && editable && (
          <Tooltip label={io.has_default ? "Unset: the default applies" : "Unset"}>
            <ActionIcon size="sm" variant="subtle" color="gray" onClick={onUnset} aria-label={`Unset ${io.name}`}>
              <IconX size={14} aria-hidden />
            </ActionIcon>
          </Tooltip>
        )}
      </Group>
      {editor}
    </Stack>
  );
});
