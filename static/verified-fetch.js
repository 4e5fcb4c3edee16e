// Fetching bytes that must be exactly the ones pinned: `fetch(url, {integrity})` (the browser
// checks the bytes against the SRI string before handing any of them over, from the network or
// from its HTTP cache alike), then, where the caller has a SHA-256 to hold them to, WebCrypto
// once more. A mismatch is an `integrity` error that names the file and both hashes, told apart
// from a network failure (fetch() throws the same TypeError for both).
// Used by the sandbox (models, tokenizers, the model manifest, the worker's script) and by the
// engine worker (the engines' core wasm).

/**
 * @typedef {(p: { phase: string, loaded: number, total: number }) => void} OnProgress
 */

/** @param {string} code @param {string} message */
function failure(code, message) {
  return Object.assign(new Error(message), { code });
}

/** @param {Uint8Array | ArrayBuffer} bytes @returns {Promise<string>} lower-case hex */
export async function sha256Hex(bytes) {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", /** @type {BufferSource} */ (bytes)));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** @param {string} hex @returns {string} */
export function hexToBase64(hex) {
  let s = "";
  for (let i = 0; i < hex.length; i += 2) s += String.fromCharCode(parseInt(hex.slice(i, i + 2), 16));
  return btoa(s);
}

/** The SRI string of a SHA-256 given in hex. @param {string} hex */
export function sri(hex) {
  return `sha256-${hexToBase64(hex)}`;
}

/** The SHA-256 an SRI string pins, in hex (null for anything but one sha256 value). @param {string} integrity */
export function sriToHex(integrity) {
  const m = /^sha256-([A-Za-z0-9+/]{43}=)$/.exec(integrity);
  if (!m) return null;
  return Array.from(atob(m[1]), (c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");
}

/** Same-origin only, never a credential of another site; `no-cache`: revalidated, SRI-checked either way. */
const INIT = /** @type {const} */ ({ cache: "no-cache", credentials: "same-origin", mode: "same-origin" });

/**
 * fetch() with SRI; on failure, an `integrity` error when the server did send other bytes, else
 * a `network` error. The second fetch (without SRI) only tells the two apart: its bytes are
 * hashed and dropped, never used.
 * @param {string} url
 * @param {string} integrity
 * @param {string} what how the error names the file, e.g. `model "digits"`
 * @param {string} [pinnedBy] who pinned the hash, for the error: "the build", "the manifest"
 * @returns {Promise<Response>}
 */
export async function fetchWithIntegrity(url, integrity, what, pinnedBy = "the build") {
  let res;
  try {
    res = await fetch(url, { ...INIT, integrity });
  } catch (e) {
    let got = null;
    try {
      const again = await fetch(url, { ...INIT, cache: "no-store" });
      if (again.ok) got = await sha256Hex(await again.arrayBuffer());
    } catch { /* network failure */ }
    const want = sriToHex(integrity);
    if (got !== null && got !== want) {
      throw failure("integrity", `${what} failed its integrity check: the server sent bytes with sha256 ${got}, ${pinnedBy} pins ${want ?? integrity}. Refusing to load it.`);
    }
    throw failure("network", `cannot download ${what}: ${e?.message ?? e}`);
  }
  if (!res.ok) throw failure("network", `cannot download ${what} (HTTP ${res.status})`);
  return res;
}

/**
 * The whole body of a verified response, at most `size` bytes (exactly `size` when given),
 * with progress.
 * @param {Response} res @param {string} what
 * @param {{ size?: number, maxBytes?: number, progress?: OnProgress }} [opts]
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
export async function readBody(res, what, { size, maxBytes, progress } = {}) {
  if (size === undefined) {
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (maxBytes !== undefined && bytes.length > maxBytes) throw failure("too-large", `${what} is over ${maxBytes} bytes`);
    return bytes;
  }
  const bytes = new Uint8Array(size);
  let loaded = 0;
  let last = 0;
  progress?.({ phase: "download", loaded, total: size });
  const reader = /** @type {ReadableStream<Uint8Array>} */ (res.body).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > size) {
      await reader.cancel();
      throw failure("integrity", `${what} is larger than the manifest's ${size} bytes`);
    }
    bytes.set(value, loaded);
    loaded += value.length;
    const now = performance.now();
    if (now - last > 50) {
      progress?.({ phase: "download", loaded, total: size });
      last = now;
    }
  }
  if (loaded !== size) throw failure("integrity", `${what} is ${loaded} bytes, the manifest says ${size}`);
  progress?.({ phase: "download", loaded, total: size });
  return bytes;
}

/**
 * Bytes pinned by an SRI string, re-hashed with WebCrypto when `sha256` is given.
 * @param {string} url @param {string} integrity @param {string} what
 * @param {{ sha256?: string, size?: number, maxBytes?: number, progress?: OnProgress, pinnedBy?: string }} [opts]
 */
export async function fetchVerified(url, integrity, what, opts = {}) {
  const pinnedBy = opts.pinnedBy ?? "the build";
  const res = await fetchWithIntegrity(url, integrity, what, pinnedBy);
  const bytes = await readBody(res, what, opts);
  if (opts.sha256 !== undefined) {
    const digest = await sha256Hex(bytes);
    if (digest !== opts.sha256) {
      throw failure("integrity", `${what} failed its integrity check: sha256 ${digest}, ${pinnedBy} pins ${opts.sha256}. Refusing to load it.`);
    }
  }
  return bytes;
}
