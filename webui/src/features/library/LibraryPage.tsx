import { Tabs } from "@mantine/core";
import { useSearchParams } from "react-router";

import { PanelBoundary } from "../../components/Boundaries";
import { PageHeader } from "../../components/Page";
import { useProject } from "../auth/project";
import { CataloguePanel } from "./CataloguePanel";
import { RepositoriesPanel } from "./RepositoriesPanel";
import { SourcesPanel } from "./SourcesPanel";

const TABS = ["repositories", "sources", "catalogue"] as const;
type Tab = (typeof TABS)[number];

export function LibraryPage() {
  const { name: project, canWrite } = useProject();
  const [params, setParams] = useSearchParams();
  const asked = params.get("tab");
  const tab: Tab = TABS.includes(asked as Tab) ? (asked as Tab) : "repositories";
  return (
    <>
      <PageHeader title="Library" subtitle="Repositories, action sources and their builds, and the catalogue of ready actions" />
      <Tabs value={tab} onChange={(v) => setParams(v ? { tab: v } : {}, { replace: true })}>
        <Tabs.List mb="md">
          <Tabs.Tab value="repositories">Repositories</Tabs.Tab>
          <Tabs.Tab value="sources">Action sources and builds</Tabs.Tab>
          <Tabs.Tab value="catalogue">Catalogue</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="repositories">
          <PanelBoundary>{tab === "repositories" && <RepositoriesPanel project={project} canWrite={canWrite} />}</PanelBoundary>
        </Tabs.Panel>
        <Tabs.Panel value="sources">
          <PanelBoundary>{tab === "sources" && <SourcesPanel project={project} canWrite={canWrite} />}</PanelBoundary>
        </Tabs.Panel>
        <Tabs.Panel value="catalogue">
          <PanelBoundary>{tab === "catalogue" && <CataloguePanel project={project} />}</PanelBoundary>
        </Tabs.Panel>
      </Tabs>
    </>
  );
}
