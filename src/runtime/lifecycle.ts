/**
 * The lifecycle of `l4lb run`, written once for every runtime: the admin API, the signals as
 * HAProxy's master process reads them, reloads from the file, the drain and the log lines.
 *
 * - SIGTERM or SIGINT: stop accepting and let open connections finish for up to the largest
 *   `timeouts.drain`, then exit 0; a second one ends them at once.
 * - SIGHUP: re-read the file and, if it is valid, apply it without refusing a connection; if not,
 *   keep running the previous configuration and log every problem. The file is read, parsed and
 *   validated in a worker thread (read-off-thread.ts), within the config limits, so a huge or
 *   hostile file never holds the event loop that serves connections. A SIGHUP that arrives while a
 *   reload is in progress is coalesced: once that reload ends, the file is read once more,
 *   however many SIGHUPs came meanwhile (the last write of the file is what counts).
 * - SIGUSR1: reopen the log files (the access log) at their paths, after logrotate moved them
 *   (nginx's USR1); with workers the primary forwards it to each worker, which reopens its own.
 * - SIGUSR2 (nginx's binary upgrade; POST /upgrade, `l4lb upgrade`): start a new l4lb from the
 *   files on disk on this one's listening sockets, admin API's included (src/runtime/handover.ts);
 *   once it is ready, stop accepting (the admin API too: the new one answers) and drain as on
 *   SIGTERM, with no cleanup outside this process. If it fails, log why and serve on. One upgrade
 *   at a time: a SIGUSR2 during one waits for its outcome.
 * - Started by a previous l4lb (or by systemd with LISTEN_FDS), listen on the sockets inherited,
 *   close those no listener took, and tell the previous l4lb once ready (after the pidfile).
 * - POST /reload on the admin API runs the same reload, coalesced with SIGHUPs, and answers with
 *   the outcome of the first reload that reads the file after the request.
 * - 'listening' lines are written only once every signal is handled (and the pidfile written):
 *   whoever waits for them may signal at once. A reload that opens a listener logs its line too.
 * - During the drain the admin API stays up until the last connection ends (reads only: state
 *   changes and reloads are refused), and "draining" is logged every DRAIN_PROGRESS_MS with the
 *   connections left.
 *
 * The running file's sha256, the last reload's outcome and the drain are kept here, in one
 * record this driver alone writes; the admin API and /metrics read it (LifecycleView).
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { AdminServer } from '../admin/index.js';
import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config/index.js';
import { isLbError, LbError, problemsOf, UpgradeError } from '../errors.js';
import type { DrainRecord, LifecycleView, ReloadAbandoned, ReloadRecord, ReloadResult, UpgradeOutcome } from '../observability/index.js';
import { formatAddress, reopenLogFiles } from '../proxy/index.js';
import { ADMIN_SOCKET, InheritedSockets, listeningFd, reportReady, startSuccessor, type HandoverSockets, type StartSuccessor } from './handover.js';
import { readConfigForReload, type ConfigReader } from './read-off-thread.js';
import type { Runtime, StopReason } from './runtime.js';
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
  /**
   * Start-up failure after the runtime started (the admin port taken): the runtime is stopped
   * first. Never settles (it ends the process), or rejects; nothing after it runs.
   */
  readonly fail: (error: unknown) => Promise<never>;
  /** Where SIGTERM, SIGINT and SIGHUP come from: the process, or what a test emits. */
  readonly signals?: SignalSource;
  /** sha256 (hex) of the bytes `config` was loaded from (see readConfig). */
  readonly hash: string;
  /** Written with this process's PID once signals are handled, removed at exit (`run --pidfile`). */
  readonly pidfile?: string;
  /** Times the drain's progress lines and the reload's read (default: the system clock). */
  readonly clock?: Clock;
  /** Reads the file for a reload (default: readConfigForReload: a small file here, a large one in a worker thread). */
  readonly read?: ConfigReader;
  /**
   * Listening sockets this process inherited (the runtime took its services' ones): the admin
   * API's is used here, the rest closed; a previous l4lb waiting for this one is told when ready.
   */
  readonly inherited?: InheritedSockets;
  /** What starts a new l4lb on SIGUSR2 (default: startSuccessor, this process's own command). */
  readonly startSuccessor?: StartSuccessor;
  /** How long a new l4lb may take to be ready (default UPGRADE_TIMEOUT_MS). */
  readonly upgradeTimeoutMs?: number;
}

/** How often a drain logs the connections it still waits for. */
export const DRAIN_PROGRESS_MS = 5000;

/** Writes `pid` to `file` atomically (a temporary file renamed over it). Throws LbError. */
async function writePidfile(file: string, pid: number): Promise<void> {
  const temporary = `${file}.${pid}.tmp`;
  try {
    await writeFile(temporary, `${pid}\n`, { mode: 0o644 });
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `--pidfile ${file}: cannot write it: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/** Removes `file` if it still names `pid` (a newer l4lb may have taken it over). */
async function removePidfile(file: string, pid: number): Promise<void> {
  try {
    if ((await readFile(file, 'utf8')).trim() === String(pid)) await rm(file, { force: true });
  } catch {
    // Already gone: nothing to remove.
  }
}

/** Writes `pid` to `file` if it names `failed` (best effort: a failure here changes nothing else). */
async function reclaimPidfile(file: string, failed: number, pid: number): Promise<void> {
  try {
    if ((await readFile(file, 'utf8')).trim() === String(failed)) await writePidfile(file, pid);
  } catch {
    // Unreadable or unwritable: the upgrade's failure is logged all the same.
  }
}

/** The part of `process` the lifecycle listens on. */
export interface SignalSource {
  on(signal: 'SIGTERM' | 'SIGINT' | 'SIGHUP' | 'SIGUSR1' | 'SIGUSR2', listener: (signal: NodeJS.Signals) => void): unknown;
}

/** Resolves once everything the logger buffered is written. */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}

/** Starts the admin API (if configured), installs the signal handlers and logs what listens. */
export async function runLifecycle(options: LifecycleOptions): Promise<void> {
  const { file, runtime, logger } = options;
  const clock = options.clock ?? systemClock;
  const read: ConfigReader = options.read ?? ((path, signal) => readConfigForReload(path, { signal, clock }));
  /** Aborts the read in progress: a stop does not wait for a file being parsed. */
  const reading = new AbortController();
  let config = options.config;
  const fields = runtime.logFields;

  // The record LifecycleView shows; only this function writes it.
  let running = { file, hash: options.hash, loadedAt: new Date().toISOString() };
  let lastReload: ReloadRecord | null = null;
  let lastSuccess = Date.now();
  const counts: Record<ReloadResult, number> = { success: 0, failure: 0, partial: 0 };
  let drain: DrainRecord | null = null;

  let stopping = false;

  /** A listener's identity: its service and endpoint. */
  const listenerKey = (service: string, where: string): string => `${service} ${where}`;
  /** Logs a 'listening' line for each listener not in `before`. */
  const logListening = (before: ReadonlySet<string>): void => {
    for (const { service, listen, backends } of runtime.listening()) {
      const where = formatAddress(listen.host, listen.port);
      if (!before.has(listenerKey(service, where))) logger.info({ service, listen: where, backends, ...fields }, 'listening');
    }
  };
  const listeningNow = (): Set<string> => new Set(runtime.listening().map(({ service, listen }) => listenerKey(service, formatAddress(listen.host, listen.port))));

  /** Records a reload's end; `failure` says why it was refused (as a whole, or by some workers). */
  const record = (trigger: ReloadRecord['trigger'], result: ReloadResult, hash: string | null, failure?: { code?: string; problems: string[] }): ReloadRecord => {
    const at = Date.now();
    const done: ReloadRecord = {
      at: new Date(at).toISOString(),
      result,
      trigger,
      hash,
      ...(failure?.code === undefined ? {} : { code: failure.code }),
      problems: failure?.problems ?? [],
    };
    counts[result]++;
    lastReload = done;
    if (result === 'success') lastSuccess = at;
    if (result !== 'failure' && hash !== null) running = { file, hash, loadedAt: done.at };
    return done;
  };

  const reloadOnce = async (trigger: ReloadRecord['trigger']): Promise<ReloadRecord | ReloadAbandoned> => {
    let next: Config;
    let hash: string | null = null;
    const before = listeningNow();
    try {
      ({ config: next, hash } = await read(file, reading.signal));
      if (stopping) {
        logger.info({ file }, 'reload abandoned: stopping');
        return 'abandoned';
      }
      const outcome = await runtime.reload(next, config);
      admin?.setToken(next.admin?.token);
      admin?.setMetricsPublic(next.admin?.metricsPublic === true);
      if (outcome === 'partial') {
        config = next;
        logListening(before);
        return record(trigger, 'partial', hash, { problems: ['some workers refused the configuration and keep the previous one (each logged "worker refused the reload" with why)'] });
      }
    } catch (error) {
      if (stopping) {
        logger.info({ file }, 'reload abandoned: stopping');
        return 'abandoned';
      }
      const refusal = { code: isLbError(error) ? error.code : 'LB_ERR_INTERNAL', problems: problemsOf(error) };
      logger.warn({ file, ...refusal }, 'reload refused: still running the previous configuration');
      return record(trigger, 'failure', hash, refusal);
    }
    if (JSON.stringify(next.admin?.listen) !== JSON.stringify(config.admin?.listen)) {
      logger.warn({ file }, 'admin.listen changed: the admin API keeps its address until l4lb restarts');
    }
    if (workerCount(next.workers) !== runtime.workers) {
      logger.warn({ file, workers: runtime.workers, configured: workerCount(next.workers) }, 'workers changed: the number of workers changes when l4lb restarts');
    }
    config = next;
    logListening(before);
    logger.info({ file, sha256: hash, ...fields }, 'reloaded');
    return record(trigger, 'success', hash);
  };

  /** The reload in progress (settled when none), and whether another request came during it. */
  let reloading: Promise<void> = Promise.resolve();
  let inProgress = false;
  let again: ReloadRecord['trigger'] | undefined;
  /** Waiting for the next reload to start (admin API requests): answered with its outcome. */
  let waiting: ((outcome: ReloadRecord | ReloadAbandoned) => void)[] = [];
  const reload = (trigger: ReloadRecord['trigger']): void => {
    const asked = trigger === 'SIGHUP' ? 'SIGHUP' : 'reload requested through the admin API';
    if (inProgress) {
      again = trigger;
      logger.info({ file }, `${asked}: a reload is in progress; the file is read again when it ends`);
      return;
    }
    logger.info({ file }, `${asked}: re-reading the configuration`);
    inProgress = true;
    reloading = (async () => {
      let next: ReloadRecord['trigger'] | undefined = trigger;
      do {
        again = undefined;
        const answered = waiting;
        waiting = [];
        const outcome = await reloadOnce(next);
        for (const answer of answered) answer(outcome);
        next = again;
      } while (next !== undefined && !stopping);
      inProgress = false;
      // Asked for during the last reload, after stopping began: none will run.
      for (const answer of waiting.splice(0)) answer('abandoned');
    })();
  };

  const view: LifecycleView = {
    running: () => running,
    lastReload: () => lastReload,
    reloadCounts: () => counts,
    lastSuccess: () => lastSuccess,
    drain: () => drain,
    reload: () => {
      if (stopping) return Promise.resolve('abandoned');
      return new Promise((resolve) => {
        waiting.push(resolve);
        reload('admin API');
      });
    },
    upgrade: () => upgrade('admin API'),
  };

  const inherited = options.inherited ?? InheritedSockets.none();
  let admin: AdminServer | undefined;
  if (config.admin !== undefined) {
    try {
      // Loaded only with an admin API: it brings prom-client and the stats page (about 5 MB of an idle process's heap and code).
      const { startAdmin } = await import('../admin/index.js');
      admin = await startAdmin(runtime.admin, { listen: config.admin.listen, fd: inherited.take(ADMIN_SOCKET), token: config.admin.token, metricsPublic: config.admin.metricsPublic, logger, lifecycle: view });
    } catch (error) {
      await runtime.stop(0);
      await runtime.stopped();
      return options.fail(error);
    }
  }
  const inheritedUnused = inherited.closeUnused();
  if (inheritedUnused.length > 0) logger.info({ sockets: inheritedUnused }, 'inherited listening sockets no service uses: closed');

  /** The upgrade in progress, if any: a second request waits for its outcome. */
  let upgrading: Promise<UpgradeOutcome> | undefined;
  const upgrade = (trigger: 'SIGUSR2' | 'admin API'): Promise<UpgradeOutcome> => {
    if (upgrading !== undefined) {
      logger.info({ trigger }, 'upgrade requested: one is in progress; answered with its outcome');
      return upgrading;
    }
    upgrading = upgradeOnce(trigger).finally(() => {
      upgrading = undefined;
    });
    return upgrading;
  };
  const upgradeFailed = (error: UpgradeError): UpgradeOutcome => {
    const facts = { code: error.code, failure: error.failure, pid: error.pid, problems: error.lines() };
    if (error.failure === 'stopping') logger.warn(facts, 'upgrade refused: this l4lb is stopping');
    else logger.error(facts, 'upgrade failed: still serving with this process');
    return { result: 'failure', error };
  };
  const upgradeOnce = async (trigger: 'SIGUSR2' | 'admin API'): Promise<UpgradeOutcome> => {
    if (stopping) return upgradeFailed(new UpgradeError({ failure: 'stopping', pid: null }, ['upgrade refused: this l4lb is stopping']));
    logger.info({ trigger, file }, `${trigger === 'SIGUSR2' ? 'SIGUSR2' : 'upgrade requested through the admin API'}: starting a new l4lb from the files on disk`);
    // The sockets are those of the configuration running once any reload in progress has ended.
    await reloading;
    let handed: HandoverSockets;
    try {
      handed = await runtime.handoverSockets();
    } catch (error) {
      return upgradeFailed(new UpgradeError({ failure: 'sockets', pid: null }, [`upgrade: cannot hand the listening sockets over: ${problemsOf(error).join('; ')}`]));
    }
    const adminFd = admin === undefined ? undefined : listeningFd(admin.listener());
    const sockets = adminFd === undefined ? handed.sockets : [...handed.sockets, { name: ADMIN_SOCKET, fd: adminFd }];
    try {
      const successor = await (options.startSuccessor ?? startSuccessor)({ sockets, logger, timeoutMs: options.upgradeTimeoutMs });
      logger.info({ pid: successor.pid, readyMs: Math.round(successor.readyMs), ...fields }, 'upgrade: the new l4lb is ready; this one stops accepting and drains');
      // The new l4lb answers on the admin socket from now on; requests in progress here are answered.
      void admin?.stopListening();
      if (stopping) logger.warn({ pid: successor.pid }, 'a stop signal came during the upgrade: the new l4lb serves on (stop it by its PID)');
      else stop('SIGUSR2', 'handover');
      return { result: 'success', pid: successor.pid, previous: process.pid, readyMs: successor.readyMs };
    } catch (error) {
      const failed = error instanceof UpgradeError ? error : new UpgradeError({ failure: 'spawn', pid: null }, problemsOf(error));
      // A new l4lb that wrote the pidfile and then died: the pidfile names this process again.
      if (options.pidfile !== undefined && failed.pid !== null) await reclaimPidfile(options.pidfile, failed.pid, process.pid);
      return upgradeFailed(failed);
    } finally {
      handed.release();
    }
  };

  const stop = (signal: NodeJS.Signals, reason: StopReason = 'stop'): void => {
    if (stopping) {
      logger.warn({ signal }, 'second stop signal: closing open connections now');
      if (drain !== null) drain = { ...drain, deadline: Date.now() };
      void runtime.stop(0, reason);
      return;
    }
    stopping = true;
    reading.abort();
    const drainMs = largestDrain(config);
    const since = Date.now();
    drain = { signal, since, deadline: since + drainMs };
    // Progress while connections drain; the admin API keeps answering until they have.
    const progress = clock.unref(
      clock.setInterval(() => {
        void Promise.resolve(runtime.admin.stats()).then((services) => {
          if (drain === null) return;
          logger.info({ connections: services.reduce((open, service) => open + service.current, 0), remainingMs: Math.max(0, drain.deadline - Date.now()), ...fields }, 'draining: connections left');
        });
      }, DRAIN_PROGRESS_MS),
    );
    void runtime
      .stop(drainMs, reason)
      // True when written: no listener accepts any more.
      .then(() => logger.info({ signal, drainMs, deadline: new Date(since + drainMs).toISOString(), ...fields }, 'stopping: no new connections, draining open ones'))
      .then(() => runtime.stopped())
      .then(() => {
        clock.clearTimer(progress);
        return Promise.all([admin?.close(), reloading]);
      })
      .then(() => (options.pidfile === undefined ? undefined : removePidfile(options.pidfile, process.pid)))
      .then(() => logger.info('stopped'))
      .then(() => flushLogger(logger))
      .then(() => options.exit(0));
  };

  const signals = options.signals ?? process;
  signals.on('SIGTERM', (signal) => stop(signal));
  signals.on('SIGINT', (signal) => stop(signal));
  signals.on('SIGUSR2', () => void upgrade('SIGUSR2'));
  signals.on('SIGHUP', () => {
    if (!stopping) reload('SIGHUP');
  });
  signals.on('SIGUSR1', () => {
    reopenLogFiles();
    runtime.reopenLogs?.();
    logger.info({ signal: 'SIGUSR1' }, 'log files reopened');
  });
  if (options.pidfile !== undefined) {
    try {
      await writePidfile(options.pidfile, process.pid);
    } catch (error) {
      await admin?.close();
      await runtime.stop(0);
      await runtime.stopped();
      return options.fail(error);
    }
  }
  logListening(new Set());
  if (admin !== undefined) logger.info({ admin: formatAddress(admin.address().host, admin.address().port) }, 'admin API listening');
  if (inherited.fromPredecessor) {
    await reportReady(inherited);
    logger.info({ pid: process.pid }, 'upgrade: serving on the sockets of the previous l4lb, which now drains');
  }
}
