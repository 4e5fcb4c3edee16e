// Replaced at build time (web/bundle.mjs) by engine-pool.js bundled into one script, as text: the
// pool workers' code travels inside the engine worker's script, so it is verified with it.
/** @type {string} */
export const POOL_WORKER_SOURCE = "";
