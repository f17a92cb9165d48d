// The Apollo Client: queries and mutations (uploads included) over HTTP, subscriptions over
// graphql-ws, the access token on both, and one refresh-and-retry on UNAUTHENTICATED.
import { ApolloClient, ApolloLink, CombinedGraphQLErrors, InMemoryCache } from "@apollo/client";
import { SetContextLink } from "@apollo/client/link/context";
import { ErrorLink } from "@apollo/client/link/error";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import UploadHttpLink from "apollo-upload-client/UploadHttpLink.mjs";
import { createClient } from "graphql-ws";
import { from, switchMap, throwError } from "rxjs";
import { GRAPHQL_URL, GRAPHQL_WS_URL } from "./config.js";
import { accessToken, currentSession, onSessionChange, refreshSession } from "./session.js";
import xhrFetch from "./xhrFetch.js";

const http = new UploadHttpLink({
  uri: GRAPHQL_URL,
  fetch: xhrFetch,
  // The gateway refuses a multipart request without it (CSRF protection, as Apollo Server).
  headers: { "Apollo-Require-Preflight": "true" },
});

const withToken = new SetContextLink(async (context) => {
  const token = await accessToken();
  return token
    ? { headers: { ...context.headers, authorization: `Bearer ${token}` } }
    : { headers: context.headers };
});

function isUnauthenticated(error) {
  return (
    CombinedGraphQLErrors.is(error) &&
    error.errors.some((entry) => entry.extensions?.code === "UNAUTHENTICATED")
  );
}

// A token revoked or expired early (logoutAll elsewhere, a clock off): refresh once and retry.
// When the refresh itself is refused, session.js has ended the session and the app signs out.
const refreshOnUnauthenticated = new ErrorLink(({ error, operation, forward }) => {
  if (!isUnauthenticated(error) || !currentSession() || operation.getContext().retried) return;
  operation.setContext({ retried: true });
  return from(refreshSession().then(() => true, () => false)).pipe(
    switchMap((refreshed) => (refreshed ? forward(operation) : throwError(() => error))),
  );
});

let openSocket = null;
let reopening = false;
let connections = 0;

/** How many connections were acknowledged so far: a subscription's first message on a newer
 * one starts a replay (the gateway resends the current state, and taskLogs its output so far). */
export function currentConnection() {
  return connections;
}

const websocket = createClient({
  url: GRAPHQL_WS_URL,
  // Read on every (re)connection, so a reopened socket carries the newest token.
  connectionParams: async () => {
    const token = await accessToken();
    return token ? { Authorization: `Bearer ${token}` } : {};
  },
  retryAttempts: Infinity,
  shouldRetry: () => true,
  retryWait: async (retries) => {
    // Reopening for a new token is planned: at once. Otherwise back off as graphql-ws does by
    // default (2^retries seconds plus 0.3 to 3 s), so a restarted gateway is not stampeded.
    const delay = reopening ? 0 : 2 ** retries * 1000 + 300 + Math.random() * 2700;
    reopening = false;
    await new Promise((resolve) => setTimeout(resolve, delay));
  },
  on: {
    connected: (socket) => {
      openSocket = socket;
      connections += 1;
    },
    closed: () => {
      openSocket = null;
    },
  },
});

// The gateway closes a socket when the token it was opened with expires (4401, which
// graphql-ws treats as final): reopen it with each new token instead. 4205 is a close code of
// our own that graphql-ws retries; it resubscribes every active subscription on the new socket.
// On sign-out the components unsubscribe, and the lazy client closes the socket by itself.
onSessionChange((session) => {
  if (session && openSocket?.readyState === WebSocket.OPEN) {
    reopening = true;
    openSocket.close(4205, "Client Restart");
  }
});

const subscriptions = new GraphQLWsLink(websocket);

export const client = new ApolloClient({
  cache: new InMemoryCache(),
  link: ApolloLink.split(
    (operation) => operation.operationType === "subscription",
    subscriptions,
    ApolloLink.from([refreshOnUnauthenticated, withToken, http]),
  ),
});
