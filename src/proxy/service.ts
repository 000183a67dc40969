/**
 * One proxy service: its current plan, admission (maxConnections with HAProxy's bounded wait
 * queue), and the counters the admin API and metrics read. Sockets come from its listening
 * sockets (src/proxy/listening-socket.ts) and from TLS passthrough routes (src/proxy/router.ts),
 * through `accept`; each arrives paused, so nothing more is read from a client until its backend
 * is connected and the splice takes over.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import type { Endpoint } from '../config/index.js';
import { LbError } from '../errors.js';
import { flowKey } from '../hashing/index.js';
import { logAccess, type AccessRecord } from './access-log.js';
import { ClientConnection, nextCandidate, type ConnectionHost, type ConnectionState, type Routing } from './connection.js';
import { DescriptorBudget } from './descriptors.js';
import { IdleSweeper, idleSweeper } from './idle-sweeper.js';
import { ACCEPT_PAUSE_MS, BurstGate, pausesAccepting, type LocalErrorCode } from './local-errors.js';
import { WaitQueue, type ServiceCounters } from './queue.js';
import type { ServicePlan } from '../services/index.js';
import { isRejection, type Rejection } from './rejections.js';
import { SourceGate } from './source-rules.js';

export interface BackendStats {
  name: string;
  address: string;
  current: number;
  total: number;
  failures: number;
  bytesUp: number;
  bytesDown: number;
}

export interface ServiceStats {
  name: string;
  /** Where clients reach it: its first own address (port 0 resolved), else the first passthrough listener that routes to it. */
  listen: Endpoint;
  /** Connections connecting or spliced. */
  current: number;
  queued: number;
  /** Accepted since start. */
  total: number;
  refused: number;
  /** Bytes client → backend and back, open connections included (per backend too). */
  bytesUp: number;
  bytesDown: number;
  /** Bytes held in this process's socket buffers for open connections (the backpressure bound). */
  buffered: number;
  backends: BackendStats[];
  /** Connections ended by the PROXY header checks or refused by source rules, by reason. */
  rejected: Record<Rejection, number>;
  /** Backend connects that failed on l4lb's own side (EMFILE, …), by code: not counted against any backend. */
  localErrors: Record<string, number>;
  /** Connections reset at accept while the listener was paused for a descriptor shortage. */
  pausedRefused: number;
}


/** What a service waits on; production passes nothing and gets the process's clock and sweeper. */
export interface ProxyServiceOptions {
  /** Queue, PROXY header and per-source rate timing, and the access log's timings. Default: the system clock. */
  readonly clock?: Clock;
  /**
   * Idle timeouts of spliced connections; must run on `clock`. Default: the process's sweeper on
   * the system clock, or a sweeper of the service's own on `clock` when one is given.
   */
  readonly idleSweeper?: IdleSweeper;
  /** The process's descriptor budget, shared by every service of a balancer (default: unbounded). */
  readonly descriptors?: DescriptorBudget;
}

/** The key `sni` hashes: the server name's bytes. */
function nameKey(name: string): Uint8Array {
  return Buffer.from(name, 'latin1');
}

export class ProxyService implements ConnectionHost {
  private readonly open = new Set<ClientConnection>();
  private readonly queue: WaitQueue<ClientConnection>;
  private active = 0;
  private accepting = true;
  private idleWaiters: (() => void)[] = [];
  private readonly gate: SourceGate;
  /** Until this clock time, accepted sockets are reset at once (descriptors are short). */
  private pausedUntil = Number.NEGATIVE_INFINITY;
  private readonly localBursts = new BurstGate();
  private readonly budgetBursts = new BurstGate();
  private readonly descriptors: DescriptorBudget;
  readonly clock: Clock;
  readonly idleSweeper: IdleSweeper;

  /** Throws LbError LB_ERR_INVALID_ARGUMENT when `options.idleSweeper` runs on another clock than `options.clock`. */
  constructor(
    private plan: ServicePlan,
    private logger: Logger,
    /** The balancer's counters for this service's name: they outlive this instance. */
    private counters: ServiceCounters,
    options: ProxyServiceOptions = {},
  ) {
    this.clock = options.clock ?? options.idleSweeper?.clock ?? systemClock;
    this.idleSweeper = options.idleSweeper ?? (this.clock === systemClock ? idleSweeper : new IdleSweeper(this.clock));
    this.descriptors = options.descriptors ?? new DescriptorBudget(Number.POSITIVE_INFINITY);
    if (this.idleSweeper.clock !== this.clock) throw new LbError('LB_ERR_INVALID_ARGUMENT', 'ProxyService: the idle sweeper must run on the service clock');
    const { maxConnections, timeouts } = plan.config;
    this.queue = new WaitQueue(maxConnections, timeouts.queue, this.onQueueExpired, this.clock);
    this.gate = new SourceGate(plan.config, logger, this.clock);
  }

  get name(): string {
    return this.plan.config.name;
  }

  /** New connections use `plan` from now on; open and connecting ones keep theirs. */
  update(plan: ServicePlan, logger: Logger, counters: ServiceCounters): void {
    this.plan = plan;
    this.logger = logger;
    this.counters = counters;
    this.queue.setLimits(plan.config.maxConnections, plan.config.timeouts.queue);
    this.gate.update(plan.config, logger);
    this.pump();
  }

  /**
   * A client for this service: from one of its listening sockets, or from a passthrough listener
   * that read its ClientHello (`routing`; the bytes read are back on the socket, first in line).
   * Pre: `socket` is paused. Post: this service owns it (it is closed once the service closed).
   */
  readonly accept = (socket: Socket, routing?: Routing): void => {
    if (!this.accepting) {
      socket.destroy();
      return;
    }
    if (this.clock.now() < this.pausedUntil) {
      // Paused for a descriptor shortage: give the descriptor back at once, with a reset so the
      // client retries rather than reading an empty stream (HAProxy stops polling its listeners).
      this.counters.pausedRefused++;
      socket.on('error', () => {});
      socket.resetAndDestroy();
      return;
    }
    if (!this.descriptors.tryAcquire()) {
      // The budget is spent: another client would take descriptors the process may not have.
      this.counters.pausedRefused++;
      socket.on('error', () => {});
      socket.resetAndDestroy();
      const { startsBurst, previous } = this.budgetBursts.note(this.clock.now());
      if (startsBurst) this.logger.warn({ connections: this.descriptors.capacity, previousBurst: previous }, 'descriptor budget spent; new clients reset');
      return;
    }
    this.counters.total++;
    const connection = new ClientConnection(this, socket, routing);
    this.open.add(connection);
    this.gate.receive(connection, this.place);
  };

  /** After the PROXY header (if any) and the source rules: key the flow on the effective client, start or queue. */
  private readonly place = (connection: ClientConnection): void => {
    if (this.plan.hashes) {
      const address = connection.clientHost;
      if (address === undefined) {
        connection.finish('client-aborted'); // already gone: no address to key on
        return;
      }
      const { hashKey } = this.plan.config;
      const sni = connection.routing?.sni;
      // hashKey: sni keys on the server name when the ClientHello had one, else on the source address.
      connection.assignKey(hashKey === 'sni' && sni !== undefined ? nameKey(sni) : hashKey === 'source-ip-port' ? flowKey(address, connection.clientPort) : flowKey(address));
    }
    if (this.queue.length === 0 && this.tryStart(connection)) return;
    if (this.queue.push(connection)) {
      connection.markQueued(this.clock.now());
    } else {
      this.counters.refused++;
      connection.finish('refused-queue-full');
    }
  };

  /** Starts `connection` if the service and one of its candidates have room; false to keep waiting. */
  private tryStart(connection: ClientConnection): boolean {
    if (this.active >= this.plan.config.maxConnections) return false;
    const candidate = nextCandidate(this.plan, connection);
    if (candidate === undefined) return false;
    if (candidate === null) {
      connection.finish('no-backend');
      return true;
    }
    this.active++;
    connection.start(this.plan, candidate);
    return true;
  }

  /** Starts waiters, oldest first, while there is room. */
  private pump(): void {
    for (let head = this.queue.peek(); head !== undefined; head = this.queue.peek()) {
      if (this.active >= this.plan.config.maxConnections) return;
      if (nextCandidate(this.plan, head) === undefined) return;
      this.queue.shift();
      head.dequeued(this.clock.now());
      this.tryStart(head);
    }
  }

  private readonly onQueueExpired = (connection: ClientConnection): void => {
    this.counters.refused++;
    connection.dequeued(this.clock.now());
    connection.finish('refused-queue-timeout');
  };

  connectionEnded(connection: ClientConnection, record: AccessRecord, from: ConnectionState): void {
    if (from === 'queued') this.queue.remove(connection); // a client that left while waiting
    if (this.open.delete(connection)) this.descriptors.release();
    if (from === 'connecting' || from === 'spliced') this.active--;
    this.counters.closedBytesUp += record.bytesUp;
    this.counters.closedBytesDown += record.bytesDown;
    if (isRejection(record.end)) this.counters.rejected.set(record.end, (this.counters.rejected.get(record.end) ?? 0) + 1);
    if (!connection.quiet) logAccess(this.logger, record);
    if (this.open.size === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of waiters) wake();
    }
    this.pump();
  }

  backendReleased(): void {
    this.pump();
  }

  /**
   * A backend connect (`during: 'connect'`) or an accept (`'accept'`) failed on l4lb's side: counted
   * per code, logged once per burst, and accepting pauses if descriptors are short. Which of the
   * two runs out first under a descriptor limit is a matter of parity (each accepted client takes
   * one descriptor and its backend connect the next), so both count the same way.
   */
  localError(code: LocalErrorCode, during: 'connect' | 'accept' = 'connect'): void {
    this.counters.localErrors.set(code, (this.counters.localErrors.get(code) ?? 0) + 1);
    const now = this.clock.now();
    if (pausesAccepting(code)) this.pausedUntil = now + ACCEPT_PAUSE_MS;
    const { startsBurst, previous } = this.localBursts.note(now);
    if (startsBurst) {
      this.logger.warn(
        { code, during, previousBurst: previous, pauseMs: pausesAccepting(code) ? ACCEPT_PAUSE_MS : 0 },
        `${during === 'accept' ? 'accept' : 'backend connect'} failed on l4lb's side; backends not marked down`,
      );
    }
  }

  /** Ends the established and connecting connections of backend `name` (onDown: close). O(open connections). */
  closeBackend(name: string): void {
    for (const connection of [...this.open]) if (connection.currentBackend?.name === name) connection.abort('backend-down');
  }

  /** Whether a new connection could start now (for a health change that made candidates usable again). */
  healthChanged(): void {
    this.pump();
  }

  /**
   * Stops accepting (its listening sockets are the balancer's to close), refuses queued clients,
   * lets open connections finish for up to `drainMs`, then ends the rest. Resolves once every
   * connection has ended.
   */
  async close(drainMs: number): Promise<void> {
    this.accepting = false;
    this.gate.close();
    for (const waiter of this.queue.drain()) waiter.finish('shutdown');
    if (this.open.size > 0) {
      const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, drainMs);
      });
      await Promise.race([idle, deadline]);
      clearTimeout(timer);
      if (this.open.size > 0) {
        for (const connection of [...this.open]) connection.abort();
        await idle;
      }
    }
  }

  /** Backends of the plan new connections are placed with. O(1). */
  get backendCount(): number {
    return this.plan.backends.length;
  }

  /**
   * `listen`: where clients reach it (the balancer knows its sockets). Cost: O(open connections +
   * backends); for the admin API and metrics, not the data path.
   */
  stats(listen: Endpoint): ServiceStats {
    const backends = this.plan.backends.map(
      (backend): BackendStats => ({
        name: backend.name,
        address: backend.configured,
        current: backend.counters.current,
        total: backend.counters.total,
        failures: backend.counters.failures,
        bytesUp: backend.counters.bytesUp,
        bytesDown: backend.counters.bytesDown,
      }),
    );
    const byName = new Map(backends.map((row) => [row.name, row]));
    let bytesUp = this.counters.closedBytesUp;
    let bytesDown = this.counters.closedBytesDown;
    let buffered = 0;
    for (const connection of this.open) {
      const splice = connection.splice;
      if (splice === undefined) continue;
      bytesUp += splice.bytesUp;
      bytesDown += splice.bytesDown;
      buffered += splice.buffered();
      const row = byName.get(connection.currentBackend?.name ?? '');
      if (row !== undefined) {
        row.bytesUp += splice.bytesUp;
        row.bytesDown += splice.bytesDown;
      }
    }
    return {
      name: this.name,
      listen,
      current: this.active,
      queued: this.queue.length,
      total: this.counters.total,
      refused: this.counters.refused,
      localErrors: Object.fromEntries(this.counters.localErrors),
      pausedRefused: this.counters.pausedRefused,
      bytesUp,
      bytesDown,
      buffered,
      backends,
      rejected: Object.fromEntries(this.counters.rejected) as Record<Rejection, number>,
    };
  }
}
