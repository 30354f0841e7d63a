import { PageHeader } from "../../components/Page";
import { useProject } from "../auth/project";
import { RunsTable } from "./RunsTable";

export function RunsPage() {
  const { name: project } = useProject();
  return (
    <>
      <PageHeader title="Runs" subtitle={`Every run of the workflows of ${project}, newest first`} />
      <RunsTable project={project} />
    </>
  );
}
