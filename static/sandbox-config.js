// Who may talk to the sandbox: read once, from the document's URL and the browser, at start.
//
// Messages are accepted only from window.parent at an origin in the allowlist: this document's
// own origin, plus the origins in the `parents` query parameter (comma-separated; `*` and `null`
// are refused). Where the browser says who the parent is (location.ancestorOrigins), that origin
// must be in the allowlist too. A bad configuration is not fatal to the document: the sandbox
// shows it, drops every message and never says hello.

import { SandboxError } from "./sandbox-error.js";

/**
 * @typedef {{
 *   allowed: Set<string>,
 *   ancestor: string | null,
 *   error: SandboxError | null,
 * }} SandboxConfig
 *   allowed: origins whose messages are read; ancestor: the parent's origin when the browser
 *   tells (Chromium, WebKit); error: why this sandbox refuses to work, or null
 */

/** @param {Location} loc @returns {Set<string>} */
export function parseAllowlist(loc) {
  const allowed = new Set([loc.origin]);
  const params = new URL(loc.href).searchParams;
  for (const raw of params.getAll("parents").flatMap((v) => v.split(","))) {
    const o = raw.trim();
    if (!o) continue;
    if (o === "*" || o === "null") throw new SandboxError("config", `parents: "${o}" is not allowed; list exact origins`);
    let u;
    try {
      u = new URL(o);
    } catch {
      throw new SandboxError("config", `parents: "${o}" is not an origin`);
    }
    if ((u.protocol !== "https:" && u.protocol !== "http:") || u.origin !== o) {
      throw new SandboxError("config", `parents: "${o}" is not a serialized http(s) origin (like https://example.com)`);
    }
    allowed.add(o);
  }
  return allowed;
}

/** @param {Window} win @returns {SandboxConfig} */
export function readConfig(win) {
  const loc = win.location;
  let error = null;
  /** @type {Set<string>} */ let allowed = new Set();
  try {
    allowed = parseAllowlist(loc);
  } catch (e) {
    error = e;
  }
  const ancestor = loc.ancestorOrigins?.length ? loc.ancestorOrigins[0] : null;
  if (!error && win.parent === win) {
    error = new SandboxError("config", "this document only works inside an iframe");
  } else if (!error && ancestor !== null && !allowed.has(ancestor)) {
    error = new SandboxError("config", `embedded by ${ancestor}, which is not an allowed parent`);
  }
  return { allowed, ancestor, error };
}
