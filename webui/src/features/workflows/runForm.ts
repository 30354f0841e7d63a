/**
 * The "new run" form, generated from the trigger's fields (the deployed snapshot's
 * `trigger_fields`): one control per field by its type, required when the field is neither
 * optional nor defaulted, and the request the runner's HTTP endpoint takes (JSON, or
 * multipart/form-data as soon as a field is a file or a directory).
 */
import type { ActionIO } from "../../api/types";

export type FieldKind = "text" | "longtext" | "password" | "integer" | "float" | "boolean" | "enum" | "file" | "directory" | "json";

export interface RunField {
  name: string;
  label: string;
  help: string;
  kind: FieldKind;
  required: boolean;
  options: string[];
  hasDefault: boolean;
  defaultValue: unknown;
}

export type FieldValue = string | number | boolean | File | null;
export type RunFormValues = Record<string, FieldValue>;

const KINDS: Record<string, FieldKind> = {
  string: "text",
  longstring: "longtext",
  password: "password",
  integer: "integer",
  float: "float",
  boolean: "boolean",
  enum: "enum",
  file: "file",
  directory: "directory",
};

export function runFields(fields: ActionIO[]): RunField[] {
  return fields.map((f) => ({
    name: f.name,
    label: f.human_name || f.name,
    help: f.help,
    kind: KINDS[f.type] ?? "json",
    required: !f.optional && !f.has_default,
    options: f.enum_values,
    hasDefault: f.has_default,
    defaultValue: f.default ?? null,
  }));
}

export function isFileKind(kind: FieldKind): boolean {
  return kind === "file" || kind === "directory";
}

export function initialValues(fields: RunField[]): RunFormValues {
  const values: RunFormValues = {};
  for (const f of fields) {
    const d = f.hasDefault ? f.defaultValue : null;
    switch (f.kind) {
      case "boolean":
        values[f.name] = typeof d === "boolean" ? d : false;
        break;
      case "integer":
      case "float":
        values[f.name] = typeof d === "number" ? d : "";
        break;
      case "enum":
        values[f.name] = typeof d === "string" && f.options.includes(d) ? d : null;
        break;
      case "file":
      case "directory":
        values[f.name] = null;
        break;
      case "json":
        values[f.name] = d === null || d === undefined ? "" : JSON.stringify(d);
        break;
      default:
        values[f.name] = typeof d === "string" ? d : typeof d === "number" || typeof d === "boolean" ? String(d) : "";
    }
  }
  return values;
}

/** A value as the text a text control shows (files have none). */
export function textOf(v: FieldValue | undefined): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return "";
}

function isEmpty(v: FieldValue | undefined): boolean {
  return v === null || v === undefined || v === "";
}

/** Errors by field name (empty when the form can be sent). */
export function validateRun(fields: RunField[], values: RunFormValues): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const f of fields) {
    const v = values[f.name];
    if (isEmpty(v)) {
      if (f.required) errors[f.name] = isFileKind(f.kind) ? "Choose a file" : "Required";
      continue;
    }
    if (f.kind === "integer" && !(typeof v === "number" ? Number.isInteger(v) : /^-?\d+$/.test(textOf(v).trim()))) {
      errors[f.name] = "A whole number";
    } else if (f.kind === "float" && !Number.isFinite(typeof v === "number" ? v : Number(textOf(v).trim()))) {
      errors[f.name] = "A number";
    } else if (f.kind === "enum" && !f.options.includes(textOf(v))) {
      errors[f.name] = `One of ${f.options.join(", ")}`;
    } else if (isFileKind(f.kind) && !(v instanceof File)) {
      errors[f.name] = "Choose a file";
    } else if (f.kind === "json") {
      try {
        JSON.parse(textOf(v));
      } catch {
        errors[f.name] = "A JSON value";
      }
    }
  }
  return errors;
}

export type RunRequest = { kind: "json"; body: Record<string, unknown> } | { kind: "multipart"; body: FormData };

function jsonValue(f: RunField, v: FieldValue): unknown {
  if (f.kind === "integer" || f.kind === "float") return typeof v === "number" ? v : Number(textOf(v).trim());
  if (f.kind === "json") return JSON.parse(textOf(v)) as unknown;
  return v;
}

/**
 * The request body: empty optional fields are left out (the endpoint then applies the
 * default); JSON unless a field is a file, then multipart with text parts for the others.
 */
export function runRequest(fields: RunField[], values: RunFormValues): RunRequest {
  const given = fields.filter((f) => !isEmpty(values[f.name]));
  if (fields.some((f) => isFileKind(f.kind))) {
    const form = new FormData();
    for (const f of given) {
      const v = values[f.name];
      if (v instanceof File) form.append(f.name, v, v.name);
      else if (f.kind === "json") form.append(f.name, JSON.stringify(jsonValue(f, v ?? null)));
      else form.append(f.name, textOf(v));
    }
    return { kind: "multipart", body: form };
  }
  const body: Record<string, unknown> = {};
  for (const f of given) body[f.name] = jsonValue(f, values[f.name] ?? null);
  return { kind: "json", body };
}
