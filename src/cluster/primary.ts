/**
 * `l4lb run` with `workers: N > 1` (issue 7): the primary process of a node:cluster, after
 * HAProxy's master-worker mode. The primary holds no proxy listener of its own; it
 *
 * - forks N workers sharing every service's listener, with `SCHED_NONE` so each worker accepts
 *   from the shared socket in the kernel (round-robin would accept every connection here and pass
 *   it over IPC); Node 20's `net` has no SO_REUSEPORT, so there is one socket, not one per worker;
 * - decides health and admin state once (HealthAuthority) and pushes every change to all workers;
 * - serves the admin API: /stats and /metrics summed over workers, state changes applied here;
 * - SIGHUP: loads and validates the file once, then has every worker reload it; a bad file is
 *   refused here, logged once, and no worker hears of it;
 * - SIGTERM/SIGINT: every worker stops accepting and drains (largest `timeouts.drain`), then the
 *   primary exits 0 after the last one; a second signal ends open connections at once;
 * - restarts a worker that dies unexpectedly (with a growing delay if it dies right after starting).
 * Workers exit when the IPC channel closes, so the primary's death takes them with it.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { startAdmin, type AdminServer } from '../admin/server.js';
import { ConfigError, DEFAULTS, loadConfig, type Config, type WorkersSetting } from '../config/index.js';
import { isLbError, LbError } from '../errors.js';
import { formatAddress } from '../proxy/access-log.js';
import type { ServiceStatusStats } from '../proxy/balancer.js';
import { HealthAuthority } from './authority.js';
import { isWorkerMessage, type PrimaryMessage, type WorkerMessage } from './messages.js';
import { mergeStats, retire } from './stats.js';
import { largestDrain, WORKER_SLOT_ENV } from './worker.js';

/** How long /stats waits for a worker's counters before using its last report. */
export const STATS_TIMEOUT_MS = 1000;
/** A worker that dies within this long of starting is restarted after a delay doubling each time (up to 10 s). */
const QUICK_DEATH_MS = 5000;
const MAX_RESTART_DELAY_MS = 10_000;

/** Processes to run for a `workers` setting: absent → 1, `auto` → the cores this process may use. */
export function workerCount(setting: WorkersSetting | undefined, cores: number = availableParallelism()): number {
  if (setting === undefined) return DEFAULTS.workers;
  return setting === 'auto' ? Math.max(1, cores) : setting;
}

function reasons(error: unknown): string[] {
  if (error instanceof ConfigError) return error.lines();
  if (isLbError(error)) return [error.message];
  return [`internal error: ${error instanceof Error ? error.message : String(error)}`];
}

interface Slot {
  readonly id: number;
  worker: Worker | undefined;
  started: boolean;
  startedAt: number;
  quickDeaths: number;
  lastStats: ServiceStatusStats[] | undefined;
  restart: NodeJS.Timeout | undefined;
  /** Settled by the first `started` or `failed` (start-up waits on it). */
  ready: { resolve: (listening: Extract<WorkerMessage, { type: 'started' }>) => void; reject: (error: LbError) => void } | undefined;
  /** Set when told to stop: resolved by `draining` or by its exit. */
  drained: (() => void) | undefined;
}

type Reply = Extract<WorkerMessage, { type: 'reloaded' | 'stats' }>;

export class ClusterPrimary {
  private readonly slots: Slot[];
  private readonly pending = new Map<number, { slot: Slot; resolve: (reply: Reply | undefined) => void }>();
  private nextId = 1;
  /** Last reports of dead workers, summed (see stats.ts). */
  private retired: ServiceStatusStats[] = [];
  private stopping = false;
  private broadcastQueued = false;
  private exits: (() => void) | undefined;

  constructor(
    private config: Config,
    count: number,
    private readonly authority: HealthAuthority,
    private readonly logger: Logger,
  ) {
    this.slots = Array.from({ length: count }, (_, i): Slot => ({
      id: i + 1,
      worker: undefined,
      started: false,
      startedAt: 0,
      quickDeaths: 0,
      lastStats: undefined,
      restart: undefined,
      ready: undefined,
      drained: undefined,
    }));
    const changed = (): void => this.queueBroadcast();
    authority.events.on('health', changed);
    authority.events.on('state', changed);
  }

  get workers(): number {
    return this.slots.length;
  }

  /** Forks every worker; resolves once all listen, rejects with the first one's failure (the others are killed). */
  async start(): Promise<Extract<WorkerMessage, { type: 'started' }>> {
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ serialization: 'advanced' });
    const started = this.slots.map((slot) => new Promise<Extract<WorkerMessage, { type: 'started' }>>((resolve, reject) => {
      slot.ready = { resolve, reject };
      this.fork(slot);
    }));
    try {
      const all = await Promise.all(started);
      return all[0];
    } catch (error) {
      this.stopping = true;
      for (const slot of this.slots) if (slot.worker?.process.pid !== undefined && slot.worker.isDead() === false) slot.worker.process.kill('SIGKILL');
      throw error;
    }
  }

  private send(slot: Slot, message: PrimaryMessage): void {
    const worker = slot.worker;
    if (worker === undefined || !worker.isConnected()) return;
    try {
      // With a callback a failed send is reported to it instead of as an 'error' event (which,
      // unheard, would throw in the primary); the worker's 'exit' handles what follows.
      worker.send(message, undefined, {}, () => undefined);
    } catch {
      // The channel closed under us: as above.
    }
  }

  private fork(slot: Slot): void {
    slot.restart = undefined;
    slot.started = false;
    slot.startedAt = performance.now();
    const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(slot.id) });
    slot.worker = worker;
    worker.on('message', (message: unknown) => {
      if (isWorkerMessage(message)) this.onMessage(slot, worker, message);
    });
    worker.on('exit', (code, signal) => this.onExit(slot, worker, code, signal));
    worker.on('error', (error: Error) => this.logger.warn({ worker: slot.id, error: error.message }, 'worker channel error'));
  }

  private onMessage(slot: Slot, worker: Worker, message: WorkerMessage): void {
    if (slot.worker !== worker) return;
    switch (message.type) {
      case 'hello':
        this.send(slot, { type: 'start', config: this.config, statuses: this.authority.shared() });
        return;
      case 'started':
        slot.started = true;
        this.logger.info({ worker: slot.id, pid: worker.process.pid }, 'worker started');
        slot.ready?.resolve(message);
        slot.ready = undefined;
        return;
      case 'failed':
        if (slot.ready !== undefined) slot.ready.reject(new LbError('LB_ERR_LISTEN', message.problems.join('\n')));
        else this.logger.error({ worker: slot.id, problems: message.problems }, 'worker failed to start');
        slot.ready = undefined;
        return;
      case 'observe':
        this.authority.observe(message.service, message.backend, message.passed);
        return;
      case 'reloaded':
      case 'stats': {
        const waiting = this.pending.get(message.id);
        if (waiting === undefined) return;
        this.pending.delete(message.id);
        waiting.resolve(message);
        return;
      }
      case 'draining':
        slot.drained?.();
        return;
      default: {
        const never: never = message;
        this.logger.warn({ worker: slot.id, message: String(never) }, 'unknown message from a worker');
      }
    }
  }

  private onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    slot.started = false;
    for (const [id, waiting] of this.pending) {
      if (waiting.slot !== slot) continue;
      this.pending.delete(id);
      waiting.resolve(undefined);
    }
    if (slot.lastStats !== undefined) this.retired = mergeStats(retire(slot.lastStats), [this.retired]);
    slot.lastStats = undefined;
    slot.drained?.();
    if (slot.ready !== undefined) {
      slot.ready.reject(new LbError('LB_ERR_LISTEN', `worker ${slot.id} exited before listening (${signal ?? `exit code ${code}`})`));
      slot.ready = undefined;
      return;
    }
    if (this.stopping) {
      if (this.slots.every((each) => each.worker === undefined)) this.exits?.();
      return;
    }
    const quick = performance.now() - slot.startedAt < QUICK_DEATH_MS;
    slot.quickDeaths = quick ? slot.quickDeaths + 1 : 0;
    const delayMs = quick ? Math.min(MAX_RESTART_DELAY_MS, 100 * 2 ** (slot.quickDeaths - 1)) : 0;
    this.logger.error({ worker: slot.id, pid: worker.process.pid, code, signal, restartInMs: delayMs }, 'worker exited unexpectedly: restarting it');
    slot.restart = setTimeout(() => this.fork(slot), delayMs);
  }

  private queueBroadcast(): void {
    if (this.broadcastQueued) return;
    this.broadcastQueued = true;
    queueMicrotask(() => {
      this.broadcastQueued = false;
      this.broadcast();
    });
  }

  /** Every worker gets every backend's verdicts (a full snapshot: a few hundred bytes per service). */
  private broadcast(): void {
    const message: PrimaryMessage = { type: 'health', statuses: this.authority.shared() };
    for (const slot of this.slots) this.send(slot, message);
  }

  private request(slot: Slot, message: Extract<PrimaryMessage, { type: 'reload' | 'stats' }>, timeoutMs?: number): Promise<Reply | undefined> {
    return new Promise((resolve) => {
      if (slot.worker === undefined || !slot.worker.isConnected()) {
        resolve(undefined);
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      this.pending.set(message.id, {
        slot,
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
      });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.pending.delete(message.id);
          resolve(undefined);
        }, timeoutMs);
      }
      this.send(slot, message);
    });
  }

  /** /stats: every worker's counters (fresh, or its last report if it does not answer in time) summed; health from here. */
  async stats(): Promise<ServiceStatusStats[]> {
    const reports = await Promise.all(
      this.slots.map(async (slot) => {
        if (!slot.started) return slot.lastStats;
        const reply = await this.request(slot, { type: 'stats', id: this.nextId++ }, STATS_TIMEOUT_MS);
        if (reply?.type === 'stats') slot.lastStats = [...reply.services];
        return slot.lastStats;
      }),
    );
    return mergeStats(this.authority.stats(), [this.retired, ...reports.filter((report): report is ServiceStatusStats[] => report !== undefined)]);
  }

  /**
   * Applies a configuration the primary has loaded and validated: health first (names resolved
   * here; LbError and nothing changed if one resolves nowhere), then every worker reloads it.
   * Resolves with the workers that refused it, and why.
   */
  async reload(next: Config): Promise<{ worker: number; problems: readonly string[] }[]> {
    await this.authority.apply(next);
    this.config = next;
    this.broadcast();
    const replies = await Promise.all(
      this.slots.map(async (slot) => ({ slot, reply: slot.started ? await this.request(slot, { type: 'reload', id: this.nextId++, config: next }) : undefined })),
    );
    const refused: { worker: number; problems: readonly string[] }[] = [];
    for (const { slot, reply } of replies) {
      if (reply?.type === 'reloaded' && reply.problems !== null) refused.push({ worker: slot.id, problems: reply.problems });
    }
    return refused;
  }

  /** Tells every worker to stop accepting and drain; resolves once each has closed its listeners. */
  async stop(drainMs: number): Promise<void> {
    const again = this.stopping;
    this.stopping = true;
    for (const slot of this.slots) {
      clearTimeout(slot.restart);
      slot.restart = undefined;
    }
    const drained = this.slots.map(
      (slot) =>
        new Promise<void>((resolve) => {
          if (slot.worker === undefined) {
            resolve();
            return;
          }
          slot.drained = resolve;
          this.send(slot, { type: 'stop', drainMs: again ? 0 : drainMs });
        }),
    );
    await Promise.all(drained);
  }

  /** Resolves once every worker has exited (after stop()). */
  exited(): Promise<void> {
    if (this.slots.every((slot) => slot.worker === undefined)) return Promise.resolve();
    return new Promise((resolve) => {
      this.exits = resolve;
    });
  }
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
      const refused = await primary.reload(next);
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
