/**
 * The runner's live log stream of a run: server-sent events (`log`, then `end`) read with
 * fetch, because EventSource cannot send the bearer token. The stream first replays the lines
 * already kept, then follows the run.
 */
import { createParser } from "eventsource-parser";

import { api, authFetch, unwrap } from "./client";

/** A log line as the stream sends it (the live lines have no database id). */
export interface StreamedLine {
  id?: number;
  execution_id: string | null;
  step_id: string;
  seq: number;
  stream: string;
  line: string;
  at: string;
}

export function lineKey(l: Pick<StreamedLine, "execution_id" | "seq" | "step_id">): string {
  return `${l.execution_id ?? `step:${l.step_id}`}#${l.seq}`;
}

export interface StreamHandlers {
  onLine: (line: StreamedLine) => void;
  /** The runner said the run ended: no more lines will come. */
  onEnd: () => void;
}

function runPath(project: string, runId: string): string {
  return `/runner/v1/projects/${encodeURIComponent(project)}/runs/${encodeURIComponent(runId)}`;
}

/** Reads the stream until it closes; resolves true when it ended with `end`. */
export async function readLogStream(project: string, runId: string, handlers: StreamHandlers, signal: AbortSignal): Promise<boolean> {
  const response = await authFetch(`${runPath(project, runId)}/logs/stream`, {
    headers: { Accept: "text/event-stream" },
    signal,
    cache: "no-store",
  });
  if (!response.body) throw new Error("the log stream has no body");
  const seen = { ended: false };
  const parser = createParser({
    onEvent(event) {
      if (event.event === "log") {
        try {
          handlers.onLine(JSON.parse(event.data) as StreamedLine);
        } catch {
          // a malformed event is skipped; the others still show
        }
      } else if (event.event === "end") {
        seen.ended = true;
        handlers.onEnd();
      }
    },
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.feed(value);
      if (seen.ended) break;
    }
  } finally {
    reader.releaseLock();
  }
  return seen.ended;
}

/** One page of kept lines (the fallback when the stream cannot be read). */
export async function readLogPage(project: string, runId: string, afterId: number): Promise<StreamedLine[]> {
  const page = await unwrap(
    api.runner.GET("/runner/v1/projects/{project}/runs/{run_id}/logs", {
      params: { path: { project, run_id: runId }, query: { after_id: afterId, limit: 1000 } },
    }),
  );
  return page.lines;
}
