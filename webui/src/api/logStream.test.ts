import { http, HttpResponse } from "msw";
import { describe, expect, it } from "vitest";

import { logIn, ORIGIN } from "../../test/render";
import { server } from "../../test/server";
import { lineKey, readLogStream, type StreamedLine } from "./logStream";

const STREAM = `${ORIGIN}/runner/v1/projects/demo/runs/r1/logs/stream`;

function line(seq: number, text: string): StreamedLine {
  return { execution_id: "e1", step_id: "count", seq, stream: "stdout", line: text, at: "2026-01-01T10:00:00Z" };
}

function sse(chunks: string[]) {
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const c of chunks) controller.enqueue(encoder.encode(c));
      controller.close();
    },
  });
}

describe("readLogStream", () => {
  it("reads log events split anywhere across chunks, keep-alives, then the end", async () => {
    logIn("tok");
    let auth: string | null = null;
    const first = `event: log\ndata: ${JSON.stringify(line(1, "hello"))}\n\n`;
    const second = `event: log\ndata: ${JSON.stringify(line(2, "world"))}\n\n`;
    server.use(
      http.get(STREAM, ({ request }) => {
        auth = request.headers.get("authorization");
        return new HttpResponse(sse([first.slice(0, 10), first.slice(10) + ": keep-alive\n\n" + second.slice(0, 30), second.slice(30), 'event: end\ndata: {"run_id": "r1"}\n\n']), {
          headers: { "Content-Type": "text/event-stream" },
        });
      }),
    );
    const lines: StreamedLine[] = [];
    let ended = false;
    const result = await readLogStream("demo", "r1", { onLine: (l) => lines.push(l), onEnd: () => (ended = true) }, new AbortController().signal);
    expect(auth).toBe("Bearer tok");
    expect(lines.map((l) => l.line)).toEqual(["hello", "world"]);
    expect(ended).toBe(true);
    expect(result).toBe(true);
  });

  it("tells a dropped stream (no end) from a finished one", async () => {
    logIn();
    server.use(http.get(STREAM, () => new HttpResponse(sse([`event: log\ndata: ${JSON.stringify(line(1, "a"))}\n\n`]), { headers: { "Content-Type": "text/event-stream" } })));
    const result = await readLogStream("demo", "r1", { onLine: () => undefined, onEnd: () => undefined }, new AbortController().signal);
    expect(result).toBe(false);
  });

  it("fails with the runner's message", async () => {
    logIn();
    server.use(http.get(STREAM, () => HttpResponse.json({ error: "not_found", detail: "run r1 not found" }, { status: 404 })));
    await expect(readLogStream("demo", "r1", { onLine: () => undefined, onEnd: () => undefined }, new AbortController().signal)).rejects.toMatchObject({
      status: 404,
      message: "run r1 not found",
    });
  });

  it("keys lines by execution and sequence, so a replay is not shown twice", () => {
    expect(lineKey(line(3, "x"))).toBe("e1#3");
    expect(lineKey({ execution_id: null, step_id: "trigger", seq: 3 })).toBe("step:trigger#3");
  });
});
