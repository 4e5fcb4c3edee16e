// Text models in the sandbox document: the manifest's tokenizer entry and the text input mode (a text box inside this document, so typed or pasted text exists only in
// the serving origin's isolated context; the embedding page gets at most the model's outputs).
// The limits on a text are the protocol's (protocol.js checkText). DOM calls only: no innerHTML, nothing for Trusted Types to refuse.

import { checkText } from "./protocol.js";
import { entities, pieces } from "./text.js";
import { el, keptNote, oneShot } from "./sandbox-ui.js";

const MAX_TOKENIZER_BYTES = 64 * 1024 * 1024;

/**
 * The manifest entry's `tokenizer`, checked like the model itself is; null for other models.
 * @param {any} entry @param {string} manifestUrl
 * @param {(hex: string) => string} hexToBase64
 */
export function tokenizerSpec(entry, manifestUrl, hexToBase64) {
  const t = entry.tokenizer;
  if (t === undefined) return null;
  const bad = (what) => Object.assign(new Error(`model "${entry.name}": tokenizer ${what}`), { code: "manifest" });
  if (!t || typeof t !== "object") throw bad("must be an object");
  if (typeof t.file !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(t.file)) throw bad("has a bad file name");
  if (typeof t.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(t.sha256)) throw bad("has a bad sha256");
  if (t.integrity !== `sha256-${hexToBase64(t.sha256)}`) throw bad("integrity does not match its sha256");
  if (!Number.isSafeInteger(t.size) || t.size <= 0 || t.size > MAX_TOKENIZER_BYTES) throw bad(`size ${t.size} is outside (0, ${MAX_TOKENIZER_BYTES}]`);
  if (!Number.isInteger(t.max_length) || t.max_length < 4 || t.max_length > 8192) throw bad("max_length must be an integer in [4, 8192]");
  if (!Number.isInteger(t.stride) || t.stride < 0 || t.stride >= t.max_length / 2) throw bad("stride must be an integer in [0, max_length / 2)");
  return {
    name: `${entry.name} tokenizer`,
    file: t.file,
    sha256: t.sha256,
    integrity: t.integrity,
    size: t.size,
    maxLength: t.max_length,
    stride: t.stride,
    url: new URL(`./${t.file}`, manifestUrl).href,
  };
}

/**
 * Shows a text box; on Run, the model runs on its text here and the entities are shown here.
 * Outputs leave only when the user presses Send (and `send` exists).
 * @param {{ labels?: string[],
 *           send: ((outputs: Record<string, {data: Float32Array, shape: number[]}>) => void) | null,
 *           run: (text: string) => Promise<{outputs: Record<string, {data: Float32Array, shape: number[]}>, windows: any[]}> }} options
 */
export function mountTextInput({ labels, run, send }) {
  const area = el("textarea", { className: "in-text", rows: 8, spellcheck: false, dataset: { role: "text" },
    placeholder: "Type or paste a note here" });
  const go = el("button", { type: "button", className: "in-btn in-primary", dataset: { role: "run" } }, "Find personal data");
  const out = el("div", { className: "in-marked", dataset: { role: "result" } });
  const box = el("section", { className: "in-box", dataset: { role: "input" } }, keptNote("Your text", send !== null),
    area, el("div", { className: "in-row" }, go), out);
  const runs = oneShot(box, send);
  if (runs.sendRow) box.append(runs.sendRow);
  document.body.append(box);
  document.documentElement.dataset.ui = "input";

  go.addEventListener("click", () => {
    const text = area.value;
    runs.run(async () => {
      out.replaceChildren("running…");
      const problem = checkText(text);
      if (problem) throw new Error(problem);
      const r = await run(text);
      const logits = Object.values(r.outputs)[0];
      const found = labels ? entities(text, logits, r.windows, labels) : [];
      out.replaceChildren(...pieces(text, found).map((p) => p.entity
        ? el("mark", { title: `${p.entity.label} ${(p.entity.score * 100).toFixed(0)}%`, dataset: { label: p.entity.label } }, `[${p.entity.label}]`)
        : p.text));
      box.dataset.entities = String(found.length);
      return [r.outputs];
    }, (e) => { out.replaceChildren(e?.message ?? String(e)); });
  });
}
