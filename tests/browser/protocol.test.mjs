// The browser protocol (static/protocol.js) on its own, in node: what each receiver accepts and
// refuses, and that no other module of the runtime or the Streamlit launcher restates it.
// Run: node --test tests/browser/protocol.test.mjs (part of scripts/test-browser).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  PROTOCOL_VERSION, REQUESTS, REPLY_TYPES, checkRequest, checkPortRequest, checkReply, checkPortReply,
  checkOutputs, checkInputResult, checkText, idOf, MAX_TEXT_UNITS,
} from "../../static/protocol.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

const tensor = (n = 64, shape = [1, 1, 8, 8]) => ({ data: new Float32Array(n), shape });

test("requests: each type with its fields passes; anything else names what is wrong", () => {
  const good = [
    { v: 1, type: "ping", id: 0 },
    { v: 1, type: "init", id: 1, model: "digits" },
    { v: 1, type: "init", id: 1, model: "pii", requireIsolation: true, timeoutMs: 1000, input: { report: false } },
    { v: 1, type: "run", id: 2, inputs: { input: tensor() } },
    { v: 1, type: "run-text", id: 3, text: "Jane Roe" },
    { v: 1, type: "status", id: 4 }, { v: 1, type: "cancel", id: 5 }, { v: 1, type: "purge", id: 6 }, { v: 1, type: "close", id: 7 },
  ];
  for (const m of good) assert.equal(checkRequest(m), null, JSON.stringify(m));
  assert.deepEqual(new Set(good.map((m) => m.type)), new Set(Object.keys(REQUESTS)), "every request type is exercised");
  const bad = [
    [null, "a message is an object"],
    [[1], "a message is an object"],
    [Object.create(null), "a message is a plain object"],
    [{ v: 2, type: "status", id: 1 }, "unsupported protocol version 2; this sandbox speaks v1"],
    [{ v: 1, type: "launch-missiles", id: 1 }, 'unknown message type "launch-missiles"'],
    [{ v: 1, type: "toString", id: 1 }, 'unknown message type "toString"'],
    [{ v: 1, type: "status", id: -1 }, "id must be a non-negative safe integer"],
    [{ v: 1, type: "status", id: 1.5 }, "id must be a non-negative safe integer"],
    [{ v: 1, type: "status", id: 1, extra: true }, 'unexpected field "extra" in status'],
    [{ v: 1, type: "init", id: 1, model: "../etc" }, "init.model must be a model name"],
    [{ v: 1, type: "init", id: 1, model: "d", timeoutMs: 5 }, "init.timeoutMs must be an integer in [100, 600000]"],
    [{ v: 1, type: "init", id: 1, model: "d", input: { report: true, echo: 1 } }, 'init.input: unexpected field "echo"'],
    [{ v: 1, type: "run", id: 1, inputs: { input: { data: [0, 1], shape: [2] } } }, "input input: data must be a Float32Array"],
    [{ v: 1, type: "run", id: 1, inputs: { input: tensor(3) } }, "input input: shape [1,1,8,8] holds 64 values, data has 3"],
    [{ v: 1, type: "run-text", id: 1, text: "" }, "text is empty"],
    [{ v: 1, type: "run-text", id: 1, text: "x".repeat(MAX_TEXT_UNITS + 1) }, `text is over ${MAX_TEXT_UNITS} characters`],
  ];
  for (const [m, want] of bad) assert.equal(checkRequest(m), want, JSON.stringify(m)?.slice(0, 80));
  assert.equal(idOf({ id: 7 }), 7);
  assert.equal(idOf({ id: "7" }), null);
  assert.equal(checkText(3), "text must be a string");
});

test("the direct port: run only, validated as the sandbox validates it", () => {
  const run = { v: 1, type: "run", id: 9, inputs: { input: tensor() } };
  assert.equal(checkPortRequest(run), null);
  assert.equal(checkPortRequest({ v: 1, type: "status", id: 1 }), "this port serves run requests only");
  assert.equal(checkPortRequest({ v: 0, type: "run", id: 1 }), "unsupported protocol version 0; this port speaks v1");
  const bad = { ...run, inputs: { input: tensor(3) } };
  assert.equal(checkPortRequest(bad), checkRequest(bad));
  assert.equal(checkPortReply({ v: 1, type: "result", id: 1 }), true);
  assert.equal(checkPortReply({ v: 1, type: "status", id: 1 }), false);
});

test("replies: known types of this version; outputs and input results held to their shape", () => {
  for (const type of REPLY_TYPES) assert.equal(checkReply({ v: PROTOCOL_VERSION, type, id: 0 }), true, type);
  assert.equal(checkReply({ v: 2, type: "result" }), false);
  assert.equal(checkReply({ v: 1, type: "eval" }), false);
  assert.equal(checkReply("hello"), false);
  const outputs = { probabilities: { data: new Float32Array(10), shape: [1, 10] } };
  assert.equal(checkOutputs(outputs), true);
  assert.equal(checkOutputs({}), false);
  assert.equal(checkOutputs({ p: { data: new Float32Array(10), shape: [1, 9] } }), false);
  assert.equal(checkOutputs({ p: { data: [0], shape: [1] } }), false);
  assert.equal(checkOutputs({ p: { data: new Float32Array(1), shape: [1], input: "x" } }), false);
  const ok = { v: 1, type: "input-result", id: 3, seq: 1, outputs };
  assert.equal(checkInputResult(ok, 3), true);
  assert.equal(checkInputResult(ok, 4), false, "another init's");
  assert.equal(checkInputResult(ok, null), false, "no input mode");
  assert.equal(checkInputResult({ ...ok, fileName: "scan.npy" }, 3), false, "nothing may ride along");
  assert.equal(checkInputResult({ ...ok, seq: "1" }, 3), false);
});

test("one definition: no other module restates the protocol", () => {
  const files = [
    ...fs.readdirSync(path.join(ROOT, "static")).filter((f) => f.endsWith(".js") && f !== "protocol.js").map((f) => path.join(ROOT, "static", f)),
    path.join(ROOT, "python", "launcher", "launcher.js"),
  ];
  const restated = [
    [/PROTOCOL_VERSION\s*=/, "the protocol version"],
    [/\bv\s*[!=]==?\s*1\b/, "a protocol version check"],
    [/"port-closed"\s*,\s*"|"input-result"\s*,\s*"|new Set\(\[\s*"hello"/, "the list of reply types"],
    [/"id,outputs,seq,type,v"/, "the input-result schema"],
    [/\binit\.model must be\b|\bthis port serves\b/, "a request validator"],
    [/Object\.keys\(o\)\.every\(\(k\) => k === "data" \|\| k === "shape"\)/, "the outputs validator"],
  ];
  for (const f of files) {
    const src = fs.readFileSync(f, "utf8");
    for (const [re, what] of restated) assert.doesNotMatch(src, re, `${path.relative(ROOT, f)} restates ${what}; import it from static/protocol.js`);
  }
  const launcher = fs.readFileSync(path.join(ROOT, "python", "launcher", "launcher.js"), "utf8");
  assert.match(launcher, /from "\.\.\/\.\.\/static\/protocol\.js"/, "the launcher imports the protocol module");
});
