import { useEffect } from "react";

/** The tab's title: "<page> · Ryax". */
export function useDocumentTitle(title: string | null): void {
  useEffect(() => {
    if (title) document.title = `${title} · Ryax`;
  }, [title]);
}
