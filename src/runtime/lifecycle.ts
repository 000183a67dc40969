/**
 * The lifecycle of `l4lb run`, written once for every runtime: the admin API, the signals as
 * HAProxy's master process reads them, reloads from the file, the drain and the log lines.
 *
 * - SIGTERM or SIGINT: stop accepting and let open connections finish for up to the largest
 *   `timeouts.drain`, then exit 0; a second one ends them at once.
 * - SIGHUP: re-read the file and, if it is valid, apply it without refusing a connection; if not,
 *   keep running the previous configuration and log every problem. A SIGHUP that arrives while a
 *   reload is in progress is coalesced: once that reload ends, the file is read once more,
 *   however many SIGHUPs came meanwhile (the last write of the file is what counts).
 * - SIGUSR1: reopen the log files (the access log) at their paths, after logrotate moved them
 *   (nginx's USR1); with workers the primary forwards it to each worker, which reopens its own.
 * - 'listening' lines are written only once every signal is handled: whoever waits for them may
 *   signal at once.
 */
import type { Logger } from 'pino';
import { startAdmin, type AdminServer } from '../admin/index.js';
import { loadConfig, type Config } from '../config/index.js';
import { isLbError, problemsOf } from '../errors.js';
import { formatAddress, reopenLogFiles } from '../proxy/index.js';
import type { Runtime } from './runtime.js';
import { largestDrain, workerCount } from './settings.js';

export interface LifecycleOptions {
  /** The configuration file SIGHUP re-reads. */
  readonly file: string;
  /** The configuration `runtime` was started on. */
  readonly config: Config;
  readonly runtime: Runtime;
  readonly logger: Logger;
  /** Ends the process (after a stop: 0, the logger flushed). Injected so tests and embedders can keep it. */
  readonly exit: (code: number) => void;
  /** Start-up failure after the runtime started (the admin port taken): the runtime is stopped first. */
  readonly fail: (error: unknown) => never;
  /** Where SIGTERM, SIGINT and SIGHUP come from: the process, or what a test emits. */
  readonly signals?: SignalSource;
}

/** The part of `process` the lifecycle listens on. */
export interface SignalSource {
  on(signal: 'SIGTERM' | 'SIGINT' | 'SIGHUP' | 'SIGUSR1', listener: (signal: NodeJS.Signals) => void): unknown;
}

/** Resolves once everything the logger buffered is written. */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}

/** Starts the admin API (if configured), installs the signal handlers and logs what listens. */
export async function runLifecycle(options: LifecycleOptions): Promise<void> {
  const { file, runtime, logger } = options;
  let config = options.config;
  const fields = runtime.logFields;

  let admin: AdminServer | undefined;
  if (config.admin !== undefined) {
    try {
      admin = await startAdmin(runtime.admin, { listen: config.admin.listen, token: config.admin.token, metricsPublic: config.admin.metricsPublic, logger });
    } catch (error) {
      await runtime.stop(0);
      await runtime.stopped();
      options.fail(error);
    }
  }

  let stopping = false;

  const reloadOnce = async (): Promise<void> => {
    let next: Config;
    try {
      next = await loadConfig(file);
      if (stopping) {
        logger.info({ file }, 'reload abandoned: stopping');
        return;
      }
      const outcome = await runtime.reload(next, config);
      admin?.setToken(next.admin?.token);
      admin?.setMetricsPublic(next.admin?.metricsPublic === true);
      if (outcome === 'partial') {
        config = next;
        return;
      }
    } catch (error) {
      if (stopping) logger.info({ file }, 'reload abandoned: stopping');
      else logger.warn({ file, code: isLbError(error) ? error.code : 'LB_ERR_INTERNAL', problems: problemsOf(error) }, 'reload refused: still running the previous configuration');
      return;
    }
    if (JSON.stringify(next.admin?.listen) !== JSON.stringify(config.admin?.listen)) {
      logger.warn({ file }, 'admin.listen changed: the admin API keeps its address until l4lb restarts');
    }
    if (workerCount(next.workers) !== runtime.workers) {
      logger.warn({ file, workers: runtime.workers, configured: workerCount(next.workers) }, 'workers changed: the number of workers changes when l4lb restarts');
    }
    config = next;
    logger.info({ file, ...fields }, 'reloaded');
  };

  /** The reload in progress (settled when none), and whether another SIGHUP came during it. */
  let reloading: Promise<void> = Promise.resolve();
  let inProgress = false;
  let again = false;
  const reload = (): void => {
    if (inProgress) {
      again = true;
      logger.info({ file }, 'SIGHUP: a reload is in progress; the file is read again when it ends');
      return;
    }
    logger.info({ file }, 'SIGHUP: re-reading the configuration');
    inProgress = true;
    reloading = (async () => {
      do {
        again = false;
        await reloadOnce();
      } while (again && !stopping);
      inProgress = false;
    })();
  };

  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second stop signal: closing open connections now');
      void runtime.stop(0);
      return;
    }
    stopping = true;
    const drainMs = largestDrain(config);
    const adminClosed = admin?.close();
    void runtime
      .stop(drainMs)
      // True when written: no listener accepts any more.
      .then(() => logger.info({ signal, drainMs, ...fields }, 'stopping: no new connections, draining open ones'))
      .then(() => Promise.all([runtime.stopped(), adminClosed]))
      .then(() => reloading)
      .then(() => logger.info('stopped'))
      .then(() => flushLogger(logger))
      .then(() => options.exit(0));
  };

  const signals = options.signals ?? process;
  signals.on('SIGTERM', stop);
  signals.on('SIGINT', stop);
  signals.on('SIGHUP', () => {
    if (!stopping) reload();
  });
  signals.on('SIGUSR1', () => {
    reopenLogFiles();
    runtime.reopenLogs?.();
    logger.info({ signal: 'SIGUSR1' }, 'log files reopened');
  });
  for (const { service, listen, backends } of runtime.listening()) {
    logger.info({ service, listen: formatAddress(listen.host, listen.port), backends, ...fields }, 'listening');
  }
  if (admin !== undefined) logger.info({ admin: formatAddress(admin.address().host, admin.address().port) }, 'admin API listening');
}
