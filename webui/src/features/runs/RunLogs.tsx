import { Badge, Box, Button, Group, ScrollArea, Select, Switch, Text, TextInput } from "@mantine/core";
import { IconDownload, IconSearch } from "@tabler/icons-react";
import { useEffect, useMemo, useRef, useState } from "react";

import { saveBlob } from "../../api/download";
import { ErrorAlert } from "../../components/ErrorAlert";
import { useRunLogs, type LogStatus } from "./useRunLogs";

/** Lines drawn at most; the rest are in the download. */
const SHOWN = 2000;

const STATUS: Record<LogStatus, { label: string; color: string }> = {
  connecting: { label: "Connecting", color: "gray" },
  live: { label: "Live", color: "green" },
  polling: { label: "Live (polling)", color: "teal" },
  ended: { label: "Complete", color: "gray" },
  error: { label: "Reconnecting", color: "orange" },
};

export interface RunLogsProps {
  project: string;
  runId: string;
  runEnded: boolean;
  steps: { id: string; label: string }[];
  step: string | null;
  onStepChange: (step: string | null) => void;
}

export function RunLogs({ project, runId, runEnded, steps, step, onStepChange }: RunLogsProps) {
  const logs = useRunLogs(project, runId, runEnded);
  const [text, setText] = useState("");
  const [follow, setFollow] = useState(true);
  const viewport = useRef<HTMLDivElement>(null);

  const filtered = useMemo(() => {
    const needle = text.trim().toLowerCase();
    return logs.lines.filter((l) => (!step || l.step_id === step) && (!needle || l.line.toLowerCase().includes(needle)));
  }, [logs.lines, step, text]);
  const shown = filtered.length > SHOWN ? filtered.slice(filtered.length - SHOWN) : filtered;

  useEffect(() => {
    const el = viewport.current;
    if (follow && el) el.scrollTo({ top: el.scrollHeight });
  }, [shown, follow]);

  const status = STATUS[logs.status];
  const download = () => {
    const body = filtered.map((l) => `${l.at} ${l.step_id} ${l.stream}: ${l.line}`).join("\n");
    saveBlob(new Blob([body + "\n"], { type: "text/plain" }), `run-${runId}${step ? `-${step}` : ""}.log`);
  };

  return (
    <Box>
      <Group gap="sm" mb="xs" align="flex-end" wrap="wrap">
        <Select
          label="Step"
          placeholder="All steps"
          data={steps.map((s) => ({ value: s.id, label: s.label }))}
          value={step}
          onChange={onStepChange}
          clearable
          w={200}
        />
        <TextInput
          label="Find"
          placeholder="Text in the lines"
          leftSection={<IconSearch size={14} aria-hidden />}
          value={text}
          onChange={(e) => setText(e.currentTarget.value)}
          w={220}
        />
        <Switch label="Follow" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} mb={8} />
        <Button variant="default" size="sm" leftSection={<IconDownload size={14} aria-hidden />} onClick={download} disabled={filtered.length === 0}>
          Download
        </Button>
        <Badge color={status.color} variant="dot" mb={8} aria-live="polite">
          {status.label}
        </Badge>
      </Group>
      {logs.status === "error" && logs.error !== null && <ErrorAlert error={logs.error} title="The log stream was interrupted" />}
      {(filtered.length > SHOWN || logs.dropped > 0) && (
        <Text size="xs" c="dimmed" mb={4}>
          Showing the last {shown.length} of {filtered.length + logs.dropped} lines: download them to read all
          {logs.dropped > 0 ? ` (the ${logs.dropped} oldest are no longer kept in this page; the CLI has them)` : ""}.
        </Text>
      )}
      <ScrollArea.Autosize
        mah={480}
        viewportRef={viewport}
        type="auto"
        offsetScrollbars
        style={{ border: "1px solid var(--mantine-color-default-border)", borderRadius: 6 }}
        viewportProps={{ tabIndex: 0, "aria-label": "Log lines", role: "log" }}
      >
        <Box p="xs" className="log-view">
          {shown.length === 0 ? (
            <Text size="sm" c="dimmed">
              {logs.status === "ended" ? "No log line." : "No log line yet."}
            </Text>
          ) : (
            shown.map((l) => (
              <div key={`${l.execution_id ?? l.step_id}#${l.seq}`} className={l.stream === "stderr" ? "log-line-stderr" : undefined}>
                <Text span c="dimmed" size="xs">
                  {l.at.slice(11, 23)} {steps.length > 1 && !step ? `[${l.step_id}] ` : ""}
                </Text>
                {l.line}
              </div>
            ))
          )}
        </Box>
      </ScrollArea.Autosize>
    </Box>
  );
}
