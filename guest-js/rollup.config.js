// Builds dist-js/: ESM (.js) and CommonJS (.cjs) for the `.` and `./react` entries, sharing their
// common code (one default store per app), and self-contained declarations (.d.ts for import,
// .d.cts for require) with the generated binding types inlined. Also the global script
// api-iife.js for pages without a bundler (apps with `app.withGlobalTauri`), which puts the API on
// `window.__TAURI__.points`, as the official plugins do.
import { nodeResolve } from "@rollup/plugin-node-resolve";
import typescript from "@rollup/plugin-typescript";
import { dts } from "rollup-plugin-dts";

const entries = { index: "src/index.ts", react: "src/react.ts" };
const external = (id) => /^(@tauri-apps\/api|react)(\/|$)/.test(id);

export default [
  {
    input: entries,
    external,
    plugins: [typescript({ tsconfig: "./tsconfig.build.json", noEmitOnError: true })],
    output: [
      { dir: "dist-js", format: "es", entryFileNames: "[name].js", chunkFileNames: "[name]-shared.js" },
      {
        dir: "dist-js",
        format: "cjs",
        entryFileNames: "[name].cjs",
        chunkFileNames: "[name]-shared.cjs",
        exports: "named",
      },
    ],
  },
  // The global script, injected by the plugin into every page of an app with `withGlobalTauri`
  // (build.rs: global_api_script_path), after Tauri's own global API: @tauri-apps/api is taken
  // from window.__TAURI__, not bundled again. The plugin crate ships a copy (../api-iife.js).
  {
    input: "src/index.ts",
    external,
    plugins: [nodeResolve(), typescript({ tsconfig: "./tsconfig.build.json", noEmitOnError: true })],
    output: {
      file: "dist-js/api-iife.js",
      format: "iife",
      name: "__TAURI_PLUGIN_POINTS__",
      globals: {
        "@tauri-apps/api/core": "window.__TAURI__.core",
        "@tauri-apps/api/event": "window.__TAURI__.event",
        "@tauri-apps/api/webview": "window.__TAURI__.webview",
      },
      footer: 'if ("__TAURI__" in window) Object.defineProperty(window.__TAURI__, "points", { value: __TAURI_PLUGIN_POINTS__ });',
    },
  },
  // One declaration bundle per entry: each stands alone (the store's types are interfaces, so the
  // copies in index and react are the same types).
  ...Object.entries(entries).map(([name, input]) => ({
    input,
    external,
    plugins: [dts({ tsconfig: "./tsconfig.build.json" })],
    output: [
      { file: `dist-js/${name}.d.ts`, format: "es" },
      { file: `dist-js/${name}.d.cts`, format: "es" },
    ],
  })),
];
