import { useEffect, useRef, useState } from "react";

import { ApiError } from "../../api/errors";
import { lineKey, readLogPage, readLogStream, type StreamedLine } from "../../api/logStream";

export type LogStatus = "connecting" | "live" | "polling" | "ended" | "error";

/** Lines kept in the page at most (the oldest are dropped past it). */
export const MAX_LINES = 20_000;

export interface RunLogs {
  lines: StreamedLine[];
  status: LogStatus;
  error: unknown;
  dropped: number;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });

/**
 * A run's log lines, live: the runner's stream (reconnected if it drops: the replay is
 * de-duplicated by execution and sequence number), or polling the kept lines when the stream
 * cannot be read. Updates are batched so a chatty step does not re-render at every line.
 */
export function useRunLogs(project: string, runId: string, runEnded: boolean): RunLogs {
  const [state, setState] = useState<RunLogs>({ lines: [], status: "connecting", error: null, dropped: 0 });
  const runEndedRef = useRef(runEnded);
  useEffect(() => {
    runEndedRef.current = runEnded;
  }, [runEnded]);

  useEffect(() => {
    const controller = new AbortController();
    const { signal } = controller;
    const stopped = () => signal.aborted;
    const seen = new Set<string>();
    let buffer: StreamedLine[] = [];
    let all: StreamedLine[] = [];
    let dropped = 0;
    let status: LogStatus = "connecting";
    let error: unknown = null;

    const flush = () => {
      if (signal.aborted) return;
      if (buffer.length > 0) {
        all = all.concat(buffer);
        buffer = [];
        if (all.length > MAX_LINES) {
          dropped += all.length - MAX_LINES;
          all = all.slice(all.length - MAX_LINES);
        }
      }
      setState({ lines: all, status, error, dropped });
    };
    const timer = setInterval(flush, 250);
    const add = (line: StreamedLine) => {
      const key = lineKey(line);
      if (seen.has(key)) return;
      seen.add(key);
      buffer.push(line);
    };
    const setStatus = (s: LogStatus, e: unknown = null) => {
      status = s;
      error = e;
      flush();
    };

    const poll = async () => {
      let after = 0;
      setStatus("polling");
      while (!signal.aborted) {
        try {
          const page = await readLogPage(project, runId, after);
          for (const l of page) {
            add(l);
            if (l.id !== undefined) after = Math.max(after, l.id);
          }
          if (page.length >= 1000) continue;
          if (runEndedRef.current) {
            setStatus("ended");
            return;
          }
        } catch (e) {
          if (stopped()) return;
          setStatus("error", e);
          if (e instanceof ApiError && (e.status === 401 || e.status === 403 || e.status === 404)) return;
        }
        await sleep(2000, signal);
      }
    };

    const run = async () => {
      let failures = 0;
      while (!signal.aborted) {
        try {
          setStatus("connecting");
          const ended = await readLogStream(
            project,
            runId,
            {
              onLine: (l) => {
                if (status !== "live") setStatus("live");
                add(l);
              },
              onEnd: () => undefined,
            },
            signal,
          );
          if (ended) {
            setStatus("ended");
            return;
          }
          failures = 0; // it was connected: reconnect at once
        } catch (e) {
          if (stopped()) return;
          if (e instanceof ApiError && (e.status === 401 || e.status === 403 || e.status === 404)) {
            setStatus("error", e);
            return;
          }
          failures += 1;
          if (failures >= 3) {
            await poll();
            return;
          }
          setStatus("error", e);
          await sleep(1000 * 2 ** failures, signal);
        }
      }
    };
    void run();
    return () => {
      controller.abort();
      clearInterval(timer);
    };
  }, [project, runId]);

  return state;
}
