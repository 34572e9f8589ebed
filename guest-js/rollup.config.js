// Builds dist-js/: ESM (.js) and CommonJS (.cjs) for the `.` and `./react` entries, sharing their
// common code (one default store per app), and self-contained declarations (.d.ts for import,
// .d.cts for require) with the generated binding types inlined.
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
