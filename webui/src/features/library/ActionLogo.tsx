import { Avatar } from "@mantine/core";
import { IconBolt, IconBox, IconSend } from "@tabler/icons-react";
import { useQuery } from "@tanstack/react-query";

import { studioQueries } from "../../api/queries";
import type { StoreAction } from "../../api/types";

/** The action's logo (read with the token, so not a plain <img src>); its kind's icon without one. */
export function ActionLogo({ project, action, size = 40 }: { project: string; action: StoreAction; size?: number }) {
  const logo = useQuery({ ...studioQueries.logo(project, action.action_id, action.version), enabled: action.has_logo });
  const Icon = action.kind === "trigger" ? IconBolt : action.kind === "publisher" ? IconSend : IconBox;
  return (
    <Avatar src={logo.data ?? null} alt={`${action.human_name || action.action_id} logo`} size={size} radius="sm" color="blue" variant="light">
      <Icon size={size * 0.55} aria-hidden />
    </Avatar>
  );
}
