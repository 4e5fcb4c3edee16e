// The engine worker, supervised from the sandbox document: started, fed, timed out, cancelled
// and restarted from here; and the page's direct port to it (run-port.js has the why and the
// protocol). Runs on the port skip this document; it still times them out, counts them and
// restarts the worker.
//
// Sandbox -> page about the port: {type: "port", id: 0} with the port in event.ports once a graph
// is loaded (again after every restart), {type: "port-closed", id: 0, running, code, message,
// retry} when the worker is stopped: the run `running` failed with `code`; with retry the page
// sends its other unanswered port runs again (through this document until the next port comes).

import { PortWatch } from "./run-port.js";
import { SandboxError } from "./sandbox-error.js";

/**
 * @typedef {(origin: string, msg: object, transfer?: Transferable[]) => void} Reply
 * @typedef {() => Promise<Worker>} Spawn  starts a worker running the engine (verified-load.js)
 * @typedef {{ code: string, message: string, retry: boolean }} StopReason
 * @typedef {{ resolve: (v: any) => void, reject: (e: any) => void, timer: any }} Pending
 * @typedef {(() => Promise<void>) & { reject?: (e: any) => void }} Task
 */

export class EngineSupervisor {
  /** @type {Worker | null} */ worker = null;
  /** @type {Promise<void> | null} */ booted = null;
  /** @type {Map<number, Pending>} */ pending = new Map();
  /** @type {Task[]} */ queue = [];
  /** @type {Promise<any> | null} */ loading = null;
  busy = false;
  nextId = 1;
  generation = 0;

  /**
   * @param {import("./sandbox-state.js").SandboxState} state
   * @param {Reply} reply
   * @param {Spawn} spawn
   */
  constructor(state, reply, spawn) {
    this.state = state;
    this.spawn = spawn;
    this.direct = new DirectPort(this, state, reply);
  }

  start() {
    if (this.booted) return this.booted;
    const gen = ++this.generation;
    this.state.counters.workerStarts++;
    this.booted = (async () => {
      let w;
      try {
        w = await this.spawn();
      } catch (e) {
        throw e?.code ? e : new SandboxError("engine-load", `the engine worker failed to start: ${e?.message ?? e}`);
      }
      if (gen !== this.generation) {
        w.terminate();
        throw new SandboxError("cancelled", "the engine was restarted");
      }
      this.worker = w;
      w.addEventListener("message", (ev) => this.onMessage(ev.data));
      await new Promise((resolve, reject) => {
        const onBoot = (/** @type {MessageEvent} */ ev) => {
          if (ev.data?.type !== "boot") return;
          w.removeEventListener("message", onBoot);
          this.state.workerIsolation = {
            crossOriginIsolated: ev.data.isolation?.crossOriginIsolated === true,
            sharedArrayBuffer: ev.data.isolation?.sharedArrayBuffer === true,
          };
          resolve(undefined);
        };
        w.addEventListener("message", onBoot);
        w.addEventListener("error", (ev) => {
          ev.preventDefault?.();
          reject(new SandboxError("engine-load", `the engine worker failed to start: ${ev.message || "script error"}`));
          if (gen === this.generation) this.fail(new SandboxError("worker-error", `the engine worker crashed: ${ev.message || "error"}`));
        });
      });
    })();
    return this.booted;
  }

  /** @param {any} msg */
  onMessage(msg) {
    if (!msg || typeof msg !== "object" || msg.type === "boot") return;
    if (msg.type === "port-run" || msg.type === "port-done") return this.direct.onWorker(msg);
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.type === "error") {
      const err = new SandboxError(String(msg.code), String(msg.message));
      p.reject(err);
      if (msg.fatal) this.restart();
    } else {
      p.resolve(msg);
    }
  }

  /**
   * Sends one request; with a timeout, the worker is restarted when it expires.
   * @param {object} body @param {Transferable[]} transfer @param {number} ms
   * @returns {Promise<any>}
   */
  request(body, transfer, ms) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = ms
        ? setTimeout(() => {
            if (!this.pending.has(id)) return;
            this.pending.delete(id);
            this.state.counters.timeouts++;
            reject(new SandboxError("timeout", `no answer within ${ms} ms; the engine was stopped and restarted`));
            this.restart();
          }, ms)
        : 0;
      this.pending.set(id, { resolve, reject, timer });
      /** @type {Worker} */ (this.worker).postMessage({ ...body, id }, transfer);
    });
  }

  /** Starts the worker if needed and loads the graph from the verified bytes in memory. */
  load() {
    const s = this.state;
    const p = (async () => {
      await this.start();
      const copy = /** @type {Uint8Array} */ (s.modelBytes).slice(); // keep ours for restarts
      const loaded = await this.request({ type: "load", bytes: copy.buffer, encoding: s.model?.encoding }, [copy.buffer], Math.max(s.timeoutMs, 60000));
      if (s.tokenizerFile) await this.loadTokenizer();
      return loaded;
    })();
    this.loading = p;
    p.then(() => { if (this.loading === p) this.direct.offer(); }, () => { if (this.loading === p) this.loading = null; });
    return p;
  }

  /** A text model's tokenizer into the worker (after every (re)start, with the graph). */
  loadTokenizer() {
    const t = /** @type {import("./sandbox-state.js").TokenizerFile} */ (this.state.tokenizerFile);
    const copy = t.bytes.slice();
    return this.request({ type: "load-tokenizer", bytes: copy.buffer, maxLength: t.maxLength, stride: t.stride },
      [copy.buffer], Math.max(this.state.timeoutMs, 60000));
  }

  /** Text in, outputs and windows out, queued like `run`. @param {string} text */
  runText(text) {
    return this.enqueue(() => this.request({ type: "run-text", text }, [], this.state.timeoutMs));
  }

  /**
   * Runs are serialized: the timeout covers the computation, not the wait in the queue.
   * @param {{ name: string, shape: number[], data: Float32Array }[]} inputs
   */
  run(inputs) {
    return this.enqueue(() => this.request({ type: "run", inputs }, [], this.state.timeoutMs));
  }

  /** @param {() => Promise<any>} send @returns {Promise<any>} */
  enqueue(send) {
    return new Promise((resolve, reject) => {
      /** @type {Task} */
      const task = async () => {
        try {
          await this.ready();
          resolve(await send());
        } catch (e) {
          reject(e);
        } finally {
          this.busy = false;
          this.next();
        }
      };
      task.reject = reject;
      this.queue.push(task);
      this.next();
    });
  }

  next() {
    if (this.busy || this.queue.length === 0) return;
    this.busy = true;
    /** @type {Task} */ (this.queue.shift())();
  }

  /** After a restart the graph has to be loaded again before the next run. */
  ready() {
    return this.loading ?? this.load();
  }

  /**
   * Terminate and start afresh (graph reloaded from the verified bytes in memory).
   * @param {StopReason} [reason]
   */
  restart(reason = undefined) {
    this.kill(reason);
    this.state.counters.workerRestarts++;
    this.state.render();
    if (this.state.modelBytes && this.state.state === "ready") this.load().catch(() => { /* reported by the next run */ });
  }

  /** @param {StopReason} [reason] told to the page's port */
  kill(reason = { code: "cancelled", message: "the engine was restarted", retry: true }) {
    this.direct.closed(reason);
    this.generation++;
    this.worker?.terminate();
    this.worker = null;
    this.booted = null;
    this.loading = null;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new SandboxError("cancelled", "the engine was restarted"));
    }
    this.pending.clear();
  }

  /** @param {SandboxError} err */
  fail(err) {
    this.direct.closed({ code: err.code, message: err.message, retry: false });
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.worker?.terminate();
    this.worker = null;
    this.booted = null;
    this.loading = null;
  }

  cancelAll() {
    const queued = this.queue.splice(0);
    for (const t of queued) t.reject?.(new SandboxError("cancelled", "cancelled"));
    const running = [...this.pending.keys()].length + (this.direct.runningId() !== null ? 1 : 0);
    if (running > 0) {
      for (const [, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new SandboxError("cancelled", "cancelled"));
      }
      this.pending.clear();
      this.restart({ code: "cancelled", message: "cancelled", retry: false });
    }
    return queued.length + running;
  }

  stop() {
    this.queue.splice(0).forEach((t) => t.reject?.(new SandboxError("closed", "the sandbox was closed")));
    this.kill({ code: "closed", message: "the sandbox was closed", retry: false });
    this.direct.origin = null;
  }
}

/**
 * The page's direct port to the worker: offered, supervised, closed.
 *
 * Supervision of its runs: with a PortWatch (cross-origin isolated: always, where the runtime runs
 * threaded), a watchdog timer reads the counters the worker keeps: when it fires and a run is in
 * progress, the run is stopped (worker restarted) if it started timeoutMs or more ago, else the
 * timer is set for that run's deadline; with no run in progress it is set timeoutMs ahead (a run
 * that starts meanwhile cannot be due before). So a port run is stopped once it has run timeoutMs
 * (measured from its start in the worker), as soon as this document's timers run, and never
 * before; the same as with the per-run messages, whose timer started only when the notice
 * arrived. The watchdog wakes once per timeoutMs however many runs go by. Without
 * SharedArrayBuffer the worker sends port-run/port-done and each run gets its own timer.
 */
class DirectPort {
  /** @type {string | null} the parent's checked origin, once init succeeded */ origin = null;
  /** a port is out for the current worker */ offered = false;
  /** @type {{ id: number, timer: any } | null} message mode: the run in progress */ running = null;
  /** @type {PortWatch | null} the counters shared with the current worker */ watch = null;
  /** @type {any} the watchdog's timer */ watchdog = 0;
  /** the watch's ok runs already added to counters.runs */ okSeen = 0;

  /**
   * @param {EngineSupervisor} engine
   * @param {import("./sandbox-state.js").SandboxState} state
   * @param {Reply} reply
   */
  constructor(engine, state, reply) {
    this.engine = engine;
    this.state = state;
    this.reply = reply;
  }

  /** A port for the current worker, unless one is out or the engine is the user's (input mode). */
  offer() {
    const w = this.engine.worker;
    if (!this.origin || !w || this.offered || this.state.state !== "ready" || this.state.privateRuns) return;
    const ch = new MessageChannel();
    this.watch = PortWatch.available() ? new PortWatch() : null;
    this.okSeen = 0;
    w.postMessage({ type: "port", port: ch.port1, ...(this.watch ? { watch: this.watch.share() } : {}) }, [ch.port1]);
    this.reply(this.origin, { type: "port", id: 0 }, [ch.port2]);
    this.offered = true;
    if (this.watch) this.arm(this.state.timeoutMs);
  }

  /** @param {number} ms */
  arm(ms) {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => this.check(), Math.max(0, ms));
  }

  /** The watchdog (PortWatch mode). */
  check() {
    if (!this.watch || !this.offered) return;
    const s = this.state;
    const run = this.watch.running();
    if (!run) return this.arm(s.timeoutMs);
    const left = run.startedAt + s.timeoutMs - performance.now();
    if (left > 0) return this.arm(left);
    s.counters.timeouts++;
    this.engine.restart({ code: "timeout", message: `no answer within ${s.timeoutMs} ms; the engine was stopped and restarted`, retry: true });
  }

  /** The id of the port run in progress, or null. */
  runningId() {
    return this.running?.id ?? this.watch?.running()?.id ?? null;
  }

  /** Adds the runs the worker finished ok since last time to counters.runs (PortWatch mode). */
  sync() {
    if (!this.watch) return;
    const ok = this.watch.ok();
    this.state.counters.runs += ok - this.okSeen;
    this.okSeen = ok;
  }

  /** @param {any} msg port-run or port-done, from the worker */
  onWorker(msg) {
    const s = this.state;
    if (msg.type === "port-run") {
      if (this.watch) return; // the worker keeps the watch; a stray notice changes nothing
      const id = msg.id;
      this.running = {
        id,
        timer: setTimeout(() => {
          if (this.running?.id !== id) return;
          s.counters.timeouts++;
          this.engine.restart({ code: "timeout", message: `no answer within ${s.timeoutMs} ms; the engine was stopped and restarted`, retry: true });
        }, s.timeoutMs),
      };
      return;
    }
    if (this.running && this.running.id === msg.id) clearTimeout(this.running.timer);
    if (msg.outcome === "ok") s.counters.runs++;
    else if (msg.outcome === "rejected") s.counters.rejected++;
    else s.counters.errors++;
    s.render();
    if (msg.fatal) {
      // The run that failed is the one `port-closed` names: the page fails it, not sends it again.
      this.running = { id: msg.id, timer: 0 };
      this.engine.restart({ code: String(msg.code), message: String(msg.message), retry: true });
    }
    this.running = null;
  }

  /** The worker is going away: the page's port dies with it. @param {StopReason} reason */
  closed(reason) {
    if (this.running) clearTimeout(this.running.timer);
    clearTimeout(this.watchdog);
    const running = this.runningId();
    this.sync();
    if (this.offered && this.origin) {
      this.reply(this.origin, { type: "port-closed", id: 0, running, ...reason });
    }
    this.running = null;
    this.watch = null;
    this.offered = false;
  }
}
