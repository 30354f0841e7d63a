import {
  Alert,
  Badge,
  Box,
  Button,
  Code,
  Drawer,
  FileButton,
  Group,
  Loader,
  Modal,
  ScrollArea,
  Stack,
  Text,
  Title,
  Tooltip,
} from "@mantine/core";
import { useHotkeys, useWindowEvent } from "@mantine/hooks";
import { notifications } from "@mantine/notifications";
import {
  IconAlertTriangle,
  IconCheck,
  IconDeviceFloppy,
  IconDownload,
  IconExternalLink,
  IconFileCode,
  IconArrowBackUp,
  IconArrowForwardUp,
  IconLayoutDistributeHorizontal,
  IconRocket,
  IconRocketOff,
  IconUpload,
} from "@tabler/icons-react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { Link, useBlocker, useParams } from "react-router";

import { api, unwrap } from "../../api/client";
import { downloadFile } from "../../api/download";
import { isDeploymentSettled, runnerQueries, studioQueries } from "../../api/queries";
import type { StudioDeployment, Workflow } from "../../api/types";
import { PanelBoundary } from "../../components/Boundaries";
import { ConfirmButton } from "../../components/ConfirmButton";
import { ErrorAlert } from "../../components/ErrorAlert";
import { notifyError, notifySuccess } from "../../components/notify";
import { Loading } from "../../components/Page";
import { StateBadge } from "../../components/StateBadge";
import { useDocumentTitle } from "../../lib/useDocumentTitle";
import { GRID_X, GRID_Y, layoutSteps, pixelsToGrid, type XY } from "../../graph/layout";
import { to, useProject } from "../auth/project";
import { catalogueIndex } from "../dashboard/workflowMeta";
import { EditorCanvas } from "./EditorCanvas";
import { EditorStore, type EditorSnapshot } from "./editorStore";
import { nodeSize, placeSteps, snappedGrid } from "./flow";
import { StepInspector, WorkflowInspector } from "./Inspector";
import { describeOp, indexProblems, newStepId, parentsOf, toDocument, type Catalogue, type EditOp } from "./model";
import { Palette } from "./Palette";
import { replaceWithYaml, sender } from "./send";

const DEPLOYED_LIKE = new Set(["requested", "deploying", "waiting_for_site", "deployed"]);

function SaveState({ snap }: { snap: EditorSnapshot }) {
  const { saveState, pending } = snap;
  if (saveState === "saving")
    return (
      <Badge color="blue" variant="light" leftSection={<Loader size={10} color="blue" />} aria-live="polite">
        Saving… ({pending})
      </Badge>
    );
  if (saveState === "unsaved")
    return (
      <Badge color="yellow" variant="light" aria-live="polite">
        Unsaved changes
      </Badge>
    );
  if (saveState === "failed")
    return (
      <Badge color="red" variant="filled" leftSection={<IconAlertTriangle size={12} aria-hidden />} aria-live="polite">
        Not saved
      </Badge>
    );
  return (
    <Badge color="green" variant="light" leftSection={<IconCheck size={12} aria-hidden />} aria-live="polite">
      All changes saved
    </Badge>
  );
}

function Deployment({
  project,
  workflow,
  deployment,
  canWrite,
  beforeDeploy,
}: {
  project: string;
  workflow: Workflow;
  deployment: StudioDeployment | null | undefined;
  canWrite: boolean;
  beforeDeploy: () => Promise<void>;
}) {
  const client = useQueryClient();
  const state = deployment?.state ?? "not_deployed";
  const refresh = () => {
    void client.invalidateQueries({ queryKey: ["studio", project] });
    void client.invalidateQueries({ queryKey: ["runner", project, "deployments"] });
  };
  const deploy = useMutation({
    mutationFn: async () => {
      await beforeDeploy();
      return unwrap(api.studio.POST("/studio/v1/projects/{project}/workflows/{workflow}/deploy", { params: { path: { project, workflow: workflow.id } } }));
    },
    onSuccess: () => {
      notifySuccess(`Deploying ${workflow.name}…`);
      refresh();
    },
    onError: (e) => notifyError("The workflow was not deployed", e),
  });
  const undeploy = useMutation({
    mutationFn: () => unwrap(api.studio.POST("/studio/v1/projects/{project}/workflows/{workflow}/undeploy", { params: { path: { project, workflow: workflow.id } } })),
    onSuccess: () => {
      notifySuccess(`Undeploying ${workflow.name}…`);
      refresh();
    },
    onError: (e) => notifyError("The workflow was not undeployed", e),
  });
  const deployedLike = DEPLOYED_LIKE.has(state);
  return (
    <Group gap={6} wrap="nowrap" role="region" aria-label="Deployment">
      <StateBadge state={state} />
      {!isDeploymentSettled(deployment?.state) && <Loader size={12} aria-label="Following the deployment" />}
      {deployment?.reason && (
        <Tooltip label={deployment.reason} multiline w={320}>
          <Text size="xs" c={state === "failed" ? "red" : "dimmed"} maw={220} truncate="end" aria-label={`Reason: ${deployment.reason}`}>
            {deployment.reason}
          </Text>
        </Tooltip>
      )}
      {canWrite &&
        (deployedLike ? (
          <ConfirmButton
            size="xs"
            variant="light"
            color="orange"
            leftSection={<IconRocketOff size={14} aria-hidden />}
            title={`Undeploy ${workflow.name}?`}
            message="Its trigger stops and runs going on are cancelled."
            confirmLabel="Undeploy"
            onConfirm={() => undeploy.mutate()}
            loading={undeploy.isPending}
            disabled={state === "undeploying"}
          >
            Undeploy
          </ConfirmButton>
        ) : (
          <Button
            size="xs"
            leftSection={<IconRocket size={14} aria-hidden />}
            onClick={() => deploy.mutate()}
            loading={deploy.isPending}
            title={!workflow.valid ? "The workflow has problems: deploying lists them" : undefined}
          >
            Deploy
          </Button>
        ))}
    </Group>
  );
}

function YamlPreview({ opened, onClose, text }: { opened: boolean; onClose: () => void; text: string | null }) {
  return (
    <Drawer opened={opened} onClose={onClose} position="right" size="lg" title="The workflow as YAML (what Export gives, without display names and settings)">
      {text === null ? <Loading label="Writing the YAML" /> : <Code block>{text}</Code>}
    </Drawer>
  );
}

function Editor({ project, initial, canWrite, catalogue }: { project: string; initial: Workflow; canWrite: boolean; catalogue: Catalogue }) {
  const client = useQueryClient();
  const [store] = useState(() => new EditorStore(initial, sender(project, initial.id)));
  const snap = useSyncExternalStore(store.subscribe, store.getSnapshot);
  const { doc, workflow } = snap;
  const [selectedId, setSelectedId] = useState<string | null>(null);
  const selected = selectedId ? doc.steps.find((s) => s.id === selectedId) : undefined;
  useDocumentTitle(`Edit ${doc.name}`);

  // The page's polling brings the deployment's state and edits made elsewhere.
  const polled = useQuery(studioQueries.workflow(project, initial.id));
  useEffect(() => {
    if (polled.data) store.receive(polled.data);
  }, [polled.data, store]);
  useEffect(() => {
    client.setQueryData(studioQueries.workflow(project, initial.id).queryKey, workflow);
  }, [client, project, initial.id, workflow]);

  const secrets = useQuery(studioQueries.secrets(project));
  const sites = useQuery(runnerQueries.sites(project));
  const secretNames = useMemo(() => (secrets.data?.secrets ?? []).map((s) => s.name), [secrets.data]);
  const problems = useMemo(() => indexProblems(workflow.problems), [workflow.problems]);
  const placed = useMemo(() => placeSteps(doc, catalogue), [doc, catalogue]);

  const latest = useRef({ doc, placed, selectedId });
  useEffect(() => {
    latest.current = { doc, placed, selectedId };
  });

  const edit = useCallback(
    (ops: EditOp[]) => {
      if (!canWrite || ops.length === 0) return;
      const { doc: d, placed: p } = latest.current;
      // The first edit of a workflow laid out automatically saves that layout with it.
      if (p.source === "auto" && d.steps.length > 0) {
        const moves = d.steps.map((s) => ({ id: s.id, position: pixelsToGrid(p.positions.get(s.id) ?? { x: 0, y: 0 }) }));
        store.edit({ type: "moveSteps", moves }, ...ops);
      } else {
        store.edit(...ops);
      }
    },
    [canWrite, store],
  );
  const refuse = useCallback((reason: string) => {
    notifications.show({ color: "orange", title: "Not connected", message: reason, autoClose: 6000 });
  }, []);
  const setDirty = useCallback((key: string, dirty: boolean) => store.setDirty(key, dirty), [store]);

  const addAction = useCallback(
    (key: string, at?: XY) => {
      const action = catalogue.get(key);
      if (!action) {
        refuse(`${key} is not in the project's store`);
        return;
      }
      const { doc: d, placed: p, selectedId: sel } = latest.current;
      let position = at;
      if (!position) {
        // beside the selected step, else after the rightmost one (a trigger: before the leftmost)
        const all = [...p.positions.values()];
        const from = sel ? p.positions.get(sel) : undefined;
        const px: XY = from
          ? { x: from.x + GRID_X, y: from.y }
          : all.length === 0
            ? { x: 0, y: 0 }
            : action.kind === "trigger"
              ? { x: Math.min(...all.map((q) => q.x)) - GRID_X, y: 0 }
              : { x: Math.max(...all.map((q) => q.x)) + GRID_X, y: 0 };
        while (all.some((q) => Math.abs(q.x - px.x) < GRID_X / 2 && Math.abs(q.y - px.y) < GRID_Y / 2)) px.y += GRID_Y;
        position = snappedGrid(px);
      }
      const id = newStepId(d, action.action_id);
      edit([{ type: "addStep", id, actionId: action.action_id, version: action.version, position, trigger: action.kind === "trigger" }]);
      setSelectedId(id);
    },
    [catalogue, edit, refuse],
  );

  const save = useCallback(async () => {
    // a field being typed in commits on blur
    if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
    await new Promise((r) => setTimeout(r, 0));
    await store.flush();
  }, [store]);
  useHotkeys([["mod+S", () => void save()]], []);
  // In a text field, the field's own undo (the hotkeys leave inputs alone).
  const undo = useCallback(() => canWrite && store.undo(), [canWrite, store]);
  const redo = useCallback(() => canWrite && store.redo(), [canWrite, store]);
  useHotkeys(
    [
      ["mod+Z", undo],
      ["mod+shift+Z", redo],
      ["mod+Y", redo],
    ],
    [],
  );

  const busy = snap.saveState !== "saved" && snap.saveState !== "failed";
  const blocker = useBlocker(({ currentLocation, nextLocation }) => busy && currentLocation.pathname !== nextLocation.pathname);
  useWindowEvent("beforeunload", (e) => {
    if (busy) e.preventDefault();
  });

  const [importing, setImporting] = useState<{ name: string; text: string } | null>(null);
  const replace = useMutation({
    mutationFn: async (text: string) => {
      await store.flush();
      return replaceWithYaml(project, initial.id, text);
    },
    onSuccess: (w) => {
      store.receive(w, { force: true });
      setImporting(null);
      setSelectedId(null);
      notifySuccess(`Imported: ${w.steps.length} step(s)${w.valid ? "" : `, ${w.problems.length} problem(s) to fix`}.`);
    },
  });

  const [yaml, setYaml] = useState<{ opened: boolean; text: string | null }>({ opened: false, text: null });
  const showYaml = () => {
    setYaml({ opened: true, text: null });
    void import("yaml").then(({ stringify }) => setYaml({ opened: true, text: stringify(toDocument(latest.current.doc), { lineWidth: 100 }) }));
  };
  const autoLayout = () => {
    const parents = parentsOf(doc);
    const { positions } = layoutSteps(
      doc.steps.map((s) => ({ id: s.id, parents: parents.get(s.id) ?? [] })),
      (id) => {
        const s = doc.steps.find((x) => x.id === id);
        return s ? nodeSize(s, catalogue) : { width: 270, height: 100 };
      },
    );
    store.edit({ type: "moveSteps", moves: doc.steps.map((s) => ({ id: s.id, position: snappedGrid(positions.get(s.id) ?? { x: 0, y: 0 }) })) });
  };

  const editable = canWrite;
  return (
    <Stack gap="xs" h="calc(100dvh - 56px - 2 * var(--mantine-spacing-md))">
      <Group justify="space-between" wrap="wrap" gap="xs">
        <Group gap="sm" wrap="nowrap" style={{ minWidth: 0 }}>
          <Title order={2} size="h3" style={{ wordBreak: "break-word" }}>
            {doc.name}
          </Title>
          <SaveState snap={snap} />
          {!workflow.valid && (
            <Badge color="red" variant="outline" tt="none">
              {workflow.problems.length} problem{workflow.problems.length === 1 ? "" : "s"}
            </Badge>
          )}
        </Group>
        <Group gap={6} wrap="wrap">
          <Deployment project={project} workflow={workflow} deployment={polled.data?.deployment ?? workflow.deployment} canWrite={canWrite} beforeDeploy={save} />
          {editable && (
            <Button.Group>
              <Button size="xs" variant="default" aria-label="Undo" title="Undo (Ctrl+Z)" onClick={undo} disabled={!snap.canUndo}>
                <IconArrowBackUp size={14} aria-hidden />
              </Button>
              <Button size="xs" variant="default" aria-label="Redo" title="Redo (Ctrl+Shift+Z)" onClick={redo} disabled={!snap.canRedo}>
                <IconArrowForwardUp size={14} aria-hidden />
              </Button>
            </Button.Group>
          )}
          {editable && (
            <Button size="xs" variant="default" leftSection={<IconDeviceFloppy size={14} aria-hidden />} onClick={() => void save()} disabled={snap.saveState === "saved"}>
              Save
            </Button>
          )}
          {editable && (
            <FileButton
              accept=".yaml,.yml,application/yaml,text/yaml"
              onChange={(file) => {
                if (file) void file.text().then((text) => setImporting({ name: file.name, text }));
              }}
            >
              {(props) => (
                <Button size="xs" variant="default" leftSection={<IconUpload size={14} aria-hidden />} {...props}>
                  Import YAML
                </Button>
              )}
            </FileButton>
          )}
          <Button
            size="xs"
            variant="default"
            leftSection={<IconDownload size={14} aria-hidden />}
            onClick={() =>
              void save()
                .then(() => downloadFile(`/studio/v1/projects/${encodeURIComponent(project)}/workflows/${encodeURIComponent(initial.id)}/export`, `${doc.name}.yaml`))
                .catch((e: unknown) => notifyError("The YAML could not be exported", e))
            }
          >
            Export YAML
          </Button>
          <Button size="xs" variant="subtle" leftSection={<IconFileCode size={14} aria-hidden />} onClick={showYaml}>
            YAML
          </Button>
          {editable && (
            <Button size="xs" variant="subtle" leftSection={<IconLayoutDistributeHorizontal size={14} aria-hidden />} onClick={autoLayout} disabled={doc.steps.length === 0}>
              Arrange
            </Button>
          )}
          <Button size="xs" variant="subtle" component={Link} to={to.workflow(project, initial.id)} leftSection={<IconExternalLink size={14} aria-hidden />}>
            Workflow page
          </Button>
        </Group>
      </Group>
      {snap.error !== null && (
        <Alert color="red" variant="light" withCloseButton onClose={() => store.dismissError()} closeButtonLabel="Dismiss" p="xs">
          <ErrorAlert error={snap.error} title={`The studio refused: ${snap.failed ? describeOp(snap.failed) : "an edit"} (the editor shows what it kept)`} />
        </Alert>
      )}
      <Group gap="xs" align="stretch" wrap="nowrap" style={{ flex: 1, minHeight: 0 }}>
        <Box w={230} style={{ flexShrink: 0 }}>
          <Palette project={project} actions={[...catalogue.values()]} editable={editable} onAdd={(key) => addAction(key)} />
        </Box>
        <Box style={{ flex: 1, minWidth: 0, border: "1px solid var(--mantine-color-default-border)", borderRadius: 8 }}>
          <PanelBoundary resetKeys={[doc]}>
            <EditorCanvas
              doc={doc}
              catalogue={catalogue}
              problems={problems}
              positions={placed.positions}
              selectedId={selectedId}
              onSelect={setSelectedId}
              editable={editable}
              onEdit={edit}
              onRefuse={refuse}
              onDropAction={(key, at) => addAction(key, at)}
            />
          </PanelBoundary>
        </Box>
        <ScrollArea w={340} style={{ flexShrink: 0 }} type="auto" offsetScrollbars>
          <Box pr="xs">
            {selected ? (
              <StepInspector
                key={selected.id}
                step={selected}
                project={project}
                doc={doc}
                catalogue={catalogue}
                problems={problems}
                secrets={secretNames}
                sites={sites.data?.sites ?? []}
                editable={editable}
                onEdit={edit}
                onRefuse={refuse}
                setDirty={setDirty}
                onSelect={setSelectedId}
              />
            ) : (
              <WorkflowInspector
                project={project}
                doc={doc}
                catalogue={catalogue}
                problems={problems}
                allProblems={workflow.problems}
                secrets={secretNames}
                sites={sites.data?.sites ?? []}
                editable={editable}
                onEdit={edit}
                onRefuse={refuse}
                setDirty={setDirty}
                onSelect={setSelectedId}
              />
            )}
          </Box>
        </ScrollArea>
      </Group>
      <Modal opened={importing !== null} onClose={() => setImporting(null)} title="Import a YAML definition" centered>
        <Stack>
          <Text size="sm">
            Replace the steps, links, values and results of <b>{doc.name}</b> with those of <Code>{importing?.name}</Code>? Display names and
            settings are not in the YAML format.
          </Text>
          {replace.isError && <ErrorAlert error={replace.error} title="The document was not imported" />}
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setImporting(null)}>
              Cancel
            </Button>
            <Button loading={replace.isPending} onClick={() => importing && replace.mutate(importing.text)}>
              Replace
            </Button>
          </Group>
        </Stack>
      </Modal>
      <Modal opened={blocker.state === "blocked"} onClose={() => blocker.reset?.()} title="Leave the editor?" centered>
        <Stack>
          <Text size="sm">{snap.pending > 0 ? "Edits are still being saved." : "A field holds a change that is not saved yet."}</Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => blocker.reset?.()}>
              Stay
            </Button>
            <Button color="red" onClick={() => blocker.proceed?.()}>
              Leave anyway
            </Button>
          </Group>
        </Stack>
      </Modal>
      <YamlPreview opened={yaml.opened} onClose={() => setYaml({ opened: false, text: null })} text={yaml.text} />
    </Stack>
  );
}

/** The studio editor of one workflow (`/p/:project/workflows/:id/edit`). */
export function EditorPage() {
  const { name: project, canWrite } = useProject();
  const { workflowId = "" } = useParams();
  const workflow = useQuery({ ...studioQueries.workflow(project, workflowId), refetchInterval: false });
  const catalogue = useQuery(studioQueries.catalogue(project));
  const index = useMemo(() => catalogueIndex(catalogue.data?.actions ?? []), [catalogue.data]);
  const [initial, setInitial] = useState<Workflow | null>(null);
  if (workflow.data && (!initial || (initial.id !== workflow.data.id && workflow.data.id === workflowId))) setInitial(workflow.data);
  if (workflow.isError) return <ErrorAlert error={workflow.error} title="The workflow could not be read" />;
  if (catalogue.isError) return <ErrorAlert error={catalogue.error} title="The action store could not be read" />;
  if (!initial || catalogue.isPending) return <Loading label="Opening the editor" />;
  return <Editor key={initial.id} project={project} initial={initial} canWrite={canWrite} catalogue={index} />;
}
