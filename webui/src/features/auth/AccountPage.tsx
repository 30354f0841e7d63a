import {
  Alert,
  Badge,
  Button,
  Card,
  Group,
  Modal,
  NumberInput,
  PasswordInput,
  SimpleGrid,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
  VisuallyHidden,
} from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SubmitEvent } from "react";

import { api, unwrap } from "../../api/client";
import { authQueries } from "../../api/queries";
import type { NewMachineToken } from "../../api/types";
import { ConfirmButton } from "../../components/ConfirmButton";
import { CopyField } from "../../components/CopyField";
import { ErrorAlert } from "../../components/ErrorAlert";
import { notifyError, notifySuccess } from "../../components/notify";
import { Empty, Loading, PageHeader } from "../../components/Page";
import { RelativeTime } from "../../components/Time";
import { useMe } from "./project";

function Profile() {
  const me = useMe();
  if (me.isPending) return <Loading />;
  if (me.isError) return <ErrorAlert error={me.error} title="Your account could not be read" />;
  return (
    <Card withBorder>
      <Title order={3} size="h4" mb="xs">
        {me.data.username} {me.data.is_admin && <Badge ml="xs">administrator</Badge>}
      </Title>
      <Text size="sm" c="dimmed" mb="xs">
        Projects and your role in each
      </Text>
      {me.data.projects.length === 0 ? (
        <Empty>No project.</Empty>
      ) : (
        <Group gap="xs">
          {me.data.projects.map((p) => (
            <Badge key={p.id} variant="outline" tt="none">
              {p.name} · {p.role ?? "admin"}
            </Badge>
          ))}
        </Group>
      )}
    </Card>
  );
}

function ChangePassword() {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [confirm, setConfirm] = useState("");
  const change = useMutation({
    mutationFn: () =>
      unwrap(api.authorization.PUT("/authorization/v1/me/password", { body: { old_password: current, new_password: next } })),
    onSuccess: () => {
      setCurrent("");
      setNext("");
      setConfirm("");
      notifySuccess("Your password was changed.");
    },
  });
  const mismatch = confirm.length > 0 && confirm !== next;
  const submit = (e: SubmitEvent) => {
    e.preventDefault();
    if (!mismatch) change.mutate();
  };
  return (
    <Card withBorder component="section" aria-labelledby="password-title">
      <form onSubmit={submit}>
        <Stack gap="sm">
          <Title order={3} size="h4" id="password-title">
            Change password
          </Title>
          {change.isError && <ErrorAlert error={change.error} title="The password was not changed" />}
          <PasswordInput label="Current password" autoComplete="current-password" required value={current} onChange={(e) => setCurrent(e.currentTarget.value)} />
          <PasswordInput label="New password" autoComplete="new-password" required value={next} onChange={(e) => setNext(e.currentTarget.value)} />
          <PasswordInput
            label="New password again"
            autoComplete="new-password"
            required
            value={confirm}
            onChange={(e) => setConfirm(e.currentTarget.value)}
            error={mismatch ? "The two new passwords differ" : undefined}
          />
          <Group>
            <Button type="submit" loading={change.isPending} disabled={!current || !next || confirm !== next}>
              Change password
            </Button>
          </Group>
        </Stack>
      </form>
    </Card>
  );
}

function Tokens() {
  const client = useQueryClient();
  const tokens = useQuery(authQueries.tokens());
  const [name, setName] = useState("");
  const [days, setDays] = useState<number | string>("");
  const [created, setCreated] = useState<NewMachineToken | null>(null);
  const create = useMutation({
    mutationFn: () =>
      unwrap(
        api.authorization.POST("/authorization/v1/tokens", {
          body: { name: name.trim(), expires_in_days: typeof days === "number" && days > 0 ? days : null },
        }),
      ),
    onSuccess: (token) => {
      setCreated(token);
      setName("");
      setDays("");
      void client.invalidateQueries({ queryKey: authQueries.tokens().queryKey });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) =>
      unwrap(api.authorization.DELETE("/authorization/v1/tokens/{token_id}", { params: { path: { token_id: id } } })),
    onSuccess: () => {
      notifySuccess("The token was revoked.");
      void client.invalidateQueries({ queryKey: authQueries.tokens().queryKey });
    },
    onError: (e) => notifyError("The token was not revoked", e),
  });

  return (
    <Card withBorder component="section" aria-labelledby="tokens-title">
      <Stack gap="sm">
        <div>
          <Title order={3} size="h4" id="tokens-title">
            Machine tokens
          </Title>
          <Text size="sm" c="dimmed">
            Long-lived tokens for the CLI, scripts and CI, acting as you (<code>Authorization: Bearer ryax_…</code>).
            A token is shown once, when it is created.
          </Text>
        </div>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            create.mutate();
          }}
        >
          <Group align="flex-end" gap="sm">
            <TextInput label="Name" placeholder="ci-pipeline" required value={name} onChange={(e) => setName(e.currentTarget.value)} />
            <NumberInput label="Expires in (days)" placeholder="never" min={1} allowDecimal={false} value={days} onChange={setDays} w={160} />
            <Button type="submit" loading={create.isPending} disabled={!name.trim()}>
              Create token
            </Button>
          </Group>
        </form>
        {create.isError && <ErrorAlert error={create.error} title="The token was not created" />}
        {tokens.isPending && <Loading label="Loading tokens" />}
        {tokens.isError && <ErrorAlert error={tokens.error} title="Tokens could not be read" />}
        {tokens.data &&
          (tokens.data.tokens.length === 0 ? (
            <Empty>No machine token.</Empty>
          ) : (
            <Table.ScrollContainer minWidth={560}>
              <Table aria-label="Machine tokens" highlightOnHover>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Name</Table.Th>
                    <Table.Th>Created</Table.Th>
                    <Table.Th>Expires</Table.Th>
                    <Table.Th>State</Table.Th>
                    <Table.Th>
                      <VisuallyHidden>Actions</VisuallyHidden>
                    </Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {tokens.data.tokens.map((t) => (
                    <Table.Tr key={t.id}>
                      <Table.Td>{t.name}</Table.Td>
                      <Table.Td>
                        <RelativeTime iso={t.created_at} />
                      </Table.Td>
                      <Table.Td>{t.expires_at ? <RelativeTime iso={t.expires_at} /> : "never"}</Table.Td>
                      <Table.Td>
                        {t.revoked_at ? (
                          <Badge color="gray" variant="light">
                            revoked
                          </Badge>
                        ) : (
                          <Badge color="green" variant="light">
                            active
                          </Badge>
                        )}
                      </Table.Td>
                      <Table.Td>
                        {!t.revoked_at && (
                          <ConfirmButton
                            size="compact-sm"
                            variant="subtle"
                            title={`Revoke the token “${t.name}”?`}
                            message="Programs using it will be refused from now on."
                            confirmLabel="Revoke"
                            onConfirm={() => revoke.mutate(t.id)}
                            aria-label={`Revoke token ${t.name}`}
                          >
                            Revoke
                          </ConfirmButton>
                        )}
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          ))}
      </Stack>
      <Modal opened={created !== null} onClose={() => setCreated(null)} title="Your new token" centered size="lg">
        {created && (
          <Stack>
            <Alert color="yellow" variant="light">
              Copy it now: it will not be shown again.
            </Alert>
            <CopyField label={`Token “${created.name}”`} value={created.token} />
            <Group justify="flex-end">
              <Button onClick={() => setCreated(null)}>Done</Button>
            </Group>
          </Stack>
        )}
      </Modal>
    </Card>
  );
}

export function AccountPage() {
  return (
    <>
      <PageHeader title="Account" subtitle="Your profile, your password and your machine tokens" />
      <Stack>
        <Profile />
        <SimpleGrid cols={{ base: 1, lg: 2 }}>
          <ChangePassword />
        </SimpleGrid>
        <Tokens />
      </Stack>
    </>
  );
}
