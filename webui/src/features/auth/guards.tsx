import { Alert, Button, Container, Stack, Text, Title } from "@mantine/core";
import { useEffect, useMemo, type ReactNode } from "react";
import { Link, Navigate, Outlet, useLocation, useParams } from "react-router";

import { useSession } from "../../api/session";
import { ErrorAlert } from "../../components/ErrorAlert";
import { Loading } from "../../components/Page";
import { lastProject, ProjectContext, rememberProject, to, useMe, type ProjectScopeValue } from "./project";

/** Pages behind the login: without a session, to the login page (and back after). */
export function RequireAuth({ children }: { children: ReactNode }) {
  const session = useSession();
  const location = useLocation();
  if (!session) {
    return <Navigate to="/login" replace state={{ from: location.pathname + location.search }} />;
  }
  return <>{children}</>;
}

/** `/`: the last project used, else the first. */
export function HomeRedirect() {
  const me = useMe();
  if (me.isPending) return <Loading label="Loading your projects" />;
  if (me.isError) return <ErrorAlert error={me.error} title="Your projects could not be read" />;
  const projects = me.data.projects;
  const last = lastProject();
  const chosen = projects.find((p) => p.name === last) ?? projects[0];
  if (chosen) return <Navigate to={to.dashboard(chosen.name)} replace />;
  return (
    <Container size="sm" py="xl">
      <Stack>
        <Title order={2}>No project yet</Title>
        <Text>
          You are not a member of any project. Ask a project owner or an administrator to add you
          {me.data.is_admin ? ", or create one in the administration page" : ""}.
        </Text>
        {me.data.is_admin && (
          <Button component={Link} to="/admin" w="fit-content">
            Administration
          </Button>
        )}
      </Stack>
    </Container>
  );
}

/** `/p/:project/...`: the project must be one of the caller's. */
export function ProjectScope() {
  const { project = "" } = useParams();
  const me = useMe();
  const value = useMemo<ProjectScopeValue | null>(() => {
    const found = me.data?.projects.find((p) => p.name === project || p.id === project);
    if (!found || !me.data) return null;
    const role = found.role ?? null;
    const admin = me.data.is_admin;
    return {
      name: found.name,
      id: found.id,
      role,
      canWrite: admin || role === "owner" || role === "developer",
      canManage: admin || role === "owner",
    };
  }, [me.data, project]);
  useEffect(() => {
    if (value) rememberProject(value.name);
  }, [value]);
  if (me.isPending) return <Loading label="Loading the project" />;
  if (me.isError) return <ErrorAlert error={me.error} title="Your projects could not be read" />;
  if (!value) {
    return (
      <Alert color="yellow" title="No such project" role="alert">
        You are not a member of a project named “{project}”.{" "}
        <Link to="/">Go to your projects</Link>.
      </Alert>
    );
  }
  return (
    <ProjectContext.Provider value={value}>
      <Outlet />
    </ProjectContext.Provider>
  );
}
