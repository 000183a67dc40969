/**
 * `l4lb run -c FILE`: runs the proxy services of a configuration file until told to stop.
 *
 * `workers: 1` (the default) runs everything in this process (src/runtime/single.ts);
 * `workers: N > 1` makes this process a node:cluster primary (src/cluster/runtime.ts) whose
 * workers run this same command and take the worker branch (src/cluster/worker.ts). Signals,
 * reloads and the drain are the same for both (src/runtime/lifecycle.ts). Start-up failures
 * (missing or invalid file, port taken, backend name that resolves nowhere) are one line per
 * problem on stderr and exit 1, never a stack trace. `--pidfile FILE` gets this process's PID once
 * it handles signals (what `l4lb reload --pidfile` and systemd read), and is removed at exit.
 */
import cluster from 'node:cluster';
import { Command } from 'commander';
import type { Logger } from 'pino';
import { readConfig, type Config } from '../config/index.js';
import { runWorker, startCluster, WORKER_SLOT_ENV } from '../cluster/index.js';
import { createLogger, logOptions } from '../proxy/index.js';
import { InheritedSockets, reportFailure, runLifecycle, startSingleProcess, workerCount, type Runtime } from '../runtime/index.js';
import { EXIT_FAILURE, fail } from './common.js';

interface RunOptions {
  config: string;
  pidfile?: string;
  cleanupOnExit?: boolean;
}

export async function run(file: string, given?: Logger, pidfile?: string, cleanupOnExit = false): Promise<void> {
  // A worker forked by an l4lb primary (which sets WORKER_SLOT_ENV); under someone else's cluster
  // (pm2's cluster mode, say) l4lb runs as a single process.
  if (cluster.isWorker && process.env[WORKER_SLOT_ENV] !== undefined) {
    runWorker();
    return;
  }
  // Listening sockets handed over by a previous l4lb (an upgrade) or by systemd (socket activation).
  const inherited = InheritedSockets.fromEnvironment();
  /** A start-up failure: told to the previous l4lb first, if one waits (it logs it and serves on). */
  const failStart = async (error: unknown): Promise<never> => {
    await reportFailure(inherited, error);
    fail(error, EXIT_FAILURE);
  };
  let config: Config;
  let hash: string;
  try {
    ({ config, hash } = await readConfig(file));
  } catch (error) {
    return failStart(error);
  }
  const workers = workerCount(config.workers);
  // A cluster primary writes no access line: its workers open the access log, each its own.
  const { accessLog, ...options } = logOptions(config);
  const logger = given ?? createLogger(undefined, workers > 1 ? options : { ...options, accessLog });
  let runtime: Runtime;
  try {
    runtime = workers > 1 ? await startCluster(config, workers, logger, inherited) : await startSingleProcess(config, logger, inherited, { cleanupOnExit });
  } catch (error) {
    return failStart(error);
  }
  await runLifecycle({
    file,
    config,
    hash,
    pidfile,
    runtime,
    logger,
    inherited,
    exit: (code) => process.exit(code),
    fail: failStart,
  });
}

export function runCommand(): Command {
  return new Command('run')
    .description('run the proxy services of a configuration file (SIGHUP reloads it, SIGTERM drains and stops)')
    .requiredOption('-c, --config <file>', 'configuration file, YAML or JSON')
    .option('--pidfile <file>', 'write the PID there once running (removed at exit), for `l4lb reload --pidfile` and service managers')
    .option('--cleanup-on-exit', 'remove the kernel tables of mode: nat services when stopped by SIGTERM/SIGINT (by default they stay, for the next l4lb to adopt)')
    .action(async (options: RunOptions) => {
      await run(options.config, undefined, options.pidfile, options.cleanupOnExit === true);
    });
}
