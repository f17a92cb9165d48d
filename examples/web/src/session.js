// The signed-in session: tokens kept in localStorage, refreshed before they expire or when the
// gateway says UNAUTHENTICATED. Refresh tokens rotate and a reused one revokes its whole family,
// so only one refresh may run at a time: one per page (a shared promise) and one per browser
// (a Web Lock, since every tab of the app reads the same storage).
import { GRAPHQL_URL } from "./config.js";
import { REFRESH_TOKEN } from "./operations.js";

const STORAGE_KEY = "dockyard.session";
// Refresh this long before the access token expires, so a request never carries a stale one.
const REFRESH_MARGIN_MS = 60_000;

const listeners = new Set();
let session = read();
let refreshing = null;
let refreshTimer = null;

/** Raised when the session cannot be refreshed: the user has to sign in again. */
export class SessionEnded extends Error {}

function read() {
  try {
    return JSON.parse(localStorage.getItem(STORAGE_KEY));
  } catch {
    return null;
  }
}

function replace(next) {
  session = next;
  if (next) localStorage.setItem(STORAGE_KEY, JSON.stringify(next));
  else localStorage.removeItem(STORAGE_KEY);
  scheduleRefresh();
  listeners.forEach((listener) => listener(session));
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!session) return;
  const due = session.expiresAt - REFRESH_MARGIN_MS - Date.now();
  // Refreshing ahead keeps subscriptions alive: the gateway closes a socket (4401) once the
  // token it was opened with expires, and apollo.js reopens it whenever the token changes.
  refreshTimer = setTimeout(() => refreshSession().catch(() => {}), Math.max(due, 0));
}

/** The current session ({accessToken, refreshToken, expiresAt, user}) or null. */
export function currentSession() {
  return session;
}

/** Call `listener(session)` on every change; returns the function that stops it. */
export function onSessionChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Start a session from an AuthPayload (register, login or refreshToken). */
export function startSession({ accessToken, refreshToken, expiresIn, user }) {
  replace({ accessToken, refreshToken, expiresAt: Date.now() + expiresIn * 1000, user });
}

/** Forget the session (after logout, or when it cannot be refreshed). */
export function endSession() {
  replace(null);
}

/** The access token to send, refreshed first when it is about to expire; null when signed out. */
export async function accessToken() {
  if (session && session.expiresAt - Date.now() < REFRESH_MARGIN_MS) await refreshSession();
  return session?.accessToken ?? null;
}

/** Exchange the refresh token for a new pair, once however many callers ask at the same time. */
export function refreshSession() {
  if (!refreshing) {
    const exchangeOnce = navigator.locks
      ? navigator.locks.request("dockyard.refresh", exchange)
      : exchange();
    refreshing = exchangeOnce.finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function exchange() {
  const used = session?.refreshToken;
  if (!used) throw new SessionEnded("Not signed in.");
  // Another tab may have rotated it while this one waited for the lock: take its result.
  const stored = read();
  if (stored && stored.refreshToken !== used) {
    replace(stored);
    return;
  }
  const response = await fetch(GRAPHQL_URL, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: REFRESH_TOKEN, variables: { refreshToken: used } }),
  });
  const body = await response.json();
  const error = body.errors?.[0];
  if (error?.extensions?.code === "UNAUTHENTICATED") {
    endSession();
    throw new SessionEnded(error.message);
  }
  // Anything else (SERVICE_UNAVAILABLE, RATE_LIMITED, a network error) keeps the session:
  // the refresh token is still good, and the next request tries again.
  if (error) throw new Error(error.message);
  startSession(body.data.refreshToken);
}

// A sign-in, refresh or logout in another tab.
window.addEventListener("storage", (event) => {
  if (event.key !== STORAGE_KEY) return;
  session = read();
  scheduleRefresh();
  listeners.forEach((listener) => listener(session));
});

scheduleRefresh();
