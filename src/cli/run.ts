/**
 * `l4lb run -c FILE`: runs the proxy services of a configuration file until told to stop.
 *
 * Signals, as HAProxy's master process reads them: SIGTERM or SIGINT stops accepting and lets open
 * connections finish for up to the largest `timeouts.drain`, then exits 0 (a second one ends them
 * at once); SIGHUP re-reads the file and, if it is valid, reloads without refusing a connection —
 * if not, it keeps running on the old configuration and logs every problem.
 * Start-up failures (missing or invalid file, port taken, backend name that resolves nowhere) are
 * one line per problem on stderr and exit 1, never a stack trace.
 *
 * `workers: N > 1` (issue 7): this process becomes a node:cluster primary (src/cluster/primary.ts)
 * with the same signals; the workers it forks run this same command and take the
 * `cluster.isWorker` branch (src/cluster/worker.ts). `workers: 1`, the default, is the path below.
 */
import cluster from 'node:cluster';
import { Command } from 'commander';
import type { Logger } from 'pino';
import { loadConfig, type Config } from '../config/index.js';
import { createLogger, formatAddress } from '../proxy/access-log.js';
import { startBalancer, type Balancer } from '../proxy/balancer.js';
import { startAdmin, type AdminServer } from '../admin/server.js';
import { runPrimary, workerCount } from '../cluster/main.js';
import { clusterLogger, largestDrain, problemsOf, runWorker, WORKER_SLOT_ENV } from '../cluster/worker.js';
import { EXIT_FAILURE, fail } from './common.js';

interface RunOptions {
  config: string;
}

/** Resolves once everything the logger buffered is written. */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}


export async function run(file: string, given?: Logger): Promise<void> {
  // A worker forked by an l4lb primary (which sets WORKER_SLOT_ENV); under someone else's cluster
  // (pm2's cluster mode, say) l4lb runs as a single process, as before.
  if (cluster.isWorker && process.env[WORKER_SLOT_ENV] !== undefined) {
    runWorker();
    return;
  }
  let config: Config;
  try {
    config = await loadConfig(file);
  } catch (error) {
    fail(error, EXIT_FAILURE);
  }
  const workers = workerCount(config.workers);
  if (workers > 1) {
    await runPrimary(file, config, workers, given ?? clusterLogger(), (error) => fail(error, EXIT_FAILURE));
    return;
  }
  const logger = given ?? createLogger();
  let balancer: Balancer;
  try {
    balancer = await startBalancer(config, { logger });
  } catch (error) {
    fail(error, EXIT_FAILURE);
  }
  let admin: AdminServer | undefined;
  if (config.admin !== undefined) {
    try {
      admin = await startAdmin(balancer, { listen: config.admin.listen, token: config.admin.token, logger });
    } catch (error) {
      await balancer.close(0);
      fail(error, EXIT_FAILURE);
    }
  }

  let reloading: Promise<void> = Promise.resolve();
  const reload = async (): Promise<void> => {
    try {
      const next = await loadConfig(file);
      await balancer.reload(next);
      admin?.setToken(next.admin?.token);
      if (JSON.stringify(next.admin?.listen) !== JSON.stringify(config.admin?.listen)) {
        logger.warn({ file }, 'admin.listen changed: the admin API keeps its address until l4lb restarts');
      }
      if (workerCount(next.workers) !== 1) {
        logger.warn({ file, workers: 1, configured: workerCount(next.workers) }, 'workers changed: the number of workers changes when l4lb restarts');
      }
      config = next;
      logger.info({ file }, 'reloaded');
    } catch (error) {
      if (stopping) {
        logger.info({ file }, 'reload abandoned: stopping');
        return;
      }
      logger.warn({ file, problems: problemsOf(error) }, 'reload refused: still running the previous configuration');
    }
  };

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second stop signal: closing open connections now');
      void balancer.close(0);
      return;
    }
    stopping = true;
    const drainMs = largestDrain(config);
    // balancer.close() closes every listener before its first await (a reload in flight then
    // rejects with LB_ERR_CLOSED), so the line below is true when written: new connects are refused.
    const closed = Promise.all([balancer.close(drainMs), admin?.close()]);
    logger.info({ signal, drainMs }, 'stopping: no new connections, draining open ones');
    void closed
      .then(() => reloading)
      .then(() => logger.info('stopped'))
      .then(() => flushLogger(logger))
      .then(() => process.exit(0));
  };

  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {
    if (stopping) return;
    logger.info({ file }, 'SIGHUP: re-reading the configuration');
    reloading = reloading.then(reload);
  });
  // Only now, with every signal handled, say so: whoever waits for this line may signal at once.
  for (const stats of balancer.stats()) {
    logger.info({ service: stats.name, listen: formatAddress(stats.listen.host, stats.listen.port), backends: stats.backends.length }, 'listening');
  }
  if (admin !== undefined) logger.info({ admin: formatAddress(admin.address().host, admin.address().port) }, 'admin API listening');
}

export function runCommand(): Command {
  return new Command('run')
    .description('run the proxy services of a configuration file (SIGHUP reloads it, SIGTERM drains and stops)')
    .requiredOption('-c, --config <file>', 'configuration file, YAML or JSON')
    .action(async (options: RunOptions) => {
      await run(options.config);
    });
}
