// Where the gateway is: VITE_GRAPHQL_URL at build time, by default /graphql on the app's own
// origin. The WebSocket URL is the same path with ws(s):, unless VITE_GRAPHQL_WS_URL says otherwise.
const configured = import.meta.env.VITE_GRAPHQL_URL || "/graphql";

export const GRAPHQL_URL = new URL(configured, window.location.href).href;

function websocketUrl(httpUrl) {
  const url = new URL(httpUrl);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

export const GRAPHQL_WS_URL = import.meta.env.VITE_GRAPHQL_WS_URL || websocketUrl(GRAPHQL_URL);
