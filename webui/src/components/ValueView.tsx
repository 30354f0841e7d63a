import { Button, Code, Table, Text } from "@mantine/core";
import { IconDownload } from "@tabler/icons-react";
import { useState } from "react";

import { downloadFile } from "../api/download";
import { formatBytes } from "../lib/format";
import { isFileValue, type FileValue } from "../lib/values";
import { notifyError } from "./notify";

export function DownloadButton({ file }: { file: FileValue }) {
  const [busy, setBusy] = useState(false);
  const name = file.type === "directory" ? `${file.name}.tar` : file.name;
  return (
    <Button
      size="compact-sm"
      variant="light"
      leftSection={<IconDownload size={14} aria-hidden />}
      loading={busy}
      aria-label={`Download ${name} (${formatBytes(file.size)})`}
      onClick={() => {
        setBusy(true);
        downloadFile(file.download_url, name)
          .catch((e: unknown) => notifyError(`${name} could not be downloaded`, e))
          .finally(() => setBusy(false));
      }}
    >
      {name} <Text span size="xs" c="dimmed" ml={6}>{formatBytes(file.size)}</Text>
    </Button>
  );
}

/** One value: a download for files, the text for strings, JSON for the rest. */
export function ValueView({ value }: { value: unknown }) {
  if (value === null || value === undefined) return <Text c="dimmed" span>—</Text>;
  if (isFileValue(value)) return <DownloadButton file={value} />;
  if (typeof value === "string") {
    return (
      <Text span size="sm" style={{ whiteSpace: "pre-wrap", wordBreak: "break-word" }}>
        {value.length > 2000 ? `${value.slice(0, 2000)}… (${value.length} characters)` : value}
      </Text>
    );
  }
  if (typeof value === "number" || typeof value === "boolean") return <Code>{String(value)}</Code>;
  if (Array.isArray(value) && value.every(isFileValue)) {
    return (
      <>
        {value.map((f) => (
          <DownloadButton key={f.download_url} file={f} />
        ))}
      </>
    );
  }
  return (
    <Code block style={{ maxHeight: 240, overflow: "auto" }}>
      {JSON.stringify(value, null, 2)}
    </Code>
  );
}

/** A name -> value table (inputs, outputs, results). */
export function ValuesTable({ values, caption }: { values: Record<string, unknown> | null | undefined; caption: string }) {
  const entries = Object.entries(values ?? {});
  if (entries.length === 0) return <Text size="sm" c="dimmed">None.</Text>;
  return (
    <Table withTableBorder={false} verticalSpacing={4} aria-label={caption}>
      <Table.Tbody>
        {entries.map(([name, value]) => (
          <Table.Tr key={name}>
            <Table.Th scope="row" w="30%" style={{ verticalAlign: "top", fontWeight: 600 }}>
              {name}
            </Table.Th>
            <Table.Td>
              <ValueView value={value} />
            </Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}
