/**
 * `l4lb run` with `workers: N > 1` (issue 7): the primary process. It holds no proxy listener of
 * its own; it decides health and admin state once (HealthAuthority) for every worker
 * (ClusterPrimary), serves the admin API (/stats and /metrics summed over workers, state changes
 * applied here and pushed), and handles the signals as a single `l4lb run` does:
 *
 * - SIGHUP: loads and validates the file once, then has every worker reload it; a bad file is
 *   refused here, logged once, and no worker hears of it;
 * - SIGTERM/SIGINT: every worker stops accepting and drains (largest `timeouts.drain`), then the
 *   primary exits 0 after the last one; a second signal ends open connections at once.
 * Workers exit when the IPC channel closes, so the primary's death takes them with it.
 */
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { startAdmin, type AdminServer } from '../admin/server.js';
import { ConfigError, DEFAULTS, loadConfig, type Config, type WorkersSetting } from '../config/index.js';
import { isLbError } from '../errors.js';
import { formatAddress } from '../proxy/access-log.js';
import { HealthAuthority } from './authority.js';
import type { WorkerMessage } from './messages.js';
import { ClusterPrimary, ReloadRefused } from './primary.js';
import { largestDrain } from './worker.js';

/** Processes to run for a `workers` setting: absent → 1, `auto` → the cores this process may use. */
export function workerCount(setting: WorkersSetting | undefined, cores: number = availableParallelism()): number {
  if (setting === undefined) return DEFAULTS.workers;
  return setting === 'auto' ? Math.max(1, cores) : setting;
}

function reasons(error: unknown): string[] {
  if (error instanceof ConfigError) return error.lines();
  if (error instanceof ReloadRefused) return [...error.problems];
  if (isLbError(error)) return [error.message];
  return [`internal error: ${error instanceof Error ? error.message : String(error)}`];
}

/**
 * Runs the primary until stopped; start-up failures are one line per problem on stderr and exit 1,
 * as for a single process. Pre: `count` > 1, `config` loaded from `file`.
 */
export async function runPrimary(file: string, initial: Config, count: number, logger: Logger, fail: (error: unknown) => never): Promise<void> {
  let config = initial;
  const authority = new HealthAuthority(logger);
  try {
    await authority.apply(config);
  } catch (error) {
    await authority.stop();
    fail(error);
  }
  const primary = new ClusterPrimary(config, count, authority, logger);
  let admin: AdminServer | undefined;
  if (config.admin !== undefined) {
    try {
      admin = await startAdmin({ stats: () => primary.stats(), setState: (service, backend, state) => authority.setState(service, backend, state), events: authority.events }, { listen: config.admin.listen, token: config.admin.token, logger });
    } catch (error) {
      await authority.stop();
      fail(error);
    }
  }
  let started: Extract<WorkerMessage, { type: 'started' }>;
  try {
    started = await primary.start();
  } catch (error) {
    await Promise.all([authority.stop(), admin?.close()]);
    fail(error);
  }

  let stopping = false;
  let reloading: Promise<void> = Promise.resolve();
  const reload = async (): Promise<void> => {
    let next: Config;
    try {
      next = await loadConfig(file);
      if (stopping) return;
      const refused = await primary.reload(next, config);
      for (const { worker, problems } of refused) logger.error({ worker, problems }, 'worker refused the reload: it still runs the previous configuration');
      admin?.setToken(next.admin?.token);
      if (refused.length > 0) {
        config = next;
        return;
      }
    } catch (error) {
      logger.warn({ file, problems: reasons(error) }, 'reload refused: still running the previous configuration');
      return;
    }
    if (JSON.stringify(next.admin?.listen) !== JSON.stringify(config.admin?.listen)) {
      logger.warn({ file }, 'admin.listen changed: the admin API keeps its address until l4lb restarts');
    }
    if (workerCount(next.workers) !== primary.workers) {
      logger.warn({ file, workers: primary.workers, configured: workerCount(next.workers) }, 'workers changed: the number of workers changes when l4lb restarts');
    }
    config = next;
    logger.info({ file, workers: primary.workers }, 'reloaded');
  };

  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second stop signal: closing open connections now');
      void primary.stop(0);
      return;
    }
    stopping = true;
    const drainMs = largestDrain(config);
    void Promise.all([primary.stop(drainMs), admin?.close()])
      .then(() => logger.info({ signal, drainMs, workers: primary.workers }, 'stopping: no new connections, draining open ones'))
      .then(() => primary.exited())
      .then(() => reloading)
      .then(() => authority.stop())
      .then(() => logger.info('stopped'))
      .then(() => process.exit(0));
  };

  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {
    if (stopping) return;
    logger.info({ file }, 'SIGHUP: re-reading the configuration');
    reloading = reloading.then(reload);
  });
  for (const { service, listen } of started.listening) {
    const backends = config.services.find((each) => each.name === service)?.backends.length ?? 0;
    logger.info({ service, listen: formatAddress(listen.host, listen.port), backends, workers: primary.workers }, 'listening');
  }
  if (admin !== undefined) logger.info({ admin: formatAddress(admin.address().host, admin.address().port) }, 'admin API listening');
}
