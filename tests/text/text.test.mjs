// static/text.js on hand-made logits: windows, BIO grouping, word pieces, whole-word addresses,
// redaction. Run: node --test tests/text/ (scripts/test, stage "text").
import { test } from "node:test";
import assert from "node:assert/strict";
import { entities, pieces, redact } from "../../static/text.js";

const LABELS = ["O", "B-GIVEN_NAME", "I-GIVEN_NAME", "B-SURNAME", "I-SURNAME", "B-EMAIL", "I-EMAIL", "B-CITY", "I-CITY"];

/** One window per entry of `rows`; each row lists tokens as [start, end, label] ([CLS]/[SEP] added). */
function run(text, rows) {
  const n = Math.max(...rows.map((r) => r.length)) + 2;
  const data = new Float32Array(rows.length * n * LABELS.length);
  const windows = rows.map((toks, w) => {
    const offsets = new Uint32Array(n * 2);
    const special = new Uint8Array(n);
    special[0] = 1;
    special[toks.length + 1] = 1;
    toks.forEach(([s, e, label], i) => {
      offsets[2 * (i + 1)] = s;
      offsets[2 * (i + 1) + 1] = e;
      data[(w * n + i + 1) * LABELS.length + LABELS.indexOf(label)] = 5;
    });
    return { offsets, specialTokensMask: special, length: toks.length + 2 };
  });
  return entities(text, { data, shape: [rows.length, n, LABELS.length] }, windows, LABELS);
}

const spans = (es) => es.map((e) => [e.label, e.start, e.end]);

test("BIO groups, whitespace joins one type, word pieces join, punctuation stays out", () => {
  const text = "Maria Gonzalez, of Springfield.";
  const found = run(text, [[
    [0, 5, "B-GIVEN_NAME"], [6, 10, "B-SURNAME"], [10, 14, "B-GIVEN_NAME"], [14, 15, "O"],
    [16, 18, "O"], [19, 25, "B-CITY"], [25, 30, "B-CITY"], [30, 31, "O"]]]);
  assert.deepEqual(spans(found), [["GIVEN_NAME", 0, 5], ["SURNAME", 6, 14], ["CITY", 19, 30]]);
  assert.equal(redact(text, found), "[GIVEN_NAME] [SURNAME], of [CITY].");
  assert.deepEqual(pieces(text, found).map((p) => p.text).join(""), text);
  assert.ok(found.every((e) => e.score > 0.9 && e.score <= 1));
});

test("an email covers its whole word, without the sentence's full stop", () => {
  const text = "write to ana.roe@example.org.";
  const found = run(text, [[[0, 5, "O"], [6, 8, "O"], [9, 12, "B-EMAIL"], [12, 13, "O"], [13, 16, "O"], [16, 17, "O"], [17, 24, "O"], [24, 25, "O"], [25, 28, "O"], [28, 29, "O"]]]);
  assert.deepEqual(spans(found), [["EMAIL", 9, 28]]);
  assert.equal(redact(text, found), "write to [EMAIL].");
});

test("overlapping windows: a token takes the label from the window where it is more central", () => {
  const text = "aa bb cc dd ee ff";
  const w0 = (dd) => [[0, 2, "O"], [3, 5, "O"], [6, 8, "O"], [9, 11, dd]];
  const w1 = (dd) => [[6, 8, "O"], [9, 11, dd], [12, 14, "O"], [15, 17, "O"]];
  // "dd" is at the end of window 0 and inside window 1: window 1 decides.
  assert.deepEqual(spans(run(text, [w0("B-CITY"), w1("O")])), []);
  assert.deepEqual(spans(run(text, [w0("O"), w1("B-CITY")])), [["CITY", 9, 11]]);
});

test("shapes that do not match are an error", () => {
  assert.throws(() => entities("x", { data: new Float32Array(9), shape: [1, 1, 9] }, [], LABELS), /do not match/);
});
