import { ActionIcon, CopyButton, TextInput, Tooltip, type TextInputProps } from "@mantine/core";
import { IconCheck, IconCopy } from "@tabler/icons-react";

/** A read-only value with a copy button (a URL, a token shown once). */
export function CopyField({ value, label, ...props }: { value: string; label: string } & Omit<TextInputProps, "value" | "label">) {
  return (
    <TextInput
      label={label}
      value={value}
      readOnly
      onFocus={(e) => e.currentTarget.select()}
      styles={{ input: { fontFamily: "var(--mantine-font-family-monospace)" } }}
      rightSection={
        <CopyButton value={value} timeout={2000}>
          {({ copied, copy }) => (
            <Tooltip label={copied ? "Copied" : "Copy"} withArrow>
              <ActionIcon variant="subtle" color={copied ? "teal" : "gray"} onClick={copy} aria-label={`Copy ${label}`}>
                {copied ? <IconCheck size={16} aria-hidden /> : <IconCopy size={16} aria-hidden />}
              </ActionIcon>
            </Tooltip>
          )}
        </CopyButton>
      }
      {...props}
    />
  );
}
