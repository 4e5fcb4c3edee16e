// Models in the sandbox: the manifest (fetched with the SRI pin the build wrote into sandbox.js,
// pins.js), the entry, the bytes downloaded with the entry's SRI and re-hashed with WebCrypto
// before use, kept in the Cache API by content hash and re-verified when read (a copy
// that fails is evicted). A text model's tokenizer.json is handled the same way.

import { checkProcessing } from "./processing.js";
import { LIMITS } from "./run-inputs.js";
import { SandboxError } from "./sandbox-error.js";
import { tokenizerSpec } from "./sandbox-text.js";
import { fetchVerified, fetchWithIntegrity, hexToBase64, readBody, sha256Hex } from "./verified-fetch.js";

export const CACHE_NAME = "secure-context-models-v1";
const MAX_MANIFEST_BYTES = 1 << 20;
const ENCODINGS = /** @type {Record<string, string>} */ ({ onnx: "onnx", tflite: "tensorflowlite", tensorflowlite: "tensorflowlite" });

/**
 * @typedef {{
 *   name: string, file: string, sha256: string, integrity: string, size: number, url: string,
 * }} PinnedFile
 * @typedef {PinnedFile & { maxLength: number, stride: number }} TokenizerEntry
 * @typedef {PinnedFile & {
 *   encoding: string, labels?: string[], tokenizer: TokenizerEntry | null,
 *   preprocess?: Record<string, any>, postprocess?: Record<string, any>,
 * }} ModelEntry
 * @typedef {{ phase: string, loaded?: number, total?: number, message?: string }} Progress
 */

export class ModelStore {
  /**
   * @param {import("./sandbox-state.js").SandboxState} state counters and the cache note
   * @param {{ url: string, integrity: string } | null} manifest where the model manifest is and
   *   its SRI string (null: the build pinned none, and no model is read)
   */
  constructor(state, manifest) {
    this.state = state;
    this.manifest = manifest;
  }

  /** @param {string} name @returns {Promise<ModelEntry>} */
  async entry(name) {
    if (!this.manifest) throw new SandboxError("integrity", "this sandbox was built without integrity pins (scripts/build-web writes them): refusing to read the model manifest");
    const { url, integrity } = this.manifest;
    let manifest;
    try {
      const bytes = await fetchVerified(url, integrity, "the model manifest (models/manifest.json)", { maxBytes: MAX_MANIFEST_BYTES });
      manifest = JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      throw new SandboxError(e?.code ?? "manifest", e?.code ? e.message : `the model manifest is not JSON: ${e?.message ?? e}`);
    }
    const entry = manifest?.models?.find?.((/** @type {any} */ m) => m?.name === name);
    if (!entry) throw new SandboxError("not-found", `no model "${name}" in the manifest`);
    const { file, sha256, integrity: sri, size, format } = entry;
    if (typeof file !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(file)) throw new SandboxError("manifest", `model "${name}": bad file name`);
    if (typeof sha256 !== "string" || !/^[0-9a-f]{64}$/.test(sha256)) throw new SandboxError("manifest", `model "${name}": bad sha256`);
    if (sri !== `sha256-${hexToBase64(sha256)}`) throw new SandboxError("manifest", `model "${name}": integrity does not match sha256`);
    if (!Number.isSafeInteger(size) || size <= 0 || size > LIMITS.maxModelBytes) throw new SandboxError("too-large", `model "${name}": size ${size} is outside (0, ${LIMITS.maxModelBytes}]`);
    const encoding = ENCODINGS[format];
    if (!encoding) throw new SandboxError("manifest", `model "${name}": unsupported format ${format}`);
    let tokenizer;
    /** @type {{preprocess?: Record<string, any>, postprocess?: Record<string, any>}} */ const processing = {};
    try {
      tokenizer = tokenizerSpec(entry, url, hexToBase64);
      for (const k of /** @type {const} */ (["preprocess", "postprocess"])) if (entry[k] !== undefined) processing[k] = checkProcessing(k, entry[k]);
    } catch (e) {
      throw new SandboxError("manifest", e.message);
    }
    return {
      tokenizer,
      name,
      file,
      sha256,
      integrity: sri,
      size,
      encoding,
      labels: Array.isArray(entry.labels) ? entry.labels.map(String).slice(0, 4096) : undefined,
      ...processing,
      url: new URL(`./${file}`, url).href,
    };
  }

  /** @param {string} sha256 */
  cacheKey(sha256) {
    return new URL(`./sha256/${sha256}`, /** @type {{ url: string }} */ (this.manifest).url).href;
  }

  async open() {
    try {
      return "caches" in self ? await caches.open(CACHE_NAME) : null;
    } catch (e) {
      this.state.cacheNote = `Cache Storage unavailable: ${e?.message ?? e}`;
      return null;
    }
  }

  /**
   * A cached copy, re-verified; a copy that fails verification is evicted.
   * @param {Cache | null} cache @param {{ sha256: string, size: number }} file
   */
  async cached(cache, file) {
    if (!cache) return null;
    const hit = await cache.match(this.cacheKey(file.sha256));
    if (!hit) return null;
    const bytes = new Uint8Array(await hit.arrayBuffer());
    if (bytes.length === file.size && (await sha256Hex(bytes)) === file.sha256) {
      this.state.counters.cacheHits++;
      return bytes;
    }
    this.state.counters.cacheEvictions++;
    await cache.delete(this.cacheKey(file.sha256));
    return null;
  }

  /**
   * Downloads with SRI, streaming into a buffer of the manifest's size.
   * @param {PinnedFile} file @param {string} what @param {(p: Progress) => void} progress
   */
  async download(file, what, progress) {
    try {
      const res = await fetchWithIntegrity(file.url, file.integrity, what, "the manifest");
      return await readBody(res, what, { size: file.size, progress });
    } catch (e) {
      throw new SandboxError(e?.code ?? "network", e?.message ?? String(e));
    }
  }

  /**
   * The model's (and its tokenizer's) verified bytes, from the cache or the network.
   * @param {ModelEntry} entry @param {(p: Progress) => void} progress
   * @returns {Promise<{ bytes: Uint8Array, source: "cache" | "network", tokenizer: Uint8Array | null,
   *                     timings: { lookupMs: number, fetchMs: number, verifyMs: number } }>}
   */
  async load(entry, progress) {
    const t0 = performance.now();
    const cache = await this.open();
    /** @type {Uint8Array<ArrayBuffer> | null} */ let bytes = await this.cached(cache, entry);
    /** @type {"cache" | "network"} */ let source = "cache";
    const t1 = performance.now();
    if (bytes) {
      progress({ phase: "cache", loaded: bytes.length, total: bytes.length });
    } else {
      source = "network";
      bytes = await this.download(entry, `model "${entry.name}"`, progress);
    }
    const t2 = performance.now();
    progress({ phase: "verify" });
    const digest = await sha256Hex(bytes);
    if (digest !== entry.sha256) {
      throw new SandboxError("integrity", `model "${entry.name}" failed its integrity check: sha256 ${digest}, the manifest pins ${entry.sha256}. Refusing to load it.`);
    }
    if (source === "network" && cache) {
      try {
        await cache.put(this.cacheKey(entry.sha256), new Response(bytes, { headers: { "content-type": "application/octet-stream", "x-sha256": entry.sha256 } }));
      } catch (e) {
        this.state.cacheNote = `not cached: ${e?.message ?? e}`;
      }
    }
    let tokenizer = null;
    if (entry.tokenizer) {
      progress({ phase: "tokenizer" });
      const t = entry.tokenizer;
      /** @type {Uint8Array<ArrayBuffer> | null} */ let tb = await this.cached(cache, t);
      if (!tb) tb = await this.download(t, t.name, () => {});
      if ((await sha256Hex(tb)) !== t.sha256) throw new SandboxError("integrity", `${t.name} failed its integrity check. Refusing to load it.`);
      if (cache) {
        try {
          await cache.put(this.cacheKey(t.sha256), new Response(tb, { headers: { "content-type": "application/json", "x-sha256": t.sha256 } }));
        } catch { /* not cached, still verified */ }
      }
      tokenizer = tb;
    }
    return { bytes, source, tokenizer, timings: { lookupMs: t1 - t0, fetchMs: t2 - t1, verifyMs: performance.now() - t2 } };
  }

  /** Deletes every cached model. */
  async purge() {
    return "caches" in self ? await caches.delete(CACHE_NAME) : false;
  }
}
