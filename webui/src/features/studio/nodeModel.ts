/** What an editor node shows and how tall it is (the layout needs its size before it renders). */
import type { Node } from "@xyflow/react";

import type { ActionIO, StoreAction } from "../../api/types";
import type { EditorStep, StepProblems } from "./model";

export const EDITOR_NODE_WIDTH = 270;
const HEADER = 54;
const ROW = 22;

export interface EditorNodeData extends Record<string, unknown> {
  step: EditorStep;
  action: StoreAction | undefined;
  outputs: ActionIO[];
  trigger: boolean;
  problems: StepProblems | undefined;
}
export type EditorFlowNode = Node<EditorNodeData, "editor">;

/** The inputs a node draws as rows (a trigger's are set in the panel: nothing can feed them). */
export function shownInputs(action: StoreAction | undefined, trigger: boolean): ActionIO[] {
  return trigger || !action ? [] : action.inputs;
}

export function editorNodeHeight(action: StoreAction | undefined, outputs: number, trigger: boolean): number {
  return HEADER + ROW * Math.max(1, shownInputs(action, trigger).length, outputs) + 8;
}
