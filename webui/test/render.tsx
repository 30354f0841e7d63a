import { render } from "@testing-library/react";
import type { ReactElement } from "react";
import { createMemoryRouter, RouterProvider, type RouteObject } from "react-router";

import { startSession } from "../src/api/session";
import { Providers } from "../src/Providers";
import { createQueryClient } from "../src/queryClient";

export const ORIGIN = window.location.origin;

/** A fresh query client that does not retry (a test sees the first answer). */
export function testQueryClient() {
  const client = createQueryClient();
  client.setDefaultOptions({ queries: { retry: false, staleTime: 0, refetchOnWindowFocus: false }, mutations: { retry: false } });
  return client;
}

export function renderWithProviders(ui: ReactElement) {
  const client = testQueryClient();
  return { client, ...render(<Providers client={client}>{ui}</Providers>) };
}

export function renderRoutes(routes: RouteObject[], initialEntries: string[]) {
  const client = testQueryClient();
  const router = createMemoryRouter(routes, { initialEntries });
  return { client, router, ...render(<Providers client={client}><RouterProvider router={router} /></Providers>) };
}

export function logIn(token = "tok-1", user = { id: "u1", username: "alice", is_admin: false }) {
  startSession({ token, expiresAt: new Date(Date.now() + 3600_000).toISOString(), user });
}
