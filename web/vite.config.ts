/// <reference types="vitest" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev` serves the console with hot reload and sends the API to a running gateway
// (`make dev`: http://127.0.0.1:8000, or CRM_GATEWAY_URL), so the session cookie stays same-origin.
const gateway = process.env.CRM_GATEWAY_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  server: { proxy: { "/api": { target: gateway, changeOrigin: true } } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Pages are split by route (App.tsx); antd components land with the pages that use them.
    chunkSizeWarningLimit: 800,
  },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
