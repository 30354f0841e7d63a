import {
  ActionIcon,
  Anchor,
  AppShell,
  Burger,
  Group,
  Menu,
  NavLink,
  Select,
  Text,
  Tooltip,
  UnstyledButton,
  useComputedColorScheme,
  useMantineColorScheme,
  VisuallyHidden,
} from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import {
  IconApi,
  IconBooks,
  IconChevronDown,
  IconLayoutDashboard,
  IconLogout,
  IconMoon,
  IconPlayerPlay,
  IconServer2,
  IconShieldLock,
  IconSun,
  IconTopologyStar3,
  IconUser,
} from "@tabler/icons-react";
import { Suspense, type ReactNode } from "react";
import { Link, matchPath, Outlet, useLocation, useNavigate } from "react-router";

import { useSession } from "../../api/session";
import { PanelBoundary } from "../../components/Boundaries";
import { Loading } from "../../components/Page";
import { logout } from "../auth/logout";
import { lastProject, to, useMe } from "../auth/project";

function useCurrentProject(): string | null {
  const location = useLocation();
  const match = matchPath({ path: "/p/:project/*" }, location.pathname);
  return match?.params.project ?? null;
}

function ProjectSwitcher({ current }: { current: string | null }) {
  const me = useMe();
  const navigate = useNavigate();
  const projects = me.data?.projects ?? [];
  return (
    <Select
      aria-label="Project"
      placeholder={me.isPending ? "Loading projects…" : "Choose a project"}
      data={projects.map((p) => ({ value: p.name, label: p.role ? `${p.name} (${p.role})` : p.name }))}
      value={current && projects.some((p) => p.name === current) ? current : null}
      onChange={(value) => {
        if (value) void navigate(to.dashboard(value));
      }}
      searchable={projects.length > 8}
      allowDeselect={false}
      nothingFoundMessage="No project"
      w={{ base: 160, sm: 240 }}
      size="sm"
      comboboxProps={{ withinPortal: true }}
      error={me.isError ? "Projects could not be read" : undefined}
    />
  );
}

function ColorSchemeToggle() {
  const { setColorScheme } = useMantineColorScheme();
  const computed = useComputedColorScheme("light");
  const next = computed === "dark" ? "light" : "dark";
  return (
    <Tooltip label={`Switch to ${next} mode`}>
      <ActionIcon variant="subtle" color="gray" aria-label={`Switch to ${next} mode`} onClick={() => setColorScheme(next)}>
        {computed === "dark" ? <IconSun size={18} aria-hidden /> : <IconMoon size={18} aria-hidden />}
      </ActionIcon>
    </Tooltip>
  );
}

function UserMenu() {
  const session = useSession();
  const me = useMe();
  const navigate = useNavigate();
  const admin = me.data?.is_admin ?? session?.user.is_admin ?? false;
  return (
    <Menu position="bottom-end" withinPortal>
      <Menu.Target>
        <UnstyledButton aria-label={`Account menu of ${session?.user.username ?? ""}`}>
          <Group gap={4}>
            <IconUser size={18} aria-hidden />
            <Text size="sm" visibleFrom="sm">
              {session?.user.username}
            </Text>
            <IconChevronDown size={14} aria-hidden />
          </Group>
        </UnstyledButton>
      </Menu.Target>
      <Menu.Dropdown>
        <Menu.Item component={Link} to="/account" leftSection={<IconUser size={16} aria-hidden />}>
          Account and tokens
        </Menu.Item>
        {admin && (
          <Menu.Item component={Link} to="/admin" leftSection={<IconShieldLock size={16} aria-hidden />}>
            Administration
          </Menu.Item>
        )}
        <Menu.Divider />
        <Menu.Item
          color="red"
          leftSection={<IconLogout size={16} aria-hidden />}
          onClick={() => {
            void logout().then(() => navigate("/login", { replace: true }));
          }}
        >
          Log out
        </Menu.Item>
      </Menu.Dropdown>
    </Menu>
  );
}

interface NavItem {
  label: string;
  icon: ReactNode;
  href: (project: string) => string;
  /** Exact match for the dashboard; prefix for the others. */
  exact?: boolean;
}

const NAV: NavItem[] = [
  { label: "Dashboard", icon: <IconLayoutDashboard size={18} aria-hidden />, href: to.dashboard, exact: true },
  { label: "Library", icon: <IconBooks size={18} aria-hidden />, href: (p) => to.library(p) },
  { label: "Runs", icon: <IconPlayerPlay size={18} aria-hidden />, href: to.runs },
  { label: "Sites", icon: <IconServer2 size={18} aria-hidden />, href: to.sites },
  { label: "HTTP endpoints", icon: <IconApi size={18} aria-hidden />, href: to.endpoints },
  {
    label: "Studio editor",
    icon: <IconTopologyStar3 size={18} aria-hidden />,
    href: (p) => `/p/${encodeURIComponent(p)}/studio`,
  },
];

export function Shell() {
  const [opened, { toggle, close }] = useDisclosure();
  const location = useLocation();
  const current = useCurrentProject();
  const me = useMe();
  const navProject = current ?? lastProject() ?? me.data?.projects[0]?.name ?? null;
  const admin = me.data?.is_admin ?? false;

  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 220, breakpoint: "sm", collapsed: { mobile: !opened } }}
      padding="md"
    >
      <Anchor href="#main" className="skip-link">
        Skip to content
      </Anchor>
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Toggle navigation" />
            <Anchor component={Link} to="/" fw={700} size="lg" underline="never" c="inherit">
              Ryax
            </Anchor>
            <ProjectSwitcher current={current} />
          </Group>
          <Group gap="sm" wrap="nowrap">
            <ColorSchemeToggle />
            <UserMenu />
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Main navigation">
        <nav aria-label="Project pages">
          {navProject ? (
            NAV.map((item) => {
              const href = item.href(navProject);
              const pathname = href.split("?")[0] ?? href;
              const active = item.exact
                ? location.pathname === pathname
                : location.pathname === pathname || location.pathname.startsWith(`${pathname}/`);
              return (
                <NavLink
                  key={item.label}
                  component={Link}
                  to={href}
                  label={item.label}
                  leftSection={item.icon}
                  active={active}
                  aria-current={active ? "page" : undefined}
                  onClick={close}
                />
              );
            })
          ) : (
            <Text size="sm" c="dimmed" p="xs">
              No project
            </Text>
          )}
        </nav>
        {admin && (
          <>
            <VisuallyHidden>Platform</VisuallyHidden>
            <NavLink
              mt="md"
              component={Link}
              to="/admin"
              label="Administration"
              leftSection={<IconShieldLock size={18} aria-hidden />}
              active={location.pathname.startsWith("/admin")}
              onClick={close}
            />
          </>
        )}
      </AppShell.Navbar>
      <AppShell.Main id="main" tabIndex={-1}>
        <PanelBoundary resetKeys={[location.pathname]}>
          <Suspense fallback={<Loading />}>
            <Outlet />
          </Suspense>
        </PanelBoundary>
      </AppShell.Main>
    </AppShell>
  );
}
