// The sandbox's input UIs (draw pad, files, camera, microphone, text) build their DOM with these:
// plain DOM calls, no innerHTML, so nothing for Trusted Types to refuse. One copy for every input
// kind, so the UIs cannot drift apart in how they set properties or report a device refusal.

/**
 * An element with properties (or attributes, for names the element has no property for), a
 * `dataset`, and children.
 * @param {string} tag @param {Record<string, any>} [props] @param {...(Node | string)} children
 * @returns {any}
 */
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k in e) /** @type {any} */ (e)[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

/**
 * Why a camera or microphone cannot be used here, in words the user (and the app's developer)
 * can act on.
 * @param {"camera" | "microphone"} device @param {any} e the getUserMedia error
 */
export function deviceError(device, e) {
  if (e?.name === "NotAllowedError" || e?.name === "SecurityError") {
    return `the ${device} is not allowed in this frame (the app must enable it: iframe allow="${device}"; or the browser or user refused)`;
  }
  if (e?.name === "NotFoundError" || e?.name === "OverconstrainedError") return `no ${device} found`;
  return `cannot open the ${device}: ${e?.message ?? e}`;
}
