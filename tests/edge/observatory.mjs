// Mozilla HTTP Observatory's scoring, reproduced for one response (mdn/mdn-http-observatory:
// src/scanner/index.js, src/grader/charts.js SCORE_TABLE, src/analyzer/tests/*.js). Score =
// 100 + every modifier; bonuses count only if 100 + the penalties is already >= 90
// (MINIMUM_SCORE_FOR_EXTRA_CREDIT). Grade A+ at >= 100.
//
// The site is graded as deployed (https): the plain-HTTP leg of the redirection test is the
// response to `http://<public host>/` (must be a redirect to https on the same host).

const DANGEROUSLY_BROAD = new Set(["ftp:", "http:", "https:", "*", "http://*", "http://*.*", "https://*", "https://*.*"]);
const UNSAFE_INLINE = new Set(["'unsafe-inline'", "data:"]);
const BROAD_OR_INLINE = new Set([...DANGEROUSLY_BROAD, ...UNSAFE_INLINE]);
const NONCES_HASHES = ["'sha256-", "'sha384-", "'sha512-", "'nonce-"];

/** parseCsp: directives lower-cased; a repeated directive is flagged (duplicate warning). */
export function parseCsp(policies) {
  const csp = new Map();
  let duplicates = false;
  for (const policy of policies) {
    for (const part of policy.split(";")) {
      const tokens = part.trim().split(/\s+/).filter(Boolean);
      if (!tokens.length) continue;
      const name = tokens[0].toLowerCase();
      const values = new Set(tokens.slice(1).map((t) => (t.startsWith("'") ? t.toLowerCase() : t)));
      if (csp.has(name)) { duplicates = true; continue; }
      csp.set(name, values.size ? values : new Set(["'none'"]));
    }
  }
  return { csp, duplicates };
}

function cspTest(headers, https) {
  const raw = headers["content-security-policy"] ?? [];
  if (!raw.length) return { name: "content-security-policy", result: "csp-not-implemented", modifier: -25 };
  const { csp, duplicates } = parseCsp(raw.flatMap((v) => v.split(",")));
  const get = (d) => csp.get(d);
  const objectSrc = get("object-src") ?? get("default-src") ?? new Set(["*"]);
  const scriptSrc = new Set(get("script-src") ?? get("default-src") ?? new Set(["*"]));
  const styleSrc = new Set(get("style-src") ?? get("default-src") ?? new Set(["*"]));
  for (const list of [scriptSrc, styleSrc]) {
    if ([...list].some((s) => NONCES_HASHES.some((n) => s.startsWith(n)))) list.delete("'unsafe-inline'");
  }
  let result = null;
  if (scriptSrc.has("'strict-dynamic'") && ![...scriptSrc].some((s) => NONCES_HASHES.some((n) => s.startsWith(n)))) {
    result = "csp-header-invalid";
  }
  const active = [...csp.entries()].filter(([d]) => !["img-src", "media-src", "script-src"].includes(d)).flatMap(([, v]) => [...v]);
  active.push(...scriptSrc);
  const passive = ["img-src", "media-src"].flatMap((d) => [...(get(d) ?? get("default-src") ?? [])]);
  if ([...scriptSrc].some((s) => BROAD_OR_INLINE.has(s)) || [...objectSrc].some((s) => DANGEROUSLY_BROAD.has(s))) result ??= "csp-implemented-with-unsafe-inline";
  if (https && active.some((s) => s.startsWith("http:") || s.startsWith("ftp:"))) result ??= "csp-implemented-with-insecure-scheme";
  if (new Set([...scriptSrc, ...styleSrc]).has("'unsafe-eval'")) result ??= "csp-implemented-with-unsafe-eval";
  if (https && passive.some((s) => s.startsWith("http:") || s.startsWith("ftp:"))) result ??= "csp-implemented-with-insecure-scheme-in-passive-content-only";
  if ([...styleSrc].some((s) => BROAD_OR_INLINE.has(s))) result ??= "csp-implemented-with-unsafe-inline-in-style-src-only";
  const defaultNone = get("default-src")?.has("'none'") && get("default-src")?.size === 1;
  result ??= defaultNone ? "csp-implemented-with-no-unsafe-default-src-none" : "csp-implemented-with-no-unsafe";
  const frameAncestors = get("frame-ancestors") ?? new Set(["*"]);
  const MODIFIERS = {
    "csp-implemented-with-no-unsafe-default-src-none": 10,
    "csp-implemented-with-no-unsafe": 5,
    "csp-implemented-with-unsafe-inline-in-style-src-only": 0,
    "csp-implemented-with-insecure-scheme-in-passive-content-only": -10,
    "csp-implemented-with-unsafe-eval": -10,
    "csp-implemented-with-unsafe-inline": -20,
    "csp-implemented-with-insecure-scheme": -20,
    "csp-header-invalid": -25,
  };
  return {
    name: "content-security-policy",
    result: duplicates ? "csp-implemented-but-duplicate-directives" : result,
    modifier: MODIFIERS[result],
    antiClickjacking: ![...frameAncestors].some((s) => DANGEROUSLY_BROAD.has(s)),
    duplicates,
  };
}

function cookiesTest(headers) {
  return (headers["set-cookie"] ?? []).length
    ? { name: "cookies", result: "cookies-present-not-graded-here", modifier: -40 }
    : { name: "cookies", result: "cookies-not-found", modifier: 0 };
}

function corsTest(headers) {
  const acao = (headers["access-control-allow-origin"] ?? [])[0];
  if (!acao) return { name: "cross-origin-resource-sharing", result: "cross-origin-resource-sharing-not-implemented", modifier: 0 };
  const creds = (headers["access-control-allow-credentials"] ?? [])[0] === "true";
  return creds
    ? { name: "cross-origin-resource-sharing", result: "cross-origin-resource-sharing-implemented-with-universal-access", modifier: -50 }
    : { name: "cross-origin-resource-sharing", result: "cross-origin-resource-sharing-implemented-with-public-access", modifier: 0 };
}

/** `httpResponse`: the answer to http://<host>/ ; `host`: the public host name. */
function redirectionTest(httpResponse, host) {
  if (!httpResponse) return { name: "redirection", result: "redirection-not-needed-no-http", modifier: 0 };
  const loc = (httpResponse.headers.location ?? [])[0];
  if (![301, 302, 303, 307, 308].includes(httpResponse.status) || !loc) {
    return { name: "redirection", result: "redirection-missing", modifier: -20 };
  }
  const u = new URL(loc, `http://${host}/`);
  if (u.protocol !== "https:") return { name: "redirection", result: "redirection-not-to-https", modifier: -20 };
  if (u.hostname !== host) return { name: "redirection", result: "redirection-off-host-from-http", modifier: -5 };
  return { name: "redirection", result: "redirection-to-https", modifier: 0 };
}

function referrerTest(headers) {
  const raw = headers["referrer-policy"] ?? [];
  if (!raw.length) return { name: "referrer-policy", result: "referrer-policy-not-implemented", modifier: 0 };
  const values = raw.flatMap((v) => v.split(",")).map((v) => v.trim().toLowerCase());
  const VALID = new Set(["no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin", "origin", "origin-when-cross-origin", "unsafe-url", "no-referrer-when-downgrade"]);
  const PRIVATE = new Set(["no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"]);
  const valid = values.filter((v) => VALID.has(v));
  if (!valid.length) return { name: "referrer-policy", result: "referrer-policy-header-invalid", modifier: -5 };
  // The last valid value wins, as in browsers.
  return PRIVATE.has(valid[valid.length - 1])
    ? { name: "referrer-policy", result: "referrer-policy-private", modifier: 5 }
    : { name: "referrer-policy", result: "referrer-policy-unsafe", modifier: -5 };
}

function hstsTest(headers, https) {
  if (!https) return { name: "strict-transport-security", result: "hsts-not-implemented-no-https", modifier: -20 };
  const v = (headers["strict-transport-security"] ?? [])[0];
  if (!v) return { name: "strict-transport-security", result: "hsts-not-implemented", modifier: -20 };
  const m = /(?:^|;)\s*max-age\s*=\s*"?(\d+)"?\s*(?:;|$)/i.exec(v);
  if (!m) return { name: "strict-transport-security", result: "hsts-header-invalid", modifier: -20 };
  return Number(m[1]) >= 15768000
    ? { name: "strict-transport-security", result: "hsts-implemented-max-age-at-least-six-months", modifier: 0 }
    : { name: "strict-transport-security", result: "hsts-implemented-max-age-less-than-six-months", modifier: -10 };
}

function sriTest(headers, body, host) {
  const ct = (headers["content-type"] ?? [""])[0];
  if (!ct.startsWith("text/html")) return { name: "subresource-integrity", result: "sri-not-implemented-response-not-html", modifier: 0 };
  const scripts = [...body.toString("utf8").matchAll(/<script\b([^>]*)>/gi)].map((m) => m[1]);
  const withSrc = scripts.map((a) => ({ src: /\bsrc\s*=\s*["']?([^"'\s>]+)/i.exec(a)?.[1], integrity: /\bintegrity\s*=/i.test(a) })).filter((s) => s.src);
  if (!withSrc.length) return { name: "subresource-integrity", result: "sri-not-implemented-but-no-scripts-loaded", modifier: 0 };
  const sameOrigin = withSrc.every((s) => {
    if (s.src.startsWith("//")) return false;
    try { return new URL(s.src, `https://${host}/`).hostname === host; } catch { return false; }
  });
  const all = withSrc.every((s) => s.integrity);
  if (sameOrigin) {
    return all
      ? { name: "subresource-integrity", result: "sri-implemented-and-all-scripts-loaded-securely", modifier: 5 }
      : { name: "subresource-integrity", result: "sri-not-implemented-but-all-scripts-loaded-from-secure-origin", modifier: 0 };
  }
  const insecure = withSrc.some((s) => s.src.startsWith("http:") || s.src.startsWith("//"));
  if (insecure) return { name: "subresource-integrity", result: all ? "sri-implemented-but-external-scripts-not-loaded-securely" : "sri-not-implemented-and-external-scripts-not-loaded-securely", modifier: all ? -20 : -50 };
  return all
    ? { name: "subresource-integrity", result: "sri-implemented-and-external-scripts-loaded-securely", modifier: 5 }
    : { name: "subresource-integrity", result: "sri-not-implemented-but-external-scripts-loaded-securely", modifier: -5 };
}

function xctoTest(headers) {
  const v = (headers["x-content-type-options"] ?? [])[0];
  if (!v) return { name: "x-content-type-options", result: "x-content-type-options-not-implemented", modifier: -5 };
  return v.trim().toLowerCase() === "nosniff"
    ? { name: "x-content-type-options", result: "x-content-type-options-nosniff", modifier: 0 }
    : { name: "x-content-type-options", result: "x-content-type-options-header-invalid", modifier: -5 };
}

function xfoTest(headers, csp) {
  if (csp.antiClickjacking && (headers["content-security-policy"] ?? []).some((v) => /frame-ancestors/i.test(v))) {
    return { name: "x-frame-options", result: "x-frame-options-implemented-via-csp", modifier: 5 };
  }
  const v = ((headers["x-frame-options"] ?? [])[0] ?? "").trim().toLowerCase();
  if (!v) return { name: "x-frame-options", result: "x-frame-options-not-implemented", modifier: -20 };
  if (v === "deny" || v === "sameorigin") return { name: "x-frame-options", result: "x-frame-options-sameorigin-or-deny", modifier: 0 };
  if (v.startsWith("allow-from")) return { name: "x-frame-options", result: "x-frame-options-allow-from-origin", modifier: 0 };
  return { name: "x-frame-options", result: "x-frame-options-header-invalid", modifier: -20 };
}

function corpTest(headers) {
  const v = ((headers["cross-origin-resource-policy"] ?? [])[0] ?? "").trim().toLowerCase();
  if (!v) return { name: "cross-origin-resource-policy", result: "corp-not-implemented", modifier: 0 };
  if (v === "same-origin") return { name: "cross-origin-resource-policy", result: "corp-implemented-with-same-origin", modifier: 10 };
  if (v === "same-site") return { name: "cross-origin-resource-policy", result: "corp-implemented-with-same-site", modifier: 10 };
  if (v === "cross-origin") return { name: "cross-origin-resource-policy", result: "corp-implemented-with-cross-origin", modifier: 0 };
  return { name: "cross-origin-resource-policy", result: "corp-header-invalid", modifier: -5 };
}

/**
 * @param {{status:number, headers:Record<string,string[]>, body:Buffer}} response  the page, as served over https
 * @param {{status:number, headers:Record<string,string[]>}|null} httpResponse  http://host/ (redirect leg)
 * @param {string} host
 */
export function grade(response, httpResponse, host) {
  if (response.status < 200 || response.status >= 300) throw new Error("Site did not respond with a 2xx HTTP status code.");
  const h = response.headers;
  const csp = cspTest(h, true);
  const tests = [
    csp, cookiesTest(h), corsTest(h), redirectionTest(httpResponse, host), referrerTest(h),
    hstsTest(h, true), sriTest(h, response.body, host), xctoTest(h), xfoTest(h, csp), corpTest(h),
  ];
  let withExtra = 100;
  let uncurved = 100;
  for (const t of tests) {
    withExtra += t.modifier;
    if (t.modifier < 0) uncurved += t.modifier;
  }
  const score = Math.max(uncurved >= 90 ? withExtra : uncurved, 0);
  const grades = [[100, "A+"], [90, "A"], [85, "A-"], [80, "B+"], [70, "B"], [65, "B-"], [60, "C+"], [50, "C"], [45, "C-"], [40, "D+"], [30, "D"], [25, "D-"], [0, "F"]];
  const grade = grades.find(([min]) => Math.min(score - (score % 5), 100) >= min)[1];
  return { score, grade, tests };
}
