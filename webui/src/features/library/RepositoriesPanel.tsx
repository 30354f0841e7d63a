import {
  Anchor,
  Button,
  Code,
  Group,
  Menu,
  Modal,
  PasswordInput,
  SegmentedControl,
  Stack,
  Table,
  Text,
  Textarea,
  TextInput,
  VisuallyHidden,
} from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { IconChevronDown, IconGitBranch, IconPlus, IconScan } from "@tabler/icons-react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type SubmitEvent } from "react";

import { api, unwrap } from "../../api/client";
import { repositoryQueries } from "../../api/queries";
import type { Repository, RepositoryIn, Scan } from "../../api/types";
import { ConfirmButton } from "../../components/ConfirmButton";
import { ErrorAlert } from "../../components/ErrorAlert";
import { notifyError, notifySuccess } from "../../components/notify";
import { Empty, Loading } from "../../components/Page";
import { RelativeTime } from "../../components/Time";
import { ScanReport } from "./ScanReport";

type Auth = "none" | "password" | "ssh";

function AddRepository({ project, onAdded }: { project: string; onAdded: (r: Repository) => void }) {
  const [opened, { open, close }] = useDisclosure(false);
  const [form, setForm] = useState({ name: "", url: "", branch: "", username: "", password: "", ssh_key: "" });
  const [auth, setAuth] = useState<Auth>("none");
  const set = (key: keyof typeof form) => (e: { currentTarget: { value: string } }) => {
    const value = e.currentTarget.value;
    setForm((f) => ({ ...f, [key]: value }));
  };
  const add = useMutation({
    mutationFn: () => {
      const body: RepositoryIn = {
        name: form.name.trim(),
        url: form.url.trim(),
        branch: form.branch.trim() || null,
        username: auth !== "none" ? form.username || null : null,
        password: auth === "password" ? form.password || null : null,
        ssh_key: auth === "ssh" ? form.ssh_key || null : null,
      };
      return unwrap(api.repository.POST("/repository/v1/projects/{project}/repositories", { params: { path: { project } }, body }));
    },
    onSuccess: (r) => {
      close();
      setForm({ name: "", url: "", branch: "", username: "", password: "", ssh_key: "" });
      setAuth("none");
      onAdded(r);
    },
  });
  const submit = (e: SubmitEvent) => {
    e.preventDefault();
    add.mutate();
  };
  return (
    <>
      <Button leftSection={<IconPlus size={16} aria-hidden />} onClick={open}>
        Add repository
      </Button>
      <Modal opened={opened} onClose={close} title="Add a git repository" centered size="lg">
        <form onSubmit={submit}>
          <Stack gap="sm">
            {add.isError && <ErrorAlert error={add.error} title="The repository was not added" />}
            <TextInput label="Name" required data-autofocus value={form.name} onChange={set("name")} />
            <TextInput
              label="URL"
              description="https://…, ssh://… or git@host:path (never http, never a password in the URL)"
              required
              value={form.url}
              onChange={set("url")}
            />
            <TextInput label="Branch" description="Empty: the repository's default branch" leftSection={<IconGitBranch size={14} aria-hidden />} value={form.branch} onChange={set("branch")} />
            <div>
              <Text size="sm" fw={500} mb={4} id="auth-label">
                Credentials
              </Text>
              <SegmentedControl
                aria-labelledby="auth-label"
                value={auth}
                onChange={setAuth}
                data={[
                  { value: "none", label: "None (public)" },
                  { value: "password", label: "Username and password / token" },
                  { value: "ssh", label: "SSH key" },
                ]}
              />
              <Text size="xs" c="dimmed" mt={4}>
                Stored encrypted, never shown again, never put in a URL.
              </Text>
            </div>
            {auth !== "none" && (
              <TextInput label="Username" value={form.username} onChange={set("username")} autoComplete="off" placeholder={auth === "ssh" ? "git" : undefined} />
            )}
            {auth === "password" && <PasswordInput label="Password or access token" required value={form.password} onChange={set("password")} autoComplete="new-password" />}
            {auth === "ssh" && (
              <Textarea
                label="SSH private key"
                required
                autosize
                minRows={4}
                value={form.ssh_key}
                onChange={set("ssh_key")}
                styles={{ input: { fontFamily: "var(--mantine-font-family-monospace)" } }}
                placeholder="-----BEGIN OPENSSH PRIVATE KEY-----"
              />
            )}
            <Group justify="flex-end">
              <Button variant="default" onClick={close}>
                Cancel
              </Button>
              <Button type="submit" loading={add.isPending} disabled={!form.name.trim() || !form.url.trim()}>
                Add
              </Button>
            </Group>
          </Stack>
        </form>
      </Modal>
    </>
  );
}

interface ScanOptions {
  force?: boolean;
  build?: boolean;
}

export function RepositoriesPanel({ project, canWrite }: { project: string; canWrite: boolean }) {
  const client = useQueryClient();
  const repositories = useQuery(repositoryQueries.repositories(project));
  const [shownScanId, setShownScanId] = useState<string | null>(null);
  const [justScanned, setJustScanned] = useState<Scan | null>(null);
  const shownScan = useQuery({ ...repositoryQueries.scan(project, shownScanId ?? ""), enabled: !!shownScanId && justScanned?.id !== shownScanId });

  const scan = useMutation({
    mutationFn: ({ repo, options }: { repo: Repository; options: ScanOptions }) =>
      unwrap(
        api.repository.POST("/repository/v1/projects/{project}/repositories/{repository_id}/scan", {
          params: { path: { project, repository_id: repo.id }, query: { force: options.force ?? false, build: options.build ?? false } },
        }),
      ),
    onSuccess: (report) => {
      setJustScanned(report);
      setShownScanId(report.id);
      void client.invalidateQueries({ queryKey: ["repository", project] });
      notifySuccess(`Scan of ${report.name}: ${report.counts.found} action(s) found, ${report.counts.errors} error(s).`);
    },
  });
  const remove = useMutation({
    mutationFn: (repo: Repository) =>
      unwrap(api.repository.DELETE("/repository/v1/projects/{project}/repositories/{repository_id}", { params: { path: { project, repository_id: repo.id } } })),
    onSuccess: () => {
      notifySuccess("The repository was removed (its recorded action versions stay).");
      void client.invalidateQueries({ queryKey: repositoryQueries.repositories(project).queryKey });
    },
    onError: (e) => notifyError("The repository was not removed", e),
  });

  const report = justScanned && justScanned.id === shownScanId ? justScanned : shownScan.data;
  const scanning = scan.isPending ? scan.variables.repo.id : null;

  return (
    <Stack>
      <Group justify="space-between">
        <Text size="sm" c="dimmed">
          Git repositories holding actions (folders with a <Code>ryax_metadata.yaml</Code>). A scan fetches the branch and checks every action at once.
        </Text>
        {canWrite && (
          <AddRepository
            project={project}
            onAdded={(r) => {
              notifySuccess(`Repository ${r.name} added: scan it to find its actions.`);
              void client.invalidateQueries({ queryKey: repositoryQueries.repositories(project).queryKey });
            }}
          />
        )}
      </Group>
      {repositories.isPending && <Loading label="Loading repositories" />}
      {repositories.isError && <ErrorAlert error={repositories.error} title="The repositories could not be read" />}
      {repositories.data &&
        (repositories.data.repositories.length === 0 ? (
          <Empty>No repository yet.</Empty>
        ) : (
          <Table.ScrollContainer minWidth={720}>
            <Table aria-label="Repositories" highlightOnHover>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>URL</Table.Th>
                  <Table.Th>Branch</Table.Th>
                  <Table.Th>Credentials</Table.Th>
                  <Table.Th>Last scan</Table.Th>
                  <Table.Th>
                    <VisuallyHidden>Actions</VisuallyHidden>
                  </Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {repositories.data.repositories.map((r) => (
                  <Table.Tr key={r.id}>
                    <Table.Td fw={600}>{r.name}</Table.Td>
                    <Table.Td>
                      <Text size="sm" ff="monospace" style={{ wordBreak: "break-all" }}>
                        {r.url}
                      </Text>
                    </Table.Td>
                    <Table.Td>{r.branch ?? r.last_scan?.branch ?? "default"}</Table.Td>
                    <Table.Td>{r.auth}</Table.Td>
                    <Table.Td>
                      {r.last_scan ? (
                        <Anchor component="button" type="button" size="sm" onClick={() => setShownScanId(r.last_scan?.id ?? null)}>
                          <RelativeTime iso={r.last_scan.finished_at} />
                          {r.last_scan.commit ? ` · ${r.last_scan.commit.slice(0, 8)}` : ""}
                        </Anchor>
                      ) : (
                        <Text size="sm" c="dimmed">
                          never
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>
                      {canWrite && (
                        <Group gap={4} wrap="nowrap" justify="flex-end">
                          <Button.Group>
                            <Button
                              size="compact-sm"
                              variant="light"
                              leftSection={<IconScan size={14} aria-hidden />}
                              loading={scanning === r.id}
                              disabled={scanning !== null}
                              onClick={() => scan.mutate({ repo: r, options: {} })}
                              aria-label={`Scan ${r.name}`}
                            >
                              Scan
                            </Button>
                            <Menu position="bottom-end" withinPortal>
                              <Menu.Target>
                                <Button size="compact-sm" variant="light" disabled={scanning !== null} aria-label={`More scan options for ${r.name}`}>
                                  <IconChevronDown size={14} aria-hidden />
                                </Button>
                              </Menu.Target>
                              <Menu.Dropdown>
                                <Menu.Item onClick={() => scan.mutate({ repo: r, options: { build: true } })}>Scan and build what is new</Menu.Item>
                                <Menu.Item onClick={() => scan.mutate({ repo: r, options: { force: true } })}>
                                  Force: replace changed sources under the same version
                                </Menu.Item>
                              </Menu.Dropdown>
                            </Menu>
                          </Button.Group>
                          <ConfirmButton
                            size="compact-sm"
                            variant="subtle"
                            title={`Remove the repository ${r.name}?`}
                            message="The action versions it gave stay in the library."
                            confirmLabel="Remove"
                            onConfirm={() => remove.mutate(r)}
                            aria-label={`Remove ${r.name}`}
                          >
                            Remove
                          </ConfirmButton>
                        </Group>
                      )}
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        ))}
      {scan.isPending && <Loading label={`Fetching and scanning ${scan.variables.repo.name}`} />}
      {scan.isError && <ErrorAlert error={scan.error} title="The scan failed" />}
      {shownScanId && shownScan.isPending && !report && <Loading label="Loading the scan" />}
      {shownScan.isError && <ErrorAlert error={shownScan.error} title="The scan report could not be read" />}
      {report && <ScanReport scan={report} />}
    </Stack>
  );
}
