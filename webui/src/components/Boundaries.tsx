import { Button, Container, Group, Stack, Text, Title } from "@mantine/core";
import type { ReactNode } from "react";
import { ErrorBoundary, type FallbackProps } from "react-error-boundary";
import { isRouteErrorResponse, Link, useRouteError } from "react-router";

import { ErrorAlert } from "./ErrorAlert";

function PanelFallback({ error, resetErrorBoundary }: FallbackProps) {
  return (
    <Stack gap="xs">
      <ErrorAlert error={error} title="This part of the page failed" />
      <Group>
        <Button size="xs" variant="light" onClick={resetErrorBoundary}>
          Try again
        </Button>
      </Group>
    </Stack>
  );
}

/** Keeps a failing panel (a graph, a log view) from blanking the whole page. */
export function PanelBoundary({ children, resetKeys }: { children: ReactNode; resetKeys?: unknown[] }) {
  return (
    <ErrorBoundary FallbackComponent={PanelFallback} resetKeys={resetKeys}>
      {children}
    </ErrorBoundary>
  );
}

/** A route that failed to load or render (the router's errorElement). */
export function RouteError() {
  const error = useRouteError();
  if (isRouteErrorResponse(error) && error.status === 404) return <NotFound />;
  const chunk = error instanceof Error && /dynamically imported module|Failed to fetch|Importing a module/i.test(error.message);
  return (
    <Container size="sm" py="xl">
      <Stack>
        <Title order={2}>This page failed</Title>
        <ErrorAlert
          error={chunk ? new Error("A part of the UI could not be loaded: the platform may have been updated. Reload the page.") : error}
          title={chunk ? "Could not load this page" : "Unexpected error"}
        />
        <Group>
          <Button onClick={() => window.location.reload()}>Reload</Button>
          <Button component={Link} to="/" variant="light">
            Home
          </Button>
        </Group>
      </Stack>
    </Container>
  );
}

export function NotFound() {
  return (
    <Container size="sm" py="xl">
      <Stack>
        <Title order={2}>Page not found</Title>
        <Text c="dimmed">There is nothing at this address.</Text>
        <Group>
          <Button component={Link} to="/">
            Home
          </Button>
        </Group>
      </Stack>
    </Container>
  );
}
