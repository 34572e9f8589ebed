// Checks the built package as its users see it, through the package.json "exports" map:
// ESM and CommonJS entries load and export the API, each format's `/react` entry shares its
// main entry's code, and the declarations are self-contained and type-check for an ESM and a
// CommonJS consumer (TypeScript's node16 resolution).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(path.join(root, "package.json"));
const API = ["getBalance", "checkCost", "charge", "getPrices", "listTransactions", "listBatches", "setSessionToken",
  "clearSessionToken", "isPointsError", "isInsufficientPoints", "onBalanceChanged", "onInsufficientPoints",
  "onPendingChanged", "onSessionChanged", "onLowBalance", "localizedLowBalance", "getOffline", "onOfflineChanged", "localizedOffline", "isOfflineError", "localizedRecharged", "onChargeRefused", "getPending", "syncPending", "retryRefused", "dismissRefused", "newIdempotencyKey", "idempotencyKeyOf", "createPointStore", "getPointStore", "insufficientPointsFromBody", "insufficientPointsFromResponse"];

const esm = await import("tauri-plugin-points-api");
const esmReact = await import("tauri-plugin-points-api/react");
const cjs = require("tauri-plugin-points-api");
const cjsReact = require("tauri-plugin-points-api/react");
for (const [name, mod] of [["esm", esm], ["cjs", cjs]]) {
  for (const fn of API) assert.equal(typeof mod[fn], "function", `${name}: ${fn}`);
}
for (const mod of [esmReact, cjsReact]) {
  for (const fn of ["usePoints", "usePointStore", "useRecharged", "useLowBalance", "useOffline"]) assert.equal(typeof mod[fn], "function", fn);
}
assert.equal(esmReact.getPointStore, esm.getPointStore, "ESM /react shares the main entry's code");
assert.equal(cjsReact.getPointStore, cjs.getPointStore, "CJS /react shares the main entry's code");
assert.equal(esm.getPointStore(), cjs.getPointStore(), "one default store whichever format loads it");

for (const file of ["index.d.ts", "index.d.cts", "react.d.ts", "react.d.cts"]) {
  const text = readFileSync(path.join(root, "dist-js", file), "utf8");
  assert.doesNotMatch(text, /from ['"]\.{1,2}\//, `${file} imports a relative file`);
  assert.match(text, /type PointBalance = /, `${file} holds the binding types`);
}

const consumer = `
  import { createPointStore, isInsufficientPoints, type PointBalance, type PointState } from "tauri-plugin-points-api";
  import { usePoints, usePointStore } from "tauri-plugin-points-api/react";
  const store = createPointStore();
  const state: PointState = store.getSnapshot();
  const balance: PointBalance | null = state.balance;
  const e: unknown = null;
  if (isInsufficientPoints(e)) { const r: number | null = e.required; void r; }
  export const used = [balance, usePoints, usePointStore];
`;
const files = { [path.join(root, "consumer-check.mts")]: consumer, [path.join(root, "consumer-check.cts")]: consumer };
const options = { strict: true, noEmit: true, module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16,
  target: ts.ScriptTarget.ES2022, types: [], lib: ["lib.es2022.d.ts", "lib.dom.d.ts"], skipLibCheck: false };
const host = ts.createCompilerHost(options);
const read = host.getSourceFile.bind(host);
host.getSourceFile = (name, v, ...rest) =>
  files[path.resolve(name)] !== undefined ? ts.createSourceFile(name, files[path.resolve(name)], v) : read(name, v, ...rest);
const fileExists = host.fileExists.bind(host);
host.fileExists = (name) => files[path.resolve(name)] !== undefined || fileExists(name);
const program = ts.createProgram(Object.keys(files), options, host);
const errors = ts.getPreEmitDiagnostics(program).filter((d) => !d.file || d.file.fileName.includes(`${path.sep}dist-js${path.sep}`) || d.file.fileName.includes("consumer-check"));
assert.deepEqual(errors.map((d) => `${d.file?.fileName ?? ""}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`), []);

console.log("dist-js: ESM, CommonJS and declarations check out");
