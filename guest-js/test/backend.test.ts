import { describe, expect, it } from "vitest";
import { insufficientPointsFromBody, insufficientPointsFromResponse } from "../src";

const NONE = { service: null, required: null, balance: null };

describe("402 bodies of the app's own backend", () => {
  it("reads problem+json", () => {
    expect(
      insufficientPointsFromBody({
        type: "https://example.invalid/problems/insufficient-points",
        title: "Insufficient points",
        status: 402,
        code: "insufficient_points",
        service: "video",
        required: 300,
        balance: 120,
      }),
    ).toEqual({ service: "video", required: 300, balance: 120 });
  });

  it("reads a FastAPI detail object, and a detail string as no figures", () => {
    expect(insufficientPointsFromBody({ detail: { code: "insufficient_points", service: "tts", required: 12, balance: -3 } })).toEqual({
      service: "tts",
      required: 12,
      balance: -3,
    });
    expect(insufficientPointsFromBody({ detail: "积分不足" })).toEqual(NONE);
    expect(insufficientPointsFromBody({ detail: [{ loc: ["body"], msg: "x" }] })).toEqual(NONE);
  });

  it("reads the text of a body, and treats empty or unreadable bodies as no figures", () => {
    expect(insufficientPointsFromBody('{"detail":{"required":"5","balance":"1.0"}}')).toEqual({
      service: null,
      required: 5,
      balance: 1,
    });
    for (const body of ["", "  ", "<html>Payment Required</html>", null, undefined, 402, [1, 2]]) {
      expect(insufficientPointsFromBody(body)).toEqual(NONE);
    }
  });

  it("keeps only well-typed figures", () => {
    expect(insufficientPointsFromBody({ service: 7, required: "many", balance: Number.NaN })).toEqual(NONE);
    expect(insufficientPointsFromBody({ service: "", required: null, balance: 0 })).toEqual({ service: null, required: null, balance: 0 });
  });

  it("reads a Response only when it is a 402, and leaves its body readable", async () => {
    const ok = new Response(JSON.stringify({ id: 1 }), { status: 200 });
    await expect(insufficientPointsFromResponse(ok)).resolves.toBeNull();

    const problem = new Response(JSON.stringify({ code: "insufficient_points", service: "video", required: 50, balance: 3 }), {
      status: 402,
      headers: { "content-type": "application/problem+json" },
    });
    await expect(insufficientPointsFromResponse(problem)).resolves.toEqual({ service: "video", required: 50, balance: 3 });
    await expect(problem.json()).resolves.toMatchObject({ required: 50 });

    await expect(insufficientPointsFromResponse(new Response(null, { status: 402 }))).resolves.toEqual(NONE);

    const used = new Response(JSON.stringify({ required: 50 }), { status: 402 });
    await used.text();
    await expect(insufficientPointsFromResponse(used)).resolves.toEqual(NONE);
  });
});
