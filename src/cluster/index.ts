/**
 * `workers: N > 1`: the primary's runtime (health decided once, workers forked and kept), and what
 * a forked worker runs.
 */
export { startCluster } from './runtime.js';
export { runWorker, WORKER_SLOT_ENV } from './worker.js';
