import { Button, Checkbox, FileInput, Group, JsonInput, NumberInput, PasswordInput, Select, Stack, Text, Textarea, TextInput } from "@mantine/core";
import { IconPlayerPlay, IconUpload } from "@tabler/icons-react";
import { useMutation } from "@tanstack/react-query";
import { useMemo, useState, type SubmitEvent } from "react";

import { api, unwrapWithResponse } from "../../api/client";
import type { ActionIO } from "../../api/types";
import { ErrorAlert } from "../../components/ErrorAlert";
import { initialValues, runFields, runRequest, textOf, validateRun, type FieldValue, type RunField, type RunFormValues } from "./runForm";

function FieldControl({ field, value, error, onChange }: { field: RunField; value: FieldValue; error: string | undefined; onChange: (v: FieldValue) => void }) {
  const common = {
    label: field.label,
    description: field.help || (field.label !== field.name ? field.name : undefined),
    required: field.required,
    error,
    name: field.name,
  };
  switch (field.kind) {
    case "longtext":
      return <Textarea {...common} autosize minRows={3} value={textOf(value)} onChange={(e) => onChange(e.currentTarget.value)} />;
    case "password":
      return <PasswordInput {...common} autoComplete="off" value={textOf(value)} onChange={(e) => onChange(e.currentTarget.value)} />;
    case "integer":
    case "float":
      return (
        <NumberInput
          {...common}
          allowDecimal={field.kind === "float"}
          value={typeof value === "number" || typeof value === "string" ? value : ""}
          onChange={(v) => onChange(v)}
        />
      );
    case "boolean":
      return (
        <Checkbox
          label={field.label}
          description={common.description}
          name={field.name}
          error={error}
          checked={value === true}
          onChange={(e) => onChange(e.currentTarget.checked)}
        />
      );
    case "enum":
      return (
        <Select
          {...common}
          data={field.options}
          value={typeof value === "string" ? value : null}
          onChange={(v) => onChange(v)}
          clearable={!field.required}
          placeholder="Choose"
        />
      );
    case "file":
    case "directory":
      return (
        <FileInput
          {...common}
          description={[common.description, field.kind === "directory" ? "a .tar archive of the directory" : undefined].filter(Boolean).join(" · ") || undefined}
          accept={field.kind === "directory" ? ".tar,application/x-tar" : undefined}
          leftSection={<IconUpload size={14} aria-hidden />}
          placeholder="No file selected"
          clearable
          value={value instanceof File ? value : null}
          onChange={(f) => onChange(f)}
        />
      );
    case "json":
      return <JsonInput {...common} autosize minRows={2} validationError="Invalid JSON" value={textOf(value)} onChange={(v) => onChange(v)} />;
    default:
      return <TextInput {...common} value={textOf(value)} onChange={(e) => onChange(e.currentTarget.value)} />;
  }
}

export interface RunFormProps {
  project: string;
  /** The workflow's name or id (the endpoint path takes either). */
  endpoint: string;
  fields: ActionIO[];
  onStarted: (runId: string) => void;
  disabled?: boolean;
}

interface Accepted {
  run_id?: string;
}

/** Starts a run through the workflow's HTTP endpoint (asynchronously: the run page follows it). */
export function RunForm({ project, endpoint, fields, onStarted, disabled = false }: RunFormProps) {
  const model = useMemo(() => runFields(fields), [fields]);
  const [values, setValues] = useState<RunFormValues>(() => initialValues(model));
  const [errors, setErrors] = useState<Record<string, string>>({});

  const start = useMutation({
    mutationFn: async () => {
      const request = runRequest(model, values);
      const init = { params: { path: { project, endpoint }, query: { mode: "async" as const } } };
      const call =
        request.kind === "multipart"
          ? api.runner.POST("/runner/v1/projects/{project}/endpoints/{endpoint}", { ...init, body: {}, bodySerializer: () => request.body })
          : api.runner.POST("/runner/v1/projects/{project}/endpoints/{endpoint}", { ...init, body: request.body });
      // The runner documents its sync answer; async answers 202 with the run id (and Ryax-Run-Id).
      const { data, response } = await unwrapWithResponse(call);
      const accepted: unknown = data;
      const fromBody =
        typeof accepted === "object" && accepted !== null && typeof (accepted as Accepted).run_id === "string" ? (accepted as Accepted).run_id : undefined;
      const runId = fromBody ?? response.headers.get("Ryax-Run-Id");
      if (!runId) throw new Error("the runner accepted the run but did not say its id");
      return runId;
    },
    onSuccess: (runId) => onStarted(runId),
  });

  const submit = (e: SubmitEvent) => {
    e.preventDefault();
    const found = validateRun(model, values);
    setErrors(found);
    if (Object.keys(found).length === 0) start.mutate();
  };

  return (
    <form onSubmit={submit} noValidate aria-label="New run">
      <Stack gap="sm">
        {model.length === 0 && (
          <Text size="sm" c="dimmed">
            This trigger takes no input.
          </Text>
        )}
        {model.map((f) => (
          <FieldControl
            key={f.name}
            field={f}
            value={values[f.name] ?? null}
            error={errors[f.name]}
            onChange={(v) => {
              setValues((prev) => ({ ...prev, [f.name]: v }));
              if (errors[f.name]) setErrors(({ [f.name]: _, ...rest }) => rest);
            }}
          />
        ))}
        {start.isError && <ErrorAlert error={start.error} title="The run was not started" />}
        <Group>
          <Button type="submit" leftSection={<IconPlayerPlay size={16} aria-hidden />} loading={start.isPending} disabled={disabled}>
            Start run
          </Button>
        </Group>
      </Stack>
    </form>
  );
}
