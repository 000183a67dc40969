/**
 * The process lifecycle of `l4lb run`, written once (signals, reload, drain, stop), the Runtime
 * interface it drives, and the runtime of one process. A cluster primary's runtime is in
 * src/cluster.
 */
export { DRAIN_PROGRESS_MS, flushLogger, runLifecycle, type LifecycleOptions, type SignalSource } from './lifecycle.js';
export type { Listening, ReloadOutcome, Runtime, StopReason } from './runtime.js';
export {
  ADMIN_SOCKET,
  closeHandle,
  handleFd,
  InheritedSockets,
  listeningFd,
  listeningHandle,
  reportFailure,
  reportReady,
  startSuccessor,
  UPGRADE_TIMEOUT_MS,
  type HandedSocket,
  type HandoverSockets,
  type StartSuccessor,
} from './handover.js';
export { largestDrain, workerCount } from './settings.js';
export { readConfigForReload, readConfigOffThread, IN_THREAD_MAX_BYTES, READ_MEMORY_MB, READ_TIMEOUT_MS, type ConfigReader, type OffThreadOptions } from './read-off-thread.js';
export { startSingleProcess } from './single.js';
