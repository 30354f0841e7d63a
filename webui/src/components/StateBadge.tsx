import { Badge, type BadgeProps } from "@mantine/core";

import { stateColor, stateLabel } from "./states";

export interface StateBadgeProps extends Omit<BadgeProps, "children" | "color"> {
  state: string;
  /** Overrides the label (e.g. "Building" for a requested build). */
  label?: string;
}

export function StateBadge({ state, label, ...props }: StateBadgeProps) {
  return (
    <Badge variant="light" color={stateColor(state)} radius="sm" {...props}>
      {label ?? stateLabel(state)}
    </Badge>
  );
}
