/**
 * The body of the worker thread readConfigOffThread starts (src/runtime/read-off-thread.ts): it
 * reads, parses and validates one configuration file and posts the outcome once. The parse of a
 * large file costs this thread's time and heap, never the event loop that serves connections.
 *
 * The message is a ConfigOutcome: the Config as JSON text (a Config holds only strings, numbers,
 * booleans, lists and plain objects; JSON.parse of it costs the parent about half of what the
 * structured-clone algorithm would), or the error as toWire() data, so its class and fields
 * survive the thread boundary.
 */
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { readConfig } from '../config/index.js';
import { LbError, isLbError } from '../errors.js';
import type { ConfigOutcome, ConfigRequest } from './read-off-thread.js';

// A lower CPU priority for this thread alone (on Linux the nice value is per thread, and
// setpriority(0) names the caller): where the parse and the thread that serves share a core, the
// serving thread wins. Nice 10, not 19: at 19 a host busy with other work starves the parse
// past READ_TIMEOUT_MS (seen at load 16 on 2 cores). Raising one's own nice value needs no
// privilege; where it is refused, the parse runs as is.
try {
  setPriority(10);
} catch {
  // Not permitted here (a seccomp profile): the parse still runs off the event loop.
}

const request = workerData as ConfigRequest;
let outcome: ConfigOutcome;
try {
  const { config, hash } = await readConfig(request.file, request.readTokenFile === undefined ? {} : { readTokenFile: request.readTokenFile });
  outcome = { ok: true, config: JSON.stringify(config), hash };
} catch (error) {
  const known = isLbError(error) ? error : new LbError('LB_ERR_INTERNAL', `internal error: ${error instanceof Error ? error.message : String(error)}`);
  outcome = { ok: false, error: known.toWire() };
}
parentPort?.postMessage(outcome);
