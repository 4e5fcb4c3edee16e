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

/**
 * The note under a one-shot input (a file, the draw pad, a text): what stays in the sandbox and
 * what may leave it. @param {string} what e.g. "Your image" @param {boolean} reporting
 */
export function keptNote(what, reporting) {
  return el("p", { className: "in-note" },
    reporting
      ? `${what} stays in this sandbox; only the model's output goes to the app, when you press Send.`
      : `${what} stays in this sandbox; nothing is sent to the app.`);
}

/**
 * Calls `use` with each file the user picks; the picker is emptied at once, so the same file can
 * be picked again and no reference to it is kept. @param {HTMLInputElement} pick
 * @param {(file: File) => void} use
 */
export function onPick(pick, use) {
  pick.addEventListener("change", () => {
    const file = pick.files?.[0];
    pick.value = "";
    if (file) use(file);
  });
}

/**
 * How a one-shot input runs and sends, the same for every kind: runs go one at a time; the last
 * run's result is held until the user presses Send (then it is gone) or a new run replaces it;
 * nothing is sent without `send` (report: false). The box's data attributes (state, runs, sent)
 * are what the tests read.
 * @param {HTMLElement} box
 * @param {((...result: any[]) => void) | null} send
 */
export function oneShot(box, send) {
  /** @type {any[] | null} */ let held = null;
  const button = el("button", { type: "button", className: "in-btn in-primary", dataset: { role: "send" }, disabled: true }, "Send to the app");
  const drop = () => { held = null; button.disabled = true; };
  button.addEventListener("click", () => {
    if (!held || !send) return;
    send(...held);
    drop();
    box.dataset.sent = String(Number(box.dataset.sent ?? 0) + 1);
  });
  let busy = Promise.resolve();
  return {
    /** The Send row to append to the box, or null when nothing may be sent. */
    sendRow: send ? el("div", { className: "in-row" }, button) : null,
    /** Forgets the held result (e.g. the pad was cleared). */
    drop,
    /**
     * Queues one run. @param {() => Promise<any[]>} work shows its result and returns what Send
     * posts @param {(e: any) => void} failed shows why it failed
     */
    run(work, failed) {
      busy = busy.then(async () => {
        box.dataset.state = "running";
        drop();
        try {
          const result = await work();
          held = result;
          button.disabled = false;
          box.dataset.state = "done";
          box.dataset.runs = String(Number(box.dataset.runs ?? 0) + 1);
        } catch (e) {
          failed(e);
          box.dataset.state = "error";
        }
      });
    },
  };
}
