import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

export default defineConfig({
  plugins: [react()],
  // tauri-plugin-points-api is linked from ../../guest-js, which has its own node_modules: one copy
  // of React and of @tauri-apps/api for the whole page.
  resolve: { dedupe: ["react", "react-dom", "@tauri-apps/api"] },
  clearScreen: false,
  build: { outDir: "dist", emptyOutDir: true, target: "es2021" },
});
