/** A file (or directory) value as the runner presents it: with a download link. */
export interface FileValue {
  type: "file" | "directory";
  name: string;
  size: number;
  sha256: string;
  key?: string;
  download_url: string;
}

export function isFileValue(value: unknown): value is FileValue {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (v.type === "file" || v.type === "directory") && typeof v.download_url === "string" && typeof v.name === "string";
}
