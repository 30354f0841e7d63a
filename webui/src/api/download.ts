import { authFetch } from "./client";

/** Downloads a file the API serves behind the bearer token (a run's file, an export). */
export async function downloadFile(path: string, fallbackName: string): Promise<void> {
  const response = await authFetch(path);
  const blob = await response.blob();
  saveBlob(blob, fileNameOf(response.headers.get("content-disposition")) ?? fallbackName);
}

export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.rel = "noopener";
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The file name of a `Content-Disposition` header (`filename*=UTF-8''...` or `filename="..."`). */
export function fileNameOf(header: string | null): string | null {
  if (!header) return null;
  const star = /filename\*\s*=\s*(?:UTF-8'')?([^;]+)/i.exec(header);
  if (star?.[1]) {
    try {
      return decodeURIComponent(star[1].trim().replace(/^"|"$/g, ""));
    } catch {
      // fall through to the plain name
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(header);
  return plain?.[1]?.trim() ?? null;
}
