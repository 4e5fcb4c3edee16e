// The PII demo page: paste a note, the sandbox tokenizes it with the model's own tokenizer and
// runs the token classifier, and this page shows the entities, mapped back onto the note by
// the tokenizer's offsets, blacked out. Uses only the public client API; nothing is uploaded.
import { SecureContext, pageIsolation } from "./secure-context.js";
import { entities, pieces, redact } from "./text.js";

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const note = /** @type {HTMLTextAreaElement} */ ($("note"));
const runBtn = /** @type {HTMLButtonElement} */ ($("run"));
const copyBtn = /** @type {HTMLButtonElement} */ ($("copy"));

// Synthetic: every name, number and place here is made up.
const SAMPLE = "Patient: Maria Gonzalez, DOB 04/12/1958, MRN 00482913.\n"
  + "Seen on 2024-03-18 at Riverside Clinic, 1450 Oak Street, Springfield, IL 62704.\n"
  + "Chief complaint: intermittent chest pain for 3 days. History of hypertension and type 2 diabetes. "
  + "Lives with her daughter, Ana Gonzalez, who can be reached at (555) 010-4432 or ana.gonzalez@example.org.\n"
  + "Plan: ECG, troponin, follow-up with Dr. Samuel Okafor next week.";

/** @type {SecureContext | null} */
let ctx = null;
let labels = [];
let lastRedacted = "";

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props);
  e.append(...children);
  return e;
}

function showError(e) {
  const b = $("error");
  b.textContent = `${e?.code ? `${e.code}: ` : ""}${e?.message ?? e}`;
  b.hidden = false;
}

async function find() {
  if (!ctx) return;
  const text = note.value;
  if (!text.trim()) return;
  runBtn.disabled = true;
  try {
    const r = await ctx.run({ text });
    const found = entities(text, r.logits, r.windows, labels);
    $("marked").replaceChildren(...pieces(text, found).map((p) => p.entity
      ? el("mark", { title: `${p.entity.label}, ${(p.entity.score * 100).toFixed(0)}%` }, p.entity.label)
      : p.text));
    $("found").replaceChildren(...found.map((e) => el("li", {}, `${e.label} ${(e.score * 100).toFixed(0)}%`)));
    lastRedacted = redact(text, found);
    copyBtn.disabled = false;
    $("latency").textContent = `${r.windows.length} window${r.windows.length > 1 ? "s" : ""}, `
      + `tokenize ${r.timings.tokenizeMs.toFixed(1)} ms, model ${r.timings.computeMs.toFixed(0)} ms`;
    document.body.dataset.entities = String(found.length);
    document.body.dataset.runs = String(Number(document.body.dataset.runs ?? 0) + 1);
  } catch (e) {
    showError(e);
  } finally {
    runBtn.disabled = false;
  }
}

function onProgress(p) {
  const bar = /** @type {HTMLProgressElement} */ ($("progress"));
  if (p.total) bar.value = p.loaded / p.total;
  $("progress-label").textContent = p.phase === "download" && p.total
    ? `Downloading the model: ${(p.loaded / 1e6).toFixed(1)} of ${(p.total / 1e6).toFixed(1)} MB`
    : `${p.phase}…`;
}

async function start() {
  const iso = pageIsolation();
  const pill = $("iso-pill");
  pill.dataset.ok = iso.crossOriginIsolated ? "yes" : "no";
  pill.textContent = iso.crossOriginIsolated ? "Cross-origin isolated" : "Not isolated: single-threaded";
  const frame = document.createElement("iframe");
  frame.setAttribute("sandbox", "allow-scripts allow-same-origin");
  frame.setAttribute("allow", "cross-origin-isolated");
  frame.setAttribute("aria-hidden", "true");
  frame.tabIndex = -1;
  frame.title = "secure-context engine";
  frame.className = "engine-frame";
  frame.src = new URL("./sandbox.html", import.meta.url).href;
  document.body.append(frame);
  try {
    ctx = await SecureContext.open({ frame, model: "pii", onProgress, timeoutMs: 120000 });
    const m = ctx.info.model;
    labels = m.labels ?? [];
    $("st-model").textContent = `${m.file} (${(m.size / 1e6).toFixed(1)} MB), sha256 ${m.sha256.slice(0, 16)}…`;
    $("st-tokenizer").textContent = m.tokenizer ? `${m.tokenizer.file}, windows of ${m.tokenizer.maxLength} tokens` : "none";
    $("st-verified").textContent = m.verified ? `verified (SRI + SHA-256), from the ${m.source}` : "not verified";
    $("st-engine").textContent = ctx.info.engine.version;
    $("loading").hidden = true;
    runBtn.disabled = false;
    document.body.dataset.ready = "true";
  } catch (e) {
    showError(e);
  }
}

$("sample").addEventListener("click", () => { note.value = SAMPLE; });
runBtn.addEventListener("click", find);
copyBtn.addEventListener("click", () => navigator.clipboard?.writeText(lastRedacted));
start();
