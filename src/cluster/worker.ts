/**
 * A cluster worker: runs the balancer on the configuration the primary sends, on the
 * listeners node:cluster shares (SCHED_NONE: the kernel hands each connection to one worker's
 * accept), with health and admin state applied from the primary (PrimaryVerdicts). Its log lines,
 * access log included, carry `worker: <slot>`.
 *
 * Signals: the primary drives stopping (`stop`); SIGINT (a terminal's Ctrl-C reaches the whole
 * process group) is left to the primary; SIGTERM sent to this worker alone drains it like `stop`.
 * When the IPC channel closes (the primary died) node:cluster ends the worker at once.
 */
import cluster from 'node:cluster';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { ClosedError, problemsOf } from '../errors.js';
import { createLogger, reopenLogFiles, startBalancer, type Balancer, type LogOptions } from '../proxy/index.js';
import { InheritedSockets, largestDrain, listeningHandle } from '../runtime/index.js';
import { PrimaryVerdicts } from './link.js';
import { errorToWire, isPrimaryMessage, type PrimaryMessage, type WorkerMessage } from './messages.js';

/** The worker's slot (1..N) the primary set in its environment; a restarted worker keeps its slot. */
export const WORKER_SLOT_ENV = 'L4LB_WORKER';
/** The log options (JSON: timestamp, access log file) the primary read from the configuration. */
export const WORKER_LOG_ENV = 'L4LB_WORKER_LOG';

/**
 * The process logger (batched writes of whole lines, at most PIPE_BUF bytes each, so lines from
 * several processes sharing stdout cannot interleave), with the worker's slot bound.
 */
function workerLogger(slot: number): Logger {
  const options = JSON.parse(process.env[WORKER_LOG_ENV] ?? '{}') as LogOptions;
  return createLogger(undefined, options).child({ worker: slot });
}

export function runWorker(): void {
  const slot = Number(process.env[WORKER_SLOT_ENV] ?? cluster.worker?.id ?? 0);
  const logger = workerLogger(slot);
  // The primary forwards SIGUSR1 (logrotate's postrotate) to every worker: each reopens its own files.
  process.on('SIGUSR1', () => {
    reopenLogFiles();
    logger.info({ signal: 'SIGUSR1' }, 'log files reopened');
  });
  const send = (message: WorkerMessage, then?: () => void): void => {
    // With a callback a failed send (the primary gone) is not an 'error' event; the worker exits on 'disconnect'.
    if (process.connected) process.send?.(message, undefined, {}, () => then?.());
    else then?.();
  };
  const verdicts = new PrimaryVerdicts(send);
  let balancer: Balancer | undefined;
  let config: Config | undefined;
  let stopping = false;
  let reloading: Promise<void> = Promise.resolve();

  const stop = (drainMs: number): void => {
    if (balancer === undefined) process.exit(0);
    if (stopping) {
      void balancer.close(0);
      return;
    }
    stopping = true;
    const closed = balancer.close(drainMs); // closes every listener before its first await
    send({ type: 'draining' });
    void closed
      .then(() => reloading)
      .then(() => logger.flush())
      .then(() => process.exit(0));
  };

  const handle = async (message: PrimaryMessage): Promise<void> => {
    switch (message.type) {
      case 'start': {
        verdicts.apply(message.statuses);
        // The primary's fds: listen({ fd }) in a worker is opened in the primary and shared.
        const inherited = new InheritedSockets(message.sockets);
        try {
          balancer = await startBalancer(message.config, { logger, verdicts: verdicts.sources, inherited: (socket) => inherited.forSocket(socket) });
        } catch (error) {
          send({ type: 'failed', error: errorToWire(error) }, () => process.exit(1));
          return;
        }
        config = message.config;
        send({ type: 'started', listening: balancer.listening().map(({ service, listen, socket }) => ({ service, listen, socket })) });
        return;
      }
      case 'health':
        verdicts.apply(message.statuses);
        return;
      case 'reload': {
        const running = balancer;
        if (running === undefined || stopping) {
          send({ type: 'reloaded', id: message.id, error: new ClosedError({ component: 'worker' }, 'the worker is stopping').toWire() });
          return;
        }
        reloading = reloading.then(async () => {
          try {
            await running.reload(message.config);
            config = message.config;
            send({ type: 'reloaded', id: message.id, error: null });
          } catch (error) {
            send({ type: 'reloaded', id: message.id, error: errorToWire(error) });
          }
        });
        return;
      }
      case 'stats':
        send({ type: 'stats', id: message.id, services: balancer?.stats() ?? [], listeners: balancer?.listenerStats() ?? [] });
        return;
      case 'sockets': {
        // Handles go one per message; the channel keeps their order, so `sockets` comes last.
        for (const { name, server } of stopping ? [] : (balancer?.listeners() ?? [])) {
          const handle = listeningHandle(server);
          if (handle !== undefined) process.send?.({ type: 'socket', id: message.id, name } satisfies WorkerMessage, handle as never, {}, () => undefined);
        }
        send({ type: 'sockets', id: message.id });
        return;
      }
      case 'stop':
        stop(message.drainMs);
        return;
      default: {
        const never: never = message;
        logger.warn({ message: String(never) }, 'unknown message from the primary');
      }
    }
  };

  process.on('message', (message: unknown) => {
    if (!isPrimaryMessage(message)) return;
    handle(message).catch((error: unknown) => logger.error({ error: problemsOf(error) }, 'worker: internal error'));
  });
  // Signals sent to the whole process group (a terminal's Ctrl-C or hang-up, a supervisor) are the
  // primary's to act on: it drains or reloads every worker itself.
  process.on('SIGINT', () => undefined);
  process.on('SIGHUP', () => undefined);
  process.on('SIGTERM', () => stop(config === undefined ? 0 : largestDrain(config)));
  send({ type: 'hello' });
}
