// @vitest-environment node
/// <reference types="node" />
// Proves that the type test (bindings.types.ts, run by `npm run check`) fails when a binding
// regresses: it compiles that file against altered copies of the generated bindings.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const here = path.dirname(fileURLToPath(import.meta.url));
const typeTest = path.join(here, "bindings.types.ts");
const bindings = path.resolve(here, "../bindings");

const options: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  verbatimModuleSyntax: true,
  skipLibCheck: true,
  types: [],
  lib: ["lib.es2022.d.ts"],
};
const cache = new Map<string, ts.SourceFile | undefined>();

/** The type errors of bindings.types.ts when some binding files read as `overrides` says. */
function typeErrors(overrides: Record<string, string> = {}): string[] {
  const replaced = new Map(Object.entries(overrides).map(([name, text]) => [path.join(bindings, `${name}.ts`), text]));
  const host = ts.createCompilerHost(options);
  const read = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    const text = replaced.get(path.resolve(fileName));
    if (text !== undefined) return ts.createSourceFile(fileName, text, languageVersion);
    if (!cache.has(fileName)) cache.set(fileName, read(fileName, languageVersion, onError, shouldCreate));
    return cache.get(fileName);
  };
  const program = ts.createProgram([typeTest], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
}

/** The generated file of `name` with `from` replaced by `to` (which must change it). */
function altered(name: string, from: RegExp, to: string): Record<string, string> {
  const original = readFileSync(path.join(bindings, `${name}.ts`), "utf8");
  const text = original.replace(from, to);
  expect(text, `${name}.ts has no ${String(from)}`).not.toBe(original);
  return { [name]: text };
}

/** Asserts that the type test failed on its assertions (not on a syntax error of the alteration). */
function expectAssertionFailure(errors: string[]): void {
  expect(errors).not.toEqual([]);
  for (const error of errors) expect(error).toMatch(/does not satisfy the constraint 'true'/);
}

describe("the bindings type test", { timeout: 60_000 }, () => {
  it("passes with the generated bindings", () => {
    expect(typeErrors()).toEqual([]);
  });

  it("fails when PointBalance regresses to bigint", () => {
    expectAssertionFailure(typeErrors(altered("PointBalance", /totalConsumed: number/, "totalConsumed: bigint")));
  });

  it("fails when PointBalance gains a field", () => {
    expectAssertionFailure(typeErrors(altered("PointBalance", /totalExpired: number,/, "totalExpired: number, frozen: number,")));
  });

  it("fails when PointBalance loses a field", () => {
    expectAssertionFailure(typeErrors(altered("PointBalance", /totalExpired: number,/, "")));
  });

  it("fails when another binding regresses to bigint", () => {
    expectAssertionFailure(typeErrors(altered("Transaction", /balanceAfter: number/, "balanceAfter: bigint")));
    expectAssertionFailure(typeErrors(altered("PointsError", /status: number/, "status: bigint")));
  });

  it("fails when seq or session is lost or retyped", () => {
    expectAssertionFailure(typeErrors(altered("PointBalance", /seq\?: number/, "seq: number | null")));
    expectAssertionFailure(typeErrors(altered("ChargeReceipt", /seq: number \| null/, "seq: bigint | null")));
    expectAssertionFailure(typeErrors(altered("BalanceChanged", /session: number,/, "")));
    expectAssertionFailure(typeErrors(altered("BalanceChanged", /summary: PointBalance,/, "summary: PointBalance | null,")));
    expectAssertionFailure(typeErrors(altered("LowBalance", /threshold: number,/, "threshold: bigint,")));
    expectAssertionFailure(typeErrors(altered("PendingStatus", /session: number,/, "session: bigint,")));
    expectAssertionFailure(typeErrors(altered("OfflineStatus", /session: number,/, "session: bigint,")));
    expectAssertionFailure(typeErrors(altered("OfflineAllowance", /remaining: number,/, "remaining: bigint,")));
    expectAssertionFailure(typeErrors(altered("OfflineAllowance", /until: string \| null,/, "until: string,")));
  });

  it("fails when PendingStatus loses or retypes otherAccounts", () => {
    expectAssertionFailure(typeErrors(altered("PendingStatus", /otherAccounts: number,/, "")));
    expectAssertionFailure(typeErrors(altered("PendingStatus", /otherAccounts: number,/, "otherAccounts: bigint,")));
  });

  it("fails when the refusal window or a session field changes", () => {
    expectAssertionFailure(typeErrors(altered("InsufficientPoints", /window: string \| null/, "window: string")));
    expectAssertionFailure(typeErrors(altered("SessionChanged", /signedIn: boolean/, "signedIn: boolean, account: string")));
    expectAssertionFailure(typeErrors(altered("RefusedCharge", /refusedAt: number/, "refusedAt: bigint")));
  });

  it("fails when a charge outcome appears", () => {
    expectAssertionFailure(
      typeErrors(altered("ChargeOutcome", /;\s*$/, ' | { "status": "dropped", idempotencyKey: string, };')),
    );
  });

  it("fails when an error kind appears", () => {
    expectAssertionFailure(typeErrors(altered("PointsError", /;\s*$/, ' | { "kind": "frozen", message: string, };')));
  });
});
