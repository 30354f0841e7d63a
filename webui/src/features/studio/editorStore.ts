/**
 * The editor's state between the user and the studio. Every edit is applied to the model at
 * once (the canvas never waits) and queued; the queue sends one edit at a time, and each answer
 * (the whole workflow with its problems) becomes the new base, the edits still queued applied on
 * top of it. An edit the studio refuses is dropped with those queued after it (they were made on
 * top of it) and the refusal is kept for the page to show: the model is then the studio's.
 *
 * Saved state: "saving" while edits are queued, "unsaved" while a field holds text not yet
 * committed (`setDirty`), "failed" after a refusal, else "saved".
 *
 * Undo and redo: each `edit` call is one step of history, kept as the model before and after it.
 * Undo sends the edits that bring the model back to its "before" (`diffDocs`), redo those that
 * bring it to its "after"; both are sent like any edit. An edit the studio refuses leaves the
 * history with what it was made on; an import (a forced `receive`) starts a new history.
 */
import type { Workflow } from "../../api/types";
import { apply, diffDocs, fromWorkflow, reuse, type EditOp, type EditorDoc } from "./model";

export type SaveState = "saved" | "saving" | "unsaved" | "failed";

export interface EditorSnapshot {
  /** The studio's last answer (problems, deployment, updated_at). */
  workflow: Workflow;
  /** What the editor shows: the studio's answer plus the edits not answered yet. */
  doc: EditorDoc;
  pending: number;
  dirty: number;
  error: unknown;
  failed: EditOp | null;
  saveState: SaveState;
  /** How many edits the studio took since the page opened. */
  saved: number;
  canUndo: boolean;
  canRedo: boolean;
}

/** One step of history: the model around one `edit` call, and the edits it sent. */
interface HistoryEntry {
  before: EditorDoc;
  after: EditorDoc;
  ops: EditOp[];
}

/** How many edits undo can go back. */
export const HISTORY_LIMIT = 100;

export type Send = (op: EditOp) => Promise<Workflow>;

export class EditorStore {
  private base: EditorDoc;
  private queue: EditOp[] = [];
  private dirtyKeys = new Set<string>();
  private sending = false;
  private waiters: (() => void)[] = [];
  private listeners = new Set<() => void>();
  private snapshot: EditorSnapshot;
  private undoStack: HistoryEntry[] = [];
  private redoStack: HistoryEntry[] = [];

  constructor(
    workflow: Workflow,
    private readonly send: Send,
  ) {
    this.base = fromWorkflow(workflow);
    this.snapshot = { workflow, doc: this.base, pending: 0, dirty: 0, error: null, failed: null, saveState: "saved", saved: 0, canUndo: false, canRedo: false };
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): EditorSnapshot => this.snapshot;

  private publish(change: Partial<EditorSnapshot>): void {
    const next = { ...this.snapshot, ...change };
    const doc = reuse(this.snapshot.doc, this.queue.reduce(apply, this.base));
    next.doc = doc;
    next.pending = this.queue.length;
    next.dirty = this.dirtyKeys.size;
    next.saveState = next.pending > 0 ? "saving" : next.error ? "failed" : next.dirty > 0 ? "unsaved" : "saved";
    next.canUndo = this.undoStack.length > 0;
    next.canRedo = this.redoStack.length > 0;
    this.snapshot = next;
    for (const l of this.listeners) l();
    if (next.pending === 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    }
  }

  /** Apply edits now, send them in order; one step of history. */
  edit(...ops: EditOp[]): void {
    if (ops.length === 0) return;
    const before = this.snapshot.doc;
    this.enqueue(ops);
    this.undoStack.push({ before, after: this.snapshot.doc, ops });
    if (this.undoStack.length > HISTORY_LIMIT) this.undoStack.shift();
    this.redoStack = [];
    this.publish({});
  }

  /** Back to the model before the last edit (false: nothing to undo, or nothing differs). */
  undo(): boolean {
    return this.travel(this.undoStack, this.redoStack, (e) => e.before);
  }

  /** Again the last edit undone. */
  redo(): boolean {
    return this.travel(this.redoStack, this.undoStack, (e) => e.after);
  }

  private travel(from: HistoryEntry[], to: HistoryEntry[], target: (e: HistoryEntry) => EditorDoc): boolean {
    const entry = from.pop();
    if (!entry) return false;
    const ops = diffDocs(this.snapshot.doc, target(entry));
    to.push(entry);
    if (ops.length === 0) {
      this.publish({});
      return false;
    }
    this.enqueue(ops);
    entry.ops = ops;
    return true;
  }

  private enqueue(ops: EditOp[]): void {
    this.queue.push(...ops);
    this.publish({ error: null, failed: null });
    void this.pump();
  }

  /** A field holds text the user has not committed yet (blur or Enter commits it). */
  setDirty(key: string, dirty: boolean): void {
    if (dirty === this.dirtyKeys.has(key)) return;
    if (dirty) this.dirtyKeys.add(key);
    else this.dirtyKeys.delete(key);
    this.publish({});
  }

  /** Resolves once every queued edit has been answered. */
  flush(): Promise<void> {
    if (this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * A newer answer from elsewhere (the page's polling, an import): taken when nothing is queued
   * and it is not older than what the editor has.
   */
  receive(workflow: Workflow, { force = false } = {}): void {
    if (!force && (this.queue.length > 0 || this.sending)) return;
    if (!force && Date.parse(workflow.updated_at) < Date.parse(this.snapshot.workflow.updated_at)) return;
    if (force) {
      this.queue = [];
      this.undoStack = [];
      this.redoStack = [];
    }
    this.base = fromWorkflow(workflow);
    this.publish({ workflow });
  }

  dismissError(): void {
    this.publish({ error: null, failed: null });
  }

  private async pump(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.queue.length > 0) {
        const op = this.queue[0];
        if (!op) break;
        try {
          const workflow = await this.send(op);
          this.queue.shift();
          this.base = fromWorkflow(workflow);
          this.publish({ workflow, saved: this.snapshot.saved + 1 });
        } catch (error) {
          // the refused edit and those made on top of it are dropped: the model is the studio's,
          // and so is the history: the steps that sent them are forgotten
          const dropped = new Set(this.queue);
          const kept = (e: HistoryEntry) => !e.ops.some((o) => dropped.has(o));
          this.undoStack = this.undoStack.filter(kept);
          this.redoStack = this.redoStack.filter(kept);
          this.queue = [];
          this.publish({ error, failed: op });
        }
      }
    } finally {
      this.sending = false;
    }
  }
}
