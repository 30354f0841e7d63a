/**
 * Every page's address. Only the login page and the shell are in the first download; each page
 * is its own chunk, loaded when first visited (the graph pages bring @xyflow/react with them).
 */
import type { RouteObject } from "react-router";

import { NotFound, RouteError } from "./components/Boundaries";
import { LoginPage } from "./features/auth/LoginPage";
import { HomeRedirect, ProjectScope, RequireAuth } from "./features/auth/guards";
import { Shell } from "./features/layout/Shell";

export const routes: RouteObject[] = [
  { path: "/login", element: <LoginPage />, errorElement: <RouteError /> },
  {
    element: (
      <RequireAuth>
        <Shell />
      </RequireAuth>
    ),
    errorElement: <RouteError />,
    children: [
      {
        errorElement: <RouteError />,
        children: [
          { index: true, element: <HomeRedirect /> },
          {
            path: "account",
            lazy: () => import("./features/auth/AccountPage").then((m) => ({ Component: m.AccountPage })),
          },
          {
            path: "admin",
            lazy: () => import("./features/admin/AdminPage").then((m) => ({ Component: m.AdminPage })),
          },
          {
            path: "p/:project",
            element: <ProjectScope />,
            children: [
              {
                index: true,
                lazy: () => import("./features/dashboard/DashboardPage").then((m) => ({ Component: m.DashboardPage })),
              },
              {
                path: "library",
                lazy: () => import("./features/library/LibraryPage").then((m) => ({ Component: m.LibraryPage })),
              },
              {
                path: "library/builds/:buildId",
                lazy: () => import("./features/library/BuildPage").then((m) => ({ Component: m.BuildPage })),
              },
              {
                path: "workflows/:workflowId",
                lazy: () => import("./features/workflows/WorkflowPage").then((m) => ({ Component: m.WorkflowPage })),
              },
              {
                path: "workflows/:workflowId/edit",
                lazy: () => import("./features/studio/EditorPage").then((m) => ({ Component: m.EditorPage })),
              },
              {
                path: "studio",
                lazy: () => import("./features/studio/StudioHome").then((m) => ({ Component: m.StudioHome })),
              },
              {
                path: "runs",
                lazy: () => import("./features/runs/RunsPage").then((m) => ({ Component: m.RunsPage })),
              },
              {
                path: "runs/:runId",
                lazy: () => import("./features/runs/RunPage").then((m) => ({ Component: m.RunPage })),
              },
              {
                path: "sites",
                lazy: () => import("./features/sites/SitesPage").then((m) => ({ Component: m.SitesPage })),
              },
              {
                path: "endpoints",
                lazy: () => import("./features/endpoints/EndpointsPage").then((m) => ({ Component: m.EndpointsPage })),
              },
              { path: "*", element: <NotFound /> },
            ],
          },
          { path: "*", element: <NotFound /> },
        ],
      },
    ],
  },
];
