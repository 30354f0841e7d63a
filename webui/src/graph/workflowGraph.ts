/** A workflow's definition as a graph: its steps, their links and the problems on each. */
import type { StoreAction, Workflow } from "../api/types";
import type { GraphModel } from "./model";

export function workflowGraph(workflow: Pick<Workflow, "steps" | "problems">, catalogue: Map<string, StoreAction>): GraphModel {
  const parents = new Map<string, string[]>();
  for (const s of workflow.steps) {
    for (const target of s.streams_to) parents.set(target, [...(parents.get(target) ?? []), s.id]);
  }
  const problems = new Map<string, string[]>();
  for (const p of workflow.problems) {
    if (!p.step_id) continue;
    const text = p.input ? `${p.input}: ${p.message}` : p.message;
    problems.set(p.step_id, [...(problems.get(p.step_id) ?? []), text]);
  }
  return {
    steps: workflow.steps.map((s) => {
      const action = catalogue.get(`${s.action_id}@${s.version}`);
      return {
        id: s.id,
        label: s.human_name || action?.human_name || s.id,
        actionId: s.action_id,
        version: s.version,
        kind: action?.kind,
        parents: parents.get(s.id) ?? [],
        position: s.position ? { x: s.position.x, y: s.position.y } : null,
        problems: problems.get(s.id) ?? [],
      };
    }),
  };
}
