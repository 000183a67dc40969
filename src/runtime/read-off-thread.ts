/**
 * Reading a configuration for a reload off the event loop: the file is read, parsed and validated
 * (src/config readConfig, with its limits) in a worker thread started for that one read, and
 * only the validated Config comes back. While the worker works, the balancer's thread serves
 * connections as before; a refused file costs it nothing but the refusal's log line.
 *
 * Bounds beside the config limits, for what they cannot foresee: the worker's heap is capped
 * (resourceLimits, so a file that expands past the cap kills the worker, not the balancer) and
 * its time is capped (the worker is terminated). Both refuse the file with one line. A stop
 * aborts the read (the worker is terminated) so a drain never waits for a parse.
 *
 * The worker starts fresh each time (about 30 ms of start-up, and its heap is released when it
 * exits): a reload is rare, and no memory a huge file took stays in the process afterwards.
 */
import { stat } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { systemClock, type Clock } from '../clock.js';
import { ConfigError, readConfig, type Config, type LoadedConfig } from '../config/index.js';
import { ClosedError, LbError, fromWire, isLbErrorWire, type LbErrorWire } from '../errors.js';

/** What the worker is asked (its workerData). */
export interface ConfigRequest {
  readonly file: string;
  readonly readTokenFile?: boolean;
}

/** What the worker posts, once. */
export type ConfigOutcome = { readonly ok: true; readonly config: string; readonly hash: string } | { readonly ok: false; readonly error: LbErrorWire };

/** The worker's heap cap: four times what the largest file the limits admit needs. */
export const READ_MEMORY_MB = 1024;
/** How long a read may take before the worker is terminated and the file refused. */
export const READ_TIMEOUT_MS = 60_000;

export interface OffThreadOptions {
  /** Read `admin.tokenFile` (default true), as readConfig. */
  readonly readTokenFile?: boolean;
  /** Terminates the worker; the read rejects with ClosedError. */
  readonly signal?: AbortSignal;
  /** Times READ_TIMEOUT_MS (default: the system clock). */
  readonly clock?: Clock;
  readonly timeoutMs?: number;
  readonly memoryMb?: number;
}

/** A reader of configuration files, as the lifecycle takes it (injected so tests can read in-thread). */
export type ConfigReader = (file: string, signal: AbortSignal) => Promise<LoadedConfig>;

/**
 * Resolves as readConfig(file) would, computed in a worker thread. Rejects with the worker's
 * error rebuilt (ConfigError with its file and issues, ResolveError…), with a ConfigError when the
 * worker ran out of heap or time, or with ClosedError when `signal` aborted it.
 */
/**
 * Files up to this size are read on the event loop: parsing 64 KiB of YAML takes milliseconds,
 * while starting a worker and loading the parser in it costs about a second of CPU (1–1.6 s measured
 * at load 12 on 2 cores), which a busy host then takes from the connections being served.
 */
export const IN_THREAD_MAX_BYTES = 64 * 1024;

/**
 * Reads `file` as readConfigOffThread does, but a small file in this thread (IN_THREAD_MAX_BYTES):
 * the limits and errors are the same, only where the work runs differs.
 */
export async function readConfigForReload(file: string, options: OffThreadOptions = {}): Promise<LoadedConfig> {
  let size: number | undefined;
  try {
    size = (await stat(file)).size;
  } catch {
    size = undefined; // the reader reports a missing or unreadable file with its own words
  }
  if (size !== undefined && size <= IN_THREAD_MAX_BYTES) {
    return readConfig(file, options.readTokenFile === undefined ? {} : { readTokenFile: options.readTokenFile });
  }
  return readConfigOffThread(file, options);
}

export function readConfigOffThread(file: string, options: OffThreadOptions = {}): Promise<LoadedConfig> {
  const clock = options.clock ?? systemClock;
  const memoryMb = options.memoryMb ?? READ_MEMORY_MB;
  const timeoutMs = options.timeoutMs ?? READ_TIMEOUT_MS;
  const request: ConfigRequest = options.readTokenFile === undefined ? { file } : { file, readTokenFile: options.readTokenFile };
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted === true) {
      reject(new ClosedError({ component: 'config reader' }, 'the configuration was not read: l4lb is stopping'));
      return;
    }
    const worker = new Worker(new URL('./config-worker.js', import.meta.url), {
      workerData: request,
      resourceLimits: { maxOldGenerationSizeMb: memoryMb },
    });
    let settled = false;
    const settle = (outcome: { config: LoadedConfig } | { error: LbError }): void => {
      if (settled) return;
      settled = true;
      clock.clearTimer(timer);
      options.signal?.removeEventListener('abort', abort);
      void worker.terminate();
      if ('config' in outcome) resolve(outcome.config);
      else reject(outcome.error);
    };
    const refuse = (message: string): void => settle({ error: new ConfigError(file, [{ path: '', message }]) });
    const timer = clock.setTimeout(() => refuse(`checking the file took more than ${timeoutMs / 1000} s: refused (see "Limits" in docs/configuration.md)`), timeoutMs);
    const abort = (): void => settle({ error: new ClosedError({ component: 'config reader' }, 'the configuration was not read: l4lb is stopping') });
    options.signal?.addEventListener('abort', abort, { once: true });
    worker.on('message', (message: unknown) => {
      const outcome = message as ConfigOutcome;
      if (outcome.ok) {
        settle({ config: { config: JSON.parse(outcome.config) as Config, hash: outcome.hash } });
        return;
      }
      settle({ error: isLbErrorWire(outcome.error) ? fromWire(outcome.error) : new LbError('LB_ERR_INTERNAL', 'internal error: the configuration reader sent an error l4lb does not know') });
    });
    worker.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ERR_WORKER_OUT_OF_MEMORY') refuse(`checking the file needed more than ${memoryMb} MB of memory: refused (see "Limits" in docs/configuration.md)`);
      else settle({ error: new LbError('LB_ERR_INTERNAL', `internal error: the configuration reader failed: ${error.message}`) });
    });
    worker.on('exit', (code) => settle({ error: new LbError('LB_ERR_INTERNAL', `internal error: the configuration reader exited (code ${code}) without an answer`) }));
  });
}
