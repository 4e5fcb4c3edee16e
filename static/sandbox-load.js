// What `init` does: start the engine worker while the model is read from the manifest, the cache
// or the network and verified, then load the graph into the worker from those verified bytes.

import { SandboxError } from "./sandbox-error.js";

/**
 * @param {{
 *   state: import("./sandbox-state.js").SandboxState,
 *   engine: import("./engine-supervisor.js").EngineSupervisor,
 *   models: import("./model-store.js").ModelStore,
 * }} parts
 * @param {string} name the model's name in the manifest
 * @param {(p: import("./model-store.js").Progress) => void} progress
 */
export async function loadModel({ state: s, engine, models }, name, progress) {
  if (s.refusal) throw s.refusal;
  s.set("loading");
  const t0 = performance.now();
  if (s.requireIsolation && !s.sandboxIsolation.crossOriginIsolated) {
    throw new SandboxError("not-isolated", "isolation was required, but the sandbox is not cross-origin isolated");
  }
  progress({ phase: "engine", message: "starting the engine worker" });
  const workerBoot = engine.start(); // in parallel with the download
  workerBoot.catch(() => { /* awaited below */ });

  progress({ phase: "manifest" });
  const entry = await models.entry(name);
  const tm = performance.now();
  const got = await models.load(entry, progress);
  s.modelBytes = got.bytes;
  s.tokenizerFile = got.tokenizer && entry.tokenizer
    ? { bytes: got.tokenizer, maxLength: entry.tokenizer.maxLength, stride: entry.tokenizer.stride }
    : null;
  s.model = {
    name: entry.name, file: entry.file, sha256: entry.sha256, integrity: entry.integrity, size: entry.size,
    encoding: entry.encoding, labels: entry.labels, verified: true, source: got.source,
    ...(entry.preprocess ? { preprocess: entry.preprocess } : {}), ...(entry.postprocess ? { postprocess: entry.postprocess } : {}),
    ...(entry.tokenizer ? { tokenizer: { file: entry.tokenizer.file, sha256: entry.tokenizer.sha256, maxLength: entry.tokenizer.maxLength, stride: entry.tokenizer.stride } } : {}),
  };

  await workerBoot;
  if (s.requireIsolation && !s.workerIsolation?.crossOriginIsolated) {
    throw new SandboxError("not-isolated", "isolation was required, but the engine worker is not cross-origin isolated");
  }
  progress({ phase: "graph" });
  const loaded = await engine.load();
  if (loaded.info.sha256 !== entry.sha256) {
    throw new SandboxError("integrity", `the engine hashed the model as ${loaded.info.sha256}, expected ${entry.sha256}`);
  }
  s.graphInfo = loaded.info;
  s.engineVersion = loaded.engineVersion;
  s.engineBuild = loaded.engineBuild;
  Object.assign(s.loadTimings, {
    manifestMs: tm - t0 + got.timings.lookupMs,
    [got.source === "cache" ? "cacheReadMs" : "downloadMs"]: got.timings.fetchMs,
    verifyMs: got.timings.verifyMs,
    ...loaded.timings,
    totalMs: performance.now() - t0,
  });
  s.set("ready");
}
