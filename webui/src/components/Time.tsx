import { Tooltip } from "@mantine/core";

import { formatDateTime, formatRelative } from "../lib/format";
import { useNow } from "../lib/useNow";

/** "3 minutes ago", with the exact time on hover and for assistive technologies. */
export function RelativeTime({ iso }: { iso: string | null | undefined }) {
  const now = useNow();
  if (!iso) return <span>—</span>;
  const exact = formatDateTime(iso);
  return (
    <Tooltip label={exact} openDelay={300}>
      <time dateTime={iso} title={exact}>
        {formatRelative(iso, now)}
      </time>
    </Tooltip>
  );
}
