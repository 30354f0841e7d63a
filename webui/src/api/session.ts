/**
 * The login session: the access token in memory, mirrored in sessionStorage so a reload of the
 * tab keeps it (a new tab or a closed browser asks again). Nothing else is stored.
 */
import { useSyncExternalStore } from "react";

export interface SessionUser {
  id: string;
  username: string;
  is_admin: boolean;
}

export interface Session {
  token: string;
  /** ISO 8601, from the login answer. */
  expiresAt: string;
  user: SessionUser;
}

interface State {
  session: Session | null;
  /** Why the last session ended when it was not a logout (shown on the login page). */
  notice: string | null;
}

const STORAGE_KEY = "ryax.session";

function read(): Session | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const parsed = JSON.parse(raw) as Partial<Session>;
    if (
      typeof parsed.token !== "string" ||
      typeof parsed.expiresAt !== "string" ||
      typeof parsed.user?.username !== "string"
    ) {
      return null;
    }
    const session = parsed as Session;
    return isExpired(session) ? null : session;
  } catch {
    return null;
  }
}

function isExpired(session: Session, now = Date.now()): boolean {
  const at = Date.parse(session.expiresAt);
  return Number.isFinite(at) && at <= now;
}

let state: State = { session: read(), notice: null };
const listeners = new Set<() => void>();
let expiryTimer: ReturnType<typeof setTimeout> | undefined;

function set(next: State): void {
  state = next;
  try {
    if (next.session) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(next.session));
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // storage may be unavailable (private mode): the session then lives in memory only
  }
  scheduleExpiry();
  for (const listener of listeners) listener();
}

function scheduleExpiry(): void {
  clearTimeout(expiryTimer);
  const session = state.session;
  if (!session) return;
  const delay = Date.parse(session.expiresAt) - Date.now();
  if (!Number.isFinite(delay)) return;
  // setTimeout takes at most ~24.8 days; a longer session is checked again then.
  expiryTimer = setTimeout(
    () => {
      if (state.session && isExpired(state.session)) expire("Your session has expired: log in again.");
      else scheduleExpiry();
    },
    Math.min(Math.max(delay, 0), 2 ** 31 - 1),
  );
}
scheduleExpiry();

/** What to do when the session ends (clear cached data); set once by the app. */
let onEnd: () => void = () => undefined;
export function onSessionEnd(callback: () => void): void {
  onEnd = callback;
}

export function getToken(): string | null {
  return state.session?.token ?? null;
}

export function getSession(): Session | null {
  return state.session;
}

export function getNotice(): string | null {
  return state.notice;
}

export function startSession(session: Session): void {
  set({ session, notice: null });
}

/** Logout: forget the session (the caller has revoked the token). */
export function endSession(): void {
  set({ session: null, notice: null });
  onEnd();
}

/** The services refused the token (expired, revoked, user removed): back to the login page. */
export function expire(notice = "Your session has ended: log in again."): void {
  if (!state.session) return;
  set({ session: null, notice });
  onEnd();
}

export function clearNotice(): void {
  if (state.notice) set({ ...state, notice: null });
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function useSession(): Session | null {
  return useSyncExternalStore(subscribe, () => state.session);
}

export function useSessionNotice(): string | null {
  return useSyncExternalStore(subscribe, () => state.notice);
}

/** For tests: start from a known state. */
export function resetSessionForTests(session: Session | null = null): void {
  set({ session, notice: null });
}
