/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The platform's HTTP APIs, reached through the gateway on the same origin in production; the
// dev server proxies them to the local gateway (`make demo`), or to RYAX_GATEWAY_URL.
const gateway = process.env.RYAX_GATEWAY_URL ?? "http://127.0.0.1:8080";
const API_PREFIXES = ["/authorization", "/repository", "/studio", "/runner"];

export default defineConfig({
  plugins: [react()],
  server: {
    host: "127.0.0.1",
    port: 5173,
    proxy: Object.fromEntries(API_PREFIXES.map((prefix) => [prefix, { target: gateway, changeOrigin: false }])),
  },
  preview: {
    host: "127.0.0.1",
    port: 4173,
    proxy: Object.fromEntries(API_PREFIXES.map((prefix) => [prefix, { target: gateway, changeOrigin: false }])),
  },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    manifest: true,
    sourcemap: true,
    chunkSizeWarningLimit: 800,
    rollupOptions: {
      output: {
        // Libraries that change rarely in their own long-cached files.
        manualChunks(id: string) {
          if (!id.includes("node_modules")) return undefined;
          if (/node_modules\/(react|react-dom|scheduler)\//.test(id)) return "react";
          if (/node_modules\/(@xyflow|@dagrejs|d3-|classcat|zustand)/.test(id)) return "graph";
          return undefined;
        },
      },
    },
  },
  test: {
    environment: "jsdom",
    globals: false,
    setupFiles: ["./test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}", "test/**/*.test.{ts,tsx}"],
    css: false,
    restoreMocks: true,
    // a page test (the editor's: the whole page, its canvas, typing) takes seconds on a busy
    // 2-core machine; 5 s (the default) is not enough there
    testTimeout: 20_000,
  },
});
