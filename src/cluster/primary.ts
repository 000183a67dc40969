/**
 * The cluster primary's worker pool (`workers: N > 1`), after HAProxy's master-worker mode:
 * forks the workers and keeps one per slot, sharing every service's listener with `SCHED_NONE`
 * (each worker accepts from the shared socket in the kernel; round-robin would accept every
 * connection here and pass it over IPC; Node 20's `net` has no SO_REUSEPORT, so there is one
 * socket, not one per worker); pushes the HealthAuthority's verdicts to every worker on each
 * change; gathers and sums their counters for /stats; has every worker reload or stop; restarts
 * a worker that dies unexpectedly (with a growing delay if it dies right after starting).
 * The runtime around it is src/cluster/runtime.ts; signals, the admin API and reloads from the
 * file are src/runtime/lifecycle.ts, shared with a single process.
 */
import cluster, { type Worker } from 'node:cluster';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { fromWire, LbError } from '../errors.js';
import { logOptions, socketsOf, type ListenerStats, type ServiceStatusStats } from '../proxy/index.js';
import { closeHandle, handleFd, type HandedSocket, type HandoverSockets } from '../runtime/index.js';
import type { HealthAuthority } from './authority.js';
import { isWorkerMessage, type PrimaryMessage, type WorkerMessage } from './messages.js';
import { mergeListeners, mergeStats, retire, retireListeners } from './stats.js';
import { WORKER_LOG_ENV, WORKER_SLOT_ENV } from './worker.js';

/** How long /stats waits for a worker's counters before using its last report. */
export const STATS_TIMEOUT_MS = 1000;
/** How long an upgrade waits for a worker to send its listening sockets. */
const SOCKETS_TIMEOUT_MS = 5000;
/** A worker that dies within this long of starting is restarted after a delay doubling each time (up to 10 s). */
const QUICK_DEATH_MS = 5000;
const MAX_RESTART_DELAY_MS = 10_000;

/** A worker that refused a reload, and its error (code and fields as the worker raised it). */
export interface Refusal {
  readonly worker: number;
  readonly error: LbError;
}

interface Slot {
  readonly id: number;
  worker: Worker | undefined;
  started: boolean;
  startedAt: number;
  quickDeaths: number;
  lastStats: ServiceStatusStats[] | undefined;
  /** Its passthrough listeners as its last stats report had them. */
  lastListeners: ListenerStats[] | undefined;
  restart: NodeJS.Timeout | undefined;
  /** Settled by the first `started` or `failed` (start-up waits on it). */
  ready: { resolve: (listening: Extract<WorkerMessage, { type: 'started' }>) => void; reject: (error: LbError) => void } | undefined;
  /** Set when told to stop: resolved by `draining` or by its exit. */
  drained: (() => void) | undefined;
  /** The configuration this worker was last given (to start on, or to reload: it may have refused). */
  running: Config | undefined;
}

type Reply = Extract<WorkerMessage, { type: 'reloaded' | 'stats' }>;

export class ClusterPrimary {
  private readonly slots: Slot[];
  private readonly pending = new Map<number, { slot: Slot; resolve: (reply: Reply | undefined) => void }>();
  private nextId = 1;
  /** Last reports of dead workers, summed (see stats.ts). */
  private retired: ServiceStatusStats[] = [];
  private retiredListeners: ListenerStats[] = [];
  private stopping = false;
  private broadcastQueued = false;
  private reloading = false;
  private exits: (() => void) | undefined;
  /** The log options read at start: a worker restarted after a reload logs as its siblings do. */
  private readonly logEnv: string;
  /** Listening sockets requested from a worker (an upgrade), by request id: the handles so far. */
  private readonly socketRequests = new Map<number, { readonly slot: Slot; readonly handles: { name: string; handle: unknown }[]; resolve: (done: boolean) => void }>();

  /**
   * @param sockets Listening sockets this primary inherited for the services of `config` (fds of
   *   this process). Every worker started or restarted listens on them (node:cluster opens a
   *   `listen({ fd })` in the primary and shares it) for as long as one worker holds them open;
   *   a reload that drops a service drops its socket, and once every worker is gone they are
   *   closed, so workers started after that bind their endpoints.
   */
  constructor(
    private config: Config,
    count: number,
    private readonly authority: HealthAuthority,
    private readonly logger: Logger,
    private sockets: readonly HandedSocket[] = [],
  ) {
    this.logEnv = JSON.stringify(logOptions(config));
    this.slots = Array.from({ length: count }, (_, i): Slot => ({
      id: i + 1,
      worker: undefined,
      started: false,
      startedAt: 0,
      quickDeaths: 0,
      lastStats: undefined,
      lastListeners: undefined,
      restart: undefined,
      ready: undefined,
      drained: undefined,
      running: undefined,
    }));
    const changed = (): void => this.queueBroadcast();
    authority.events.on('health', changed);
    authority.events.on('state', changed);
  }

  get workers(): number {
    return this.slots.length;
  }

  /** Sends `signal` to every live worker, by PID. */
  signalWorkers(signal: NodeJS.Signals): void {
    for (const slot of this.slots) if (slot.worker !== undefined && !slot.worker.isDead()) slot.worker.process.kill(signal);
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
      const [first] = await Promise.all(started);
      if (first === undefined) throw new LbError('LB_ERR_INVALID_ARGUMENT', 'a cluster needs at least one worker');
      return first;
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
    const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(slot.id), [WORKER_LOG_ENV]: this.logEnv });
    slot.worker = worker;
    worker.on('message', (message: unknown, handle: unknown) => {
      if (!isWorkerMessage(message)) return;
      if (message.type === 'socket') this.socketRequests.get(message.id)?.handles.push({ name: message.name, handle });
      else this.onMessage(slot, worker, message);
    });
    worker.on('exit', (code, signal) => this.onExit(slot, worker, code, signal));
    worker.on('error', (error: Error) => this.logger.warn({ worker: slot.id, error: error.message }, 'worker channel error'));
  }

  private onMessage(slot: Slot, worker: Worker, message: WorkerMessage): void {
    if (slot.worker !== worker) return;
    switch (message.type) {
      case 'hello':
        if (this.stopping) {
          // Forked (a restart) before a stop whose message it could not hear yet: it must not start serving.
          this.send(slot, { type: 'stop', drainMs: 0 });
          return;
        }
        slot.running = this.config;
        this.send(slot, { type: 'start', config: this.config, statuses: this.authority.shared(), sockets: this.sockets });
        return;
      case 'started':
        if (this.stopping) this.send(slot, { type: 'stop', drainMs: 0 }); // started as the stop went out
        slot.started = true;
        this.logger.info({ worker: slot.id, pid: worker.process.pid }, 'worker started');
        slot.ready?.resolve(message);
        slot.ready = undefined;
        if (!this.reloading) this.realign();
        return;
      case 'failed':
        if (slot.ready !== undefined) slot.ready.reject(fromWire(message.error));
        else this.logger.error({ worker: slot.id, code: message.error.code, problems: fromWire(message.error).lines() }, 'worker failed to start');
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
      case 'sockets':
        this.socketRequests.get(message.id)?.resolve(true);
        return;
      case 'socket': // taken in fork(), with its handle
        return;
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
    for (const request of this.socketRequests.values()) if (request.slot === slot) request.resolve(false);
    // The last worker holding the inherited sockets is gone, and node:cluster has closed them.
    if (this.slots.every((each) => each.worker === undefined)) this.sockets = [];
    if (slot.lastStats !== undefined) this.retired = mergeStats(retire(slot.lastStats), [this.retired]);
    slot.lastStats = undefined;
    if (slot.lastListeners !== undefined) this.retiredListeners = retireListeners(this.retiredListeners, slot.lastListeners);
    slot.lastListeners = undefined;
    slot.drained?.();
    if (slot.ready !== undefined) {
      slot.ready.reject(new LbError('LB_ERR_WORKER_EXITED', `worker ${slot.id} exited before listening (${signal ?? `exit code ${code}`})`));
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
        if (reply?.type === 'stats') {
          slot.lastStats = [...reply.services];
          slot.lastListeners = [...reply.listeners];
        }
        return slot.lastStats;
      }),
    );
    return mergeStats(this.authority.stats(), [this.retired, ...reports.filter((report): report is ServiceStatusStats[] => report !== undefined)]);
  }

  /** Passthrough listeners summed over the workers' reports the last stats() gathered (see stats.ts mergeListeners). */
  listenerStats(): ListenerStats[] {
    const live = this.slots.flatMap((slot) => (slot.worker === undefined || slot.lastListeners === undefined ? [] : [slot.lastListeners]));
    return mergeListeners(this.retiredListeners, live);
  }

  /**
   * Applies a configuration the primary has loaded and validated: health first (names resolved
   * here; LbError and nothing changed if one resolves nowhere), then every worker reloads it.
   * If every worker that answered refused it (a port that cannot be bound, say), the primary goes
   * back to `previous` too and this rejects with the first refusal, so the reload is refused as a
   * whole as in a single process. Otherwise resolves with the workers that refused, and why.
   */
  async reload(next: Config, previous: Config): Promise<Refusal[]> {
    this.reloading = true;
    try {
      return await this.reloadNow(next, previous);
    } finally {
      this.reloading = false;
    }
  }

  private async reloadNow(next: Config, previous: Config): Promise<Refusal[]> {
    await this.authority.apply(next);
    this.config = next;
    // A socket whose service is gone is closed by the workers' reload: never listen on its fd again.
    const configured = new Set(socketsOf(next).map(({ name }) => name));
    this.sockets = this.sockets.filter(({ name }) => configured.has(name));
    this.broadcast();
    const replies = await Promise.all(
      this.slots.map(async (slot) => ({ slot, reply: slot.started ? await this.request(slot, { type: 'reload', id: this.nextId++, config: next }) : undefined })),
    );
    const refused: Refusal[] = [];
    let answered = 0;
    for (const { slot, reply } of replies) {
      if (reply?.type !== 'reloaded') continue;
      answered++;
      slot.running = next;
      if (reply.error !== null) refused.push({ worker: slot.id, error: fromWire(reply.error) });
    }
    const firstRefusal = refused[0];
    if (firstRefusal !== undefined && refused.length === answered) {
      for (const { slot, reply } of replies) if (reply?.type === 'reloaded') slot.running = previous; // they kept it
      this.config = previous;
      await this.authority.apply(previous).catch(() => undefined); // resolved a moment ago; a failure leaves `next`'s checks
      this.broadcast();
      this.realign();
      throw firstRefusal.error;
    }
    this.realign();
    return refused;
  }

  /**
   * A worker (re)started while a reload was in flight may run another configuration than the
   * primary's: have it reload the primary's (best effort; a refusal is logged).
   */
  private realign(): void {
    for (const slot of this.slots) {
      if (!slot.started || slot.running === this.config) continue;
      const config = this.config;
      slot.running = config;
      void this.request(slot, { type: 'reload', id: this.nextId++, config }).then((reply) => {
        if (reply?.type === 'reloaded' && reply.error !== null) {
          this.logger.error({ worker: slot.id, code: reply.error.code, problems: fromWire(reply.error).lines() }, 'worker refused the reload: it still runs the previous configuration');
        }
      });
    }
  }

  /**
   * The listening sockets, for a new l4lb (an upgrade): a started worker sends each of its
   * listeners' handles (node:cluster shares one socket among all, so one worker's are every
   * worker's); they arrive here as handles this process opens but never listens on. `release()`
   * closes them once the new l4lb has its own copies. Rejects with LbError if no worker answers.
   */
  async handoverSockets(): Promise<HandoverSockets> {
    const slot = this.slots.find((each) => each.started && each.worker?.isConnected() === true);
    if (slot === undefined || this.stopping) throw new LbError('LB_ERR_WORKER_EXITED', 'no worker is running to hand its listening sockets over');
    const id = this.nextId++;
    const handles: { name: string; handle: unknown }[] = [];
    const done = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), SOCKETS_TIMEOUT_MS);
      this.socketRequests.set(id, {
        slot,
        handles,
        resolve: (complete) => {
          clearTimeout(timer);
          resolve(complete);
        },
      });
      this.send(slot, { type: 'sockets', id });
    });
    this.socketRequests.delete(id);
    const release = (): void => {
      for (const { handle } of handles) closeHandle(handle);
    };
    if (!done) {
      release();
      throw new LbError('LB_ERR_WORKER_EXITED', `worker ${slot.id} did not send its listening sockets within ${SOCKETS_TIMEOUT_MS} ms`);
    }
    const sockets: HandedSocket[] = [];
    for (const { name, handle } of handles) {
      const fd = handleFd(handle);
      if (fd !== undefined) sockets.push({ name, fd });
    }
    return { sockets, release };
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
          // A second stop waits with the first: both resolve when the worker reports it has drained.
          const earlier = slot.drained;
          slot.drained = earlier === undefined ? resolve : () => (earlier(), resolve());
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
