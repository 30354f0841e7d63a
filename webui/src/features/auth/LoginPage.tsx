import { Alert, Button, Center, Paper, PasswordInput, Stack, Text, TextInput, Title } from "@mantine/core";
import { useMutation } from "@tanstack/react-query";
import { useState, type SubmitEvent } from "react";
import { Navigate, useLocation, useNavigate } from "react-router";

import { api, unwrap } from "../../api/client";
import { clearNotice, startSession, useSession, useSessionNotice } from "../../api/session";
import { ErrorAlert } from "../../components/ErrorAlert";
import { useDocumentTitle } from "../../lib/useDocumentTitle";

interface Credentials {
  username: string;
  password: string;
}

/** Where to go after the login: the page the user was sent away from, never another site. */
function nextPath(state: unknown): string {
  const from = (state as { from?: unknown } | null)?.from;
  return typeof from === "string" && from.startsWith("/") && !from.startsWith("//") && !from.startsWith("/login")
    ? from
    : "/";
}

export function LoginPage() {
  useDocumentTitle("Log in");
  const session = useSession();
  const notice = useSessionNotice();
  const location = useLocation();
  const navigate = useNavigate();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const next = nextPath(location.state);

  const login = useMutation({
    mutationFn: (body: Credentials) => unwrap(api.authorization.POST("/authorization/v1/login", { body })),
    onSuccess: (answer) => {
      startSession({
        token: answer.access_token,
        expiresAt: answer.expires_at,
        user: { id: answer.user.id, username: answer.user.username, is_admin: answer.user.is_admin },
      });
      void navigate(next, { replace: true });
    },
  });

  if (session && !login.isPending) return <Navigate to={next} replace />;

  const submit = (event: SubmitEvent) => {
    event.preventDefault();
    clearNotice();
    login.mutate({ username: username.trim(), password });
  };

  return (
    <Center mih="100vh" p="md" component="main">
      <Paper withBorder shadow="sm" p="xl" radius="md" w="100%" maw={400}>
        <form onSubmit={submit} aria-labelledby="login-title" noValidate>
          <Stack>
            <div>
              <Title order={1} size="h2" id="login-title">
                Ryax
              </Title>
              <Text c="dimmed" size="sm">
                Log in to your workflow platform
              </Text>
            </div>
            {notice && (
              <Alert color="yellow" variant="light" role="status">
                {notice}
              </Alert>
            )}
            {login.isError && <ErrorAlert error={login.error} title="Login failed" />}
            <TextInput
              label="Username"
              name="username"
              autoComplete="username"
              required
              value={username}
              onChange={(e) => setUsername(e.currentTarget.value)}
            />
            <PasswordInput
              label="Password"
              name="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.currentTarget.value)}
            />
            <Button type="submit" loading={login.isPending} disabled={!username.trim() || !password}>
              Log in
            </Button>
          </Stack>
        </form>
      </Paper>
    </Center>
  );
}
