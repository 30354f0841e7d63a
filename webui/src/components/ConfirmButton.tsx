import { Button, Group, Modal, Text, type ButtonProps } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import type { ReactNode } from "react";

export interface ConfirmButtonProps extends Omit<ButtonProps, "onClick"> {
  /** The question, e.g. "Delete the repository “demo”?" */
  title: string;
  message?: ReactNode;
  confirmLabel: string;
  onConfirm: () => void;
  children: ReactNode;
  "aria-label"?: string;
}

/** A button that asks before a destructive action. */
export function ConfirmButton({ title, message, confirmLabel, onConfirm, children, color = "red", ...props }: ConfirmButtonProps) {
  const [opened, { open, close }] = useDisclosure(false);
  return (
    <>
      <Button color={color} {...props} onClick={open}>
        {children}
      </Button>
      <Modal opened={opened} onClose={close} title={title} centered>
        {message && <Text size="sm">{message}</Text>}
        <Group justify="flex-end" mt="lg">
          <Button variant="default" onClick={close}>
            Cancel
          </Button>
          <Button
            color={color}
            onClick={() => {
              close();
              onConfirm();
            }}
          >
            {confirmLabel}
          </Button>
        </Group>
      </Modal>
    </>
  );
}
