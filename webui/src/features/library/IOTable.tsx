import { Badge, Code, Group, Table, Text } from "@mantine/core";

/** Inputs or outputs of an action: name, type, required, default, choices, help. */
export interface IORow {
  name: string;
  type: string;
  human_name: string;
  help: string;
  optional: boolean;
  enum_values: string[];
  default?: unknown;
  has_default?: boolean;
}

export function IOTable({ rows, label }: { rows: IORow[]; label: string }) {
  if (rows.length === 0) {
    return (
      <Text size="sm" c="dimmed">
        None.
      </Text>
    );
  }
  return (
    <Table.ScrollContainer minWidth={480}>
      <Table aria-label={label} verticalSpacing={4} fz="sm">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Name</Table.Th>
            <Table.Th>Type</Table.Th>
            <Table.Th>Default</Table.Th>
            <Table.Th>Description</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {rows.map((io) => (
            <Table.Tr key={io.name}>
              <Table.Td>
                <Code>{io.name}</Code>
                {io.human_name && io.human_name !== io.name && (
                  <Text size="xs" c="dimmed">
                    {io.human_name}
                  </Text>
                )}
              </Table.Td>
              <Table.Td>
                <Group gap={4}>
                  <Badge variant="light" color="gray" tt="none">
                    {io.type}
                  </Badge>
                  {io.optional && (
                    <Badge variant="outline" color="gray" tt="none">
                      optional
                    </Badge>
                  )}
                </Group>
                {io.enum_values.length > 0 && (
                  <Text size="xs" c="dimmed">
                    one of {io.enum_values.join(", ")}
                  </Text>
                )}
              </Table.Td>
              <Table.Td>{io.has_default ? <Code>{JSON.stringify(io.default)}</Code> : "—"}</Table.Td>
              <Table.Td>
                <Text size="sm">{io.help}</Text>
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}
