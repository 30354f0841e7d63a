import { Alert, Badge, Button, Card, Checkbox, Group, PasswordInput, Select, SimpleGrid, Stack, Table, Text, TextInput, Title, VisuallyHidden } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useMemo, useState, type SubmitEvent } from "react";

import { api, unwrap } from "../../api/client";
import { authQueries } from "../../api/queries";
import type { Role, User } from "../../api/types";
import { ConfirmButton } from "../../components/ConfirmButton";
import { ErrorAlert } from "../../components/ErrorAlert";
import { notifyError, notifySuccess } from "../../components/notify";
import { Empty, Loading, PageHeader } from "../../components/Page";
import { RelativeTime } from "../../components/Time";
import { useMe } from "../auth/project";

const ROLES: { value: Role; label: string }[] = [
  { value: "owner", label: "owner (manages members)" },
  { value: "developer", label: "developer (changes things)" },
  { value: "viewer", label: "viewer (reads)" },
];

function Users() {
  const client = useQueryClient();
  const users = useQuery(authQueries.users());
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [admin, setAdmin] = useState(false);
  const create = useMutation({
    mutationFn: () => unwrap(api.authorization.POST("/authorization/v1/users", { body: { username: username.trim(), password, is_admin: admin } })),
    onSuccess: (u) => {
      notifySuccess(`User ${u.username} created.`);
      setUsername("");
      setPassword("");
      setAdmin(false);
      void client.invalidateQueries({ queryKey: authQueries.users().queryKey });
    },
  });
  const submit = (e: SubmitEvent) => {
    e.preventDefault();
    create.mutate();
  };
  return (
    <Card withBorder component="section" aria-labelledby="users-title">
      <Title order={3} size="h4" mb="sm" id="users-title">
        Users
      </Title>
      <form onSubmit={submit}>
        <Group align="flex-end" gap="sm" mb="sm">
          <TextInput label="Username" required value={username} onChange={(e) => setUsername(e.currentTarget.value)} autoComplete="off" />
          <PasswordInput label="Password" required value={password} onChange={(e) => setPassword(e.currentTarget.value)} autoComplete="new-password" />
          <Checkbox label="Administrator" checked={admin} onChange={(e) => setAdmin(e.currentTarget.checked)} mb={8} />
          <Button type="submit" loading={create.isPending} disabled={!username.trim() || !password}>
            Create user
          </Button>
        </Group>
      </form>
      {create.isError && <ErrorAlert error={create.error} title="The user was not created" />}
      {users.isPending && <Loading label="Loading users" />}
      {users.isError && <ErrorAlert error={users.error} title="The users could not be read" />}
      {users.data && (
        <Table.ScrollContainer minWidth={400}>
          <Table aria-label="Users" verticalSpacing={4}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Username</Table.Th>
                <Table.Th>Role</Table.Th>
                <Table.Th>Created</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {users.data.users.map((u) => (
                <Table.Tr key={u.id}>
                  <Table.Td>{u.username}</Table.Td>
                  <Table.Td>{u.is_admin ? <Badge>administrator</Badge> : "user"}</Table.Td>
                  <Table.Td>
                    <RelativeTime iso={u.created_at} />
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Card>
  );
}

function Members({ project, users }: { project: string; users: User[] }) {
  const client = useQueryClient();
  const detail = useQuery(authQueries.project(project));
  const [user, setUser] = useState<string | null>(null);
  const [role, setRole] = useState<Role>("developer");
  const names = useMemo(() => new Map(users.map((u) => [u.id, u.username])), [users]);
  const refresh = () => {
    void client.invalidateQueries({ queryKey: authQueries.project(project).queryKey });
    void client.invalidateQueries({ queryKey: authQueries.me().queryKey });
  };
  const setMember = useMutation({
    mutationFn: ({ userId, r }: { userId: string; r: Role }) =>
      unwrap(api.authorization.PUT("/authorization/v1/projects/{project}/members/{user}", { params: { path: { project, user: userId } }, body: { role: r } })),
    onSuccess: () => {
      notifySuccess("Membership saved.");
      setUser(null);
      refresh();
    },
    onError: (e) => notifyError("The membership was not changed", e),
  });
  const remove = useMutation({
    mutationFn: (userId: string) =>
      unwrap(api.authorization.DELETE("/authorization/v1/projects/{project}/members/{user}", { params: { path: { project, user: userId } } })),
    onSuccess: () => {
      notifySuccess("Member removed.");
      refresh();
    },
    onError: (e) => notifyError("The member was not removed", e),
  });
  if (detail.isPending) return <Loading label="Loading members" />;
  if (detail.isError) return <ErrorAlert error={detail.error} title="The project could not be read" />;
  const members = detail.data.members ?? [];
  const memberIds = new Set(members.map((m) => m.user_id));
  return (
    <Stack gap="sm">
      <Table aria-label={`Members of ${project}`} verticalSpacing={4}>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>User</Table.Th>
            <Table.Th>Role</Table.Th>
            <Table.Th>
              <VisuallyHidden>Actions</VisuallyHidden>
            </Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {members.map((m) => {
            const name = m.username || (names.get(m.user_id) ?? m.user_id);
            return (
              <Table.Tr key={m.user_id}>
                <Table.Td>{name}</Table.Td>
                <Table.Td>
                  <Select
                    aria-label={`Role of ${name}`}
                    data={ROLES}
                    value={m.role}
                    allowDeselect={false}
                    size="xs"
                    w={230}
                    onChange={(v) => v && v !== m.role && setMember.mutate({ userId: m.user_id, r: v })}
                  />
                </Table.Td>
                <Table.Td>
                  <ConfirmButton
                    size="compact-sm"
                    variant="subtle"
                    title={`Remove ${name} from ${project}?`}
                    confirmLabel="Remove"
                    onConfirm={() => remove.mutate(m.user_id)}
                    aria-label={`Remove ${name}`}
                  >
                    Remove
                  </ConfirmButton>
                </Table.Td>
              </Table.Tr>
            );
          })}
        </Table.Tbody>
      </Table>
      {members.length === 0 && <Empty>No member.</Empty>}
      <Group align="flex-end" gap="sm">
        <Select
          label="Add a member"
          placeholder="User"
          data={users.filter((u) => !memberIds.has(u.id)).map((u) => ({ value: u.id, label: u.username }))}
          value={user}
          onChange={setUser}
          searchable
          w={220}
        />
        <Select label="Role" data={ROLES} value={role} onChange={(v) => v && setRole(v)} allowDeselect={false} w={230} />
        <Button onClick={() => user && setMember.mutate({ userId: user, r: role })} disabled={!user} loading={setMember.isPending}>
          Add
        </Button>
      </Group>
    </Stack>
  );
}

function Projects() {
  const client = useQueryClient();
  const projects = useQuery(authQueries.projects());
  const users = useQuery(authQueries.users());
  const [name, setName] = useState("");
  const [owner, setOwner] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const create = useMutation({
    mutationFn: () => unwrap(api.authorization.POST("/authorization/v1/projects", { body: { name: name.trim(), owner_id: owner } })),
    onSuccess: (p) => {
      notifySuccess(`Project ${p.name} created.`);
      setName("");
      setOwner(null);
      setSelected(p.name);
      void client.invalidateQueries({ queryKey: authQueries.projects().queryKey });
      void client.invalidateQueries({ queryKey: authQueries.me().queryKey });
    },
  });
  return (
    <Card withBorder component="section" aria-labelledby="projects-title">
      <Title order={3} size="h4" mb="sm" id="projects-title">
        Projects and members
      </Title>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <Group align="flex-end" gap="sm" mb="sm">
          <TextInput label="New project" placeholder="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} />
          <Select
            label="Owner"
            placeholder="You"
            data={(users.data?.users ?? []).map((u) => ({ value: u.id, label: u.username }))}
            value={owner}
            onChange={setOwner}
            clearable
            searchable
            w={200}
          />
          <Button type="submit" loading={create.isPending} disabled={!name.trim()}>
            Create project
          </Button>
        </Group>
      </form>
      {create.isError && <ErrorAlert error={create.error} title="The project was not created" />}
      {projects.isPending && <Loading label="Loading projects" />}
      {projects.isError && <ErrorAlert error={projects.error} title="The projects could not be read" />}
      {projects.data && (
        <Select
          label="Project"
          placeholder="Choose a project to see its members"
          data={projects.data.projects.map((p) => p.name)}
          value={selected}
          onChange={setSelected}
          searchable
          mb="sm"
          maw={320}
        />
      )}
      {selected && users.data && <Members project={selected} users={users.data.users} />}
      {users.isError && <ErrorAlert error={users.error} title="The users could not be read" />}
    </Card>
  );
}

export function AdminPage() {
  const me = useMe();
  if (me.isPending) return <Loading />;
  if (me.isError) return <ErrorAlert error={me.error} title="Your account could not be read" />;
  if (!me.data.is_admin) {
    return (
      <>
        <PageHeader title="Administration" />
        <Alert color="yellow" role="alert">
          This page is for platform administrators. Project owners manage their members with <code>ryax project</code>.
        </Alert>
      </>
    );
  }
  return (
    <>
      <PageHeader title="Administration" subtitle="Users, projects, members and roles" />
      <SimpleGrid cols={{ base: 1, xl: 2 }}>
        <Users />
        <Projects />
      </SimpleGrid>
      <Text size="xs" c="dimmed" mt="md">
        Roles: an owner manages the project&apos;s members; a developer changes repositories, workflows and runs; a viewer reads.
      </Text>
    </>
  );
}
