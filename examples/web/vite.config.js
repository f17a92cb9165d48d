// The app calls the gateway on its own origin (/graphql, HTTP and WebSocket): the gateway sends
// no CORS headers, so in development and `vite preview` this proxy stands in for the reverse
// proxy that serves the built app and the gateway under one origin in production.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const gateway = process.env.DOCKYARD_GATEWAY_URL || "http://127.0.0.1:8000";
const proxy = { "/graphql": { target: gateway, ws: true } };

export default defineConfig({
  plugins: [react()],
  server: { proxy },
  preview: { proxy },
});
