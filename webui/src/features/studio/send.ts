/** Each edit of the model as the studio's API call (every answer is the whole workflow). */
import { api, authFetch, unwrap } from "../../api/client";
import type { components } from "../../api/generated/studio";
import type { Workflow } from "../../api/types";
import type { EditOp, InputValue } from "./model";

type Schemas = components["schemas"];

/** The studio takes exactly one of static, secret, reference (the other keys must be absent). */
export function inputBody(v: InputValue): Schemas["InputValueModel"] {
  if (v.mode === "file") throw new Error("a static file is uploaded (uploadFile), not set");
  const body =
    v.mode === "static" ? { static: v.value } : v.mode === "secret" ? { secret: v.name } : { reference: { step: v.step, output: v.output } };
  return body as unknown as Schemas["InputValueModel"];
}

/** Upload a file (a directory: its zip/tar) as an input's static value (multipart `file`). */
export async function uploadInputFile(project: string, workflow: string, step: string, input: string, file: File): Promise<Workflow> {
  const form = new FormData();
  form.append("file", file, file.name);
  const e = encodeURIComponent;
  const response = await authFetch(`/studio/v1/projects/${e(project)}/workflows/${e(workflow)}/steps/${e(step)}/inputs/${e(input)}/file`, {
    method: "POST",
    body: form,
  });
  return (await response.json()) as Workflow;
}

export function sender(project: string, workflow: string) {
  const W = { project, workflow };
  const S = (step: string) => ({ path: { ...W, step } });
  return async function send(op: EditOp): Promise<Workflow> {
    switch (op.type) {
      case "addStep":
        return unwrap(
          api.studio.POST("/studio/v1/projects/{project}/workflows/{workflow}/steps", {
            params: { path: W },
            body: { id: op.id, action_id: op.actionId, version: op.version, position: op.position } as Schemas["StepIn"],
          }),
        );
      case "removeStep":
        return unwrap(api.studio.DELETE("/studio/v1/projects/{project}/workflows/{workflow}/steps/{step}", { params: S(op.id) }));
      case "moveSteps": {
        let last: Workflow | null = null;
        for (const m of op.moves) {
          last = await unwrap(
            api.studio.PATCH("/studio/v1/projects/{project}/workflows/{workflow}/steps/{step}", {
              params: S(m.id),
              body: { position: m.position } as Schemas["StepPatch"],
            }),
          );
        }
        if (last) return last;
        return unwrap(api.studio.GET("/studio/v1/projects/{project}/workflows/{workflow}", { params: { path: W } }));
      }
      case "renameStep":
        return unwrap(
          api.studio.PATCH("/studio/v1/projects/{project}/workflows/{workflow}/steps/{step}", {
            params: S(op.id),
            body: { human_name: op.humanName } as Schemas["StepPatch"],
          }),
        );
      case "changeVersion":
        return unwrap(
          api.studio.PATCH("/studio/v1/projects/{project}/workflows/{workflow}/steps/{step}", {
            params: S(op.id),
            body: { version: op.version } as Schemas["StepPatch"],
          }),
        );
      case "setInput":
        return unwrap(
          api.studio.PUT("/studio/v1/projects/{project}/workflows/{workflow}/steps/{step}/inputs/{input}", {
            params: { path: { ...W, step: op.step, input: op.input } },
            body: inputBody(op.value),
          }),
        );
      case "unsetInput":
        return unwrap(
          api.studio.DELETE("/studio/v1/projects/{project}/workflows/{workflow}/steps/{step}/inputs/{input}", {
            params: { path: { ...W, step: op.step, input: op.input } },
          }),
        );
      case "addLink":
        return unwrap(
          api.studio.POST("/studio/v1/projects/{project}/workflows/{workflow}/links", { params: { path: W }, body: { from: op.from, to: op.to } }),
        );
      case "removeLink":
        return unwrap(
          api.studio.DELETE("/studio/v1/projects/{project}/workflows/{workflow}/links/{from}/{to}", {
            params: { path: { ...W, from: op.from, to: op.to } },
          }),
        );
      case "setOutputs":
        return unwrap(
          api.studio.PUT("/studio/v1/projects/{project}/workflows/{workflow}/steps/{step}/outputs", {
            params: S(op.step),
            body: {
              outputs: op.outputs.map((o) => ({
                name: o.name,
                type: o.type,
                human_name: o.human_name,
                help: o.help,
                optional: o.optional,
                enum_values: o.enum_values,
                origin: o.origin ?? null,
              })),
            },
          }),
        );
      case "setSettings":
        return unwrap(
          api.studio.PUT("/studio/v1/projects/{project}/workflows/{workflow}/steps/{step}/settings", {
            params: S(op.step),
            body: op.settings,
          }),
        );
      case "setResults":
        return unwrap(
          api.studio.PUT("/studio/v1/projects/{project}/workflows/{workflow}/results", { params: { path: W }, body: { results: op.results } }),
        );
      case "uploadFile":
        return uploadInputFile(project, workflow, op.step, op.input, op.file);
      case "updateWorkflow":
        return unwrap(
          api.studio.PATCH("/studio/v1/projects/{project}/workflows/{workflow}", {
            params: { path: W },
            body: { ...(op.name !== undefined ? { name: op.name } : {}), ...(op.description !== undefined ? { description: op.description } : {}) } as Schemas["WorkflowPatch"],
          }),
        );
    }
  };
}

/** Replace the workflow's definition with a YAML file (a draft may be incomplete). */
export async function replaceWithYaml(project: string, workflow: string, text: string): Promise<Workflow> {
  const response = await authFetch(
    `/studio/v1/projects/${encodeURIComponent(project)}/workflows/${encodeURIComponent(workflow)}/yaml?draft=true`,
    { method: "PUT", headers: { "Content-Type": "application/yaml" }, body: text },
  );
  return (await response.json()) as Workflow;
}

/** A new workflow from a YAML file. */
export async function importYaml(project: string, text: string, name?: string): Promise<Workflow> {
  const query = new URLSearchParams({ draft: "true", ...(name ? { name } : {}) });
  const response = await authFetch(`/studio/v1/projects/${encodeURIComponent(project)}/workflows/import?${query.toString()}`, {
    method: "POST",
    headers: { "Content-Type": "application/yaml" },
    body: text,
  });
  return (await response.json()) as Workflow;
}
