/**
 * One client connection's life: accepted (paused) → maybe queued → placed: connecting to a
 * backend, with a connect timeout and retries on the first candidate, in the key's own order, that
 * this connection has not tried yet (HAProxy's `retries` with redispatch, `chash_get_server_hash(…,
 * avoid)`) — by name, not by position, because the failure itself may mark the backend down and
 * so shorten the health gate's walk under the retry →
 * spliced → ended, logged once. Backends at their maxConnections are skipped without counting as a
 * retry. The service decides admission; this file only walks candidates and connects.
 *
 * This file is the only writer of a connection's state: the service and the source gate call its
 * methods (`markQueued()`, `start()`, `refuse()`, …). States that hold different things are
 * different types: a connection not yet placed has no plan and no backend; `start()` gives it a
 * `Placement`, which holds the plan, the backend tried and then the splice. The backend socket and
 * the splice report to the placement, so nothing here asks whether a plan is there yet.
 *
 * Cost: a connection is this object, its placement once started, its two sockets and its splice.
 * Listeners are module functions shared by every connection (`this` is the socket, which points
 * at its owner), so a connection allocates no closures.
 */
import { connect, type Socket, type TcpNetConnectOpts } from 'node:net';
import type { Clock } from '../clock.js';
import type { HashKey } from '../hashing/index.js';
import type { ConnectionEndpoints } from '../proxy-protocol/index.js';
import type { SourceLease } from '../rules/index.js';
import { isLocalError, type LocalErrorCode } from './local-errors.js';
import { formatAddress, roundMs, type AccessRecord, type EndReason, type SourceRefusal } from './access-log.js';
import type { IdleSweeper } from './idle-sweeper.js';
import type { Flow, ResolvedBackend, ServicePlan } from '../services/index.js';
import { writeProxyHeader } from './proxy-header.js';
import { nextReadBuffer } from './read-buffers.js';
import { Splice, spliceRead, type ClientScreen, type SpliceOptions } from './splice.js';

export type ConnectionState = 'accepted' | 'queued' | 'connecting' | 'spliced' | 'ended';

/** How a passthrough listener routed a connection (src/proxy/router.ts): its access line carries it. */
export interface Routing {
  /** The listener's socket name (`listener 127.0.0.1:8443`). */
  readonly listener: string;
  /** The ClientHello's server name, if it had one. */
  readonly sni?: string;
  /** What the inspection found (l4lb_sni_inspect_total's `result`). */
  readonly inspect: string;
}

/** What a connection needs from its service. */
export interface ConnectionHost {
  /** Times the connection (queue, connect, duration) and its per-source admission. */
  readonly clock: Clock;
  /** Watches the connection once spliced, for its idle timeout; runs on `clock`. */
  readonly idleSweeper: IdleSweeper;
  /**
   * Called once per connection, after it ended: release slots, log, wake waiters. `from` is the
   * state it ended in: 'queued', it may still be in the wait queue; 'connecting' or 'spliced', it
   * held a service slot.
   */
  connectionEnded(connection: ClientConnection, record: AccessRecord, from: ConnectionState): void;
  /** A backend slot was given back while the connection goes on (a failed attempt). */
  backendReleased(): void;
  /** A backend connect failed on l4lb's side (`code`): count it, log once per burst, pause accepting if descriptors are short. */
  localError(code: LocalErrorCode): void;
}

/** `undefined`: every remaining candidate is at its maxConnections; `null`: no candidate at all. */
type Candidate = ResolvedBackend | undefined | null;

/**
 * The first candidate in the chooser's current order that has room and whose name is not in
 * `avoid` (the backends this connection already tried). Pre: `avoid` is undefined on a first pick.
 * Cost: up to n picks (n backends), times |avoid| name compares; no allocation.
 */
export function nextCandidate(plan: ServicePlan, flow: Flow, avoid?: readonly string[]): Candidate {
  let sawAny = false;
  for (let attempt = 0; attempt < plan.backends.length; attempt++) {
    const backend = plan.chooser.pick(flow, attempt);
    if (backend === undefined) break;
    if (avoid !== undefined && avoid.includes(backend.name)) continue;
    sawAny = true;
    if (backend.counters.current < backend.maxConnections) return backend;
  }
  return sawAny ? undefined : null;
}

const EMPTY_KEY: HashKey = new Uint8Array(0);

/**
 * Node passes a Duplex's own options through `connect()` (@types/node 20 does not list them):
 * a writable high-water mark of 1 makes 'drain' fire whenever the write queue empties, which is
 * the splice's backpressure rule.
 */
type BackendConnectOptions = TcpNetConnectOpts & { writableHighWaterMark: number };

/** Backend sockets read into the splicer's buffers from the start (src/proxy/read-buffers.ts). */
const BACKEND_READS = { buffer: nextReadBuffer, callback: spliceRead };

function ignoreError(): void {}

/** A client socket points at its connection, a backend socket at its placement; set before any listener is added. */
const CONNECTION = Symbol('l4lb.connection');
const PLACEMENT = Symbol('l4lb.placement');

type ClientSocket = Socket & { [CONNECTION]?: ClientConnection };
type BackendSocket = Socket & { [PLACEMENT]?: Placement };

function onBackendConnect(this: BackendSocket): void {
  this[PLACEMENT]?.connected(this);
}

function onConnectError(this: BackendSocket, error: NodeJS.ErrnoException): void {
  this[PLACEMENT]?.connectFailed(this, 'connect-failed', error.code ?? error.message);
}

function onConnectTimeout(this: BackendSocket): void {
  this[PLACEMENT]?.connectFailed(this, 'connect-timeout', undefined);
}

function onEarlyClientError(this: ClientSocket, error: NodeJS.ErrnoException): void {
  this[CONNECTION]?.finish('client-aborted', error.code ?? error.message);
}

function onEarlyClientClose(this: ClientSocket): void {
  this[CONNECTION]?.finish('client-aborted');
}

/** Resets a client socket that is still open (RST instead of FIN); a destroyed one is left as it is. */
export function resetClient(socket: Socket): void {
  if (socket.destroyed) return;
  socket.on('error', ignoreError); // resetAndDestroy on a socket without a handle reports ERR_SOCKET_CLOSED
  socket.resetAndDestroy();
}

/** Takes our connect listeners and timeout off an attempt's socket; returns it. */
function detach(socket: Socket): Socket {
  socket.removeListener('connect', onBackendConnect);
  socket.removeListener('error', onConnectError);
  socket.removeListener('timeout', onConnectTimeout);
  socket.setTimeout(0);
  return socket;
}

/** Destroys a backend socket nobody listens to any more; a late error on it must not crash the process. */
function discard(socket: Socket): void {
  socket.on('error', ignoreError);
  socket.destroy();
}

/**
 * The backend side of a placed connection: the plan it was placed with, its attempts (one backend
 * slot held at a time), then its splice. Made by `ClientConnection.start()`; its backend sockets
 * and its splice (as SpliceOptions) call it back.
 */
class Placement implements SpliceOptions {
  /** The backend of the attempt under way, or of the last one (what the log names). */
  private backend: ResolvedBackend;
  /** Whether `backend.counters.current` counts this connection. */
  private holdsSlot = false;
  /** Connecting: the attempt's socket; spliced: the splice; undefined once the last attempt failed. */
  private link: Socket | Splice | undefined;
  /** Names of the backends whose connect failed, in order; allocated on the first failure only. */
  private failed: string[] | undefined;
  private retriesMade = 0;
  private connectStartedAt = 0;
  /** The successful attempt's connect time, ms; -1 until one succeeds. */
  private connectTook = -1;

  /** Pre: `first` has room. Post: connecting to it, its counters incremented. */
  constructor(
    private readonly connection: ClientConnection,
    private readonly host: ConnectionHost,
    private readonly plan: ServicePlan,
    first: ResolvedBackend,
  ) {
    this.backend = first;
    this.link = this.connect();
  }

  get state(): 'connecting' | 'spliced' {
    return this.link instanceof Splice ? 'spliced' : 'connecting';
  }

  get splice(): Splice | undefined {
    return this.link instanceof Splice ? this.link : undefined;
  }

  /** The backend this connection holds a slot on (connecting or spliced), if any. */
  get currentBackend(): ResolvedBackend | undefined {
    return this.holdsSlot ? this.backend : undefined;
  }

  get lastTried(): ResolvedBackend {
    return this.backend;
  }

  get retries(): number {
    return this.retriesMade;
  }

  get connectMs(): number {
    return this.connectTook;
  }

  /** SpliceOptions: the service's idle timeout, read once by the splice. */
  get idleTimeoutMs(): number {
    return this.plan.config.timeouts.idle;
  }

  /** SpliceOptions. */
  get idleSweeper(): IdleSweeper {
    return this.host.idleSweeper;
  }

  /** SpliceOptions. */
  get screen(): ClientScreen | undefined {
    return this.connection.screen;
  }

  /** Pre: `this.backend` is the one to try and has room. Post: its slot is held; returns the attempt's socket. */
  private connect(): Socket {
    const backend = this.backend;
    this.holdsSlot = true;
    backend.counters.acquire();
    this.connectStartedAt = this.host.clock.now();
    const options: BackendConnectOptions = {
      host: backend.address.host,
      port: backend.address.port,
      allowHalfOpen: true,
      noDelay: true,
      writableHighWaterMark: 1,
      onread: BACKEND_READS,
    };
    const socket: BackendSocket = connect(options);
    socket.setTimeout(this.plan.config.timeouts.connect);
    socket[PLACEMENT] = this;
    socket.on('connect', onBackendConnect);
    socket.on('error', onConnectError);
    socket.on('timeout', onConnectTimeout);
    return socket;
  }

  /** The backend accepted on `socket`: splice. Pre: connecting on `socket`. */
  connected(socket: Socket): void {
    detach(socket);
    this.connectTook = this.host.clock.now() - this.connectStartedAt;
    this.plan.observe?.(this.backend.name, true);
    const send = this.plan.config.proxyProtocol?.send;
    if (send !== undefined) writeProxyHeader(socket, send, this.connection.endpoints);
    this.link = this.connection.spliceTo(socket, this);
  }

  /**
   * The attempt on `socket` failed: give its slot back, report it (which may mark the backend
   * down at once), then retry on the first untried candidate with room in the gate's order as it
   * is now, or give up and end the connection.
   */
  connectFailed(socket: Socket, failure: 'connect-timeout' | 'connect-failed', code: string | undefined): void {
    discard(detach(socket));
    const backend = this.backend;
    this.releaseSlot();
    if (isLocalError(code)) {
      // l4lb's own shortage: not the backend's failure (no health report, no failure count), and
      // another backend would fail the same way, so no retry.
      this.link = undefined;
      this.host.localError(code);
      this.connection.finish('local-error', code);
      this.host.backendReleased();
      return;
    }
    backend.counters.failures++;
    (this.failed ??= []).push(backend.name);
    this.plan.observe?.(backend.name, false);
    const next = this.retriesMade < this.plan.config.retries ? nextCandidate(this.plan, this.connection, this.failed) : null;
    if (next) {
      this.retriesMade++;
      this.backend = next;
      this.link = this.connect();
    } else {
      this.link = undefined;
      this.connection.finish(failure, code);
    }
    this.host.backendReleased();
  }

  /** SpliceOptions: both sockets closed. */
  onEnd(splice: Splice): void {
    if (splice.reason === 'backend-reset' && this.holdsSlot) this.plan.observe?.(this.backend.name, false);
    this.connection.finish(splice.reason ?? 'shutdown', splice.errorCode);
  }

  /** The connection ended: closes an attempt still connecting, gives the slot back with the splice's bytes. */
  release(): void {
    const link = this.link;
    if (link !== undefined && !(link instanceof Splice)) discard(detach(link));
    if (!this.holdsSlot) return;
    if (link instanceof Splice) {
      this.backend.counters.bytesUp += link.bytesUp;
      this.backend.counters.bytesDown += link.bytesDown;
    }
    this.releaseSlot();
  }

  private releaseSlot(): void {
    this.backend.counters.release();
    this.holdsSlot = false;
  }
}

export class ClientConnection implements Flow {
  /** Not placed yet ('accepted', 'queued'), placed (its placement says connecting or spliced), or 'ended'. */
  private stage: 'accepted' | 'queued' | Placement | 'ended' = 'accepted';
  private flowKey: HashKey = EMPTY_KEY;
  /** Flow: the chooser's first choice, which its retries walk on from (written by the chooser, src/services/strategy.ts). */
  anchor = 0;
  private readonly acceptedAt: number;
  private queuedAt = 0;
  private queueMs = 0;
  /** The client and destination a trusted PROXY header named (undefined: the socket's own). */
  private proxied: ConnectionEndpoints | undefined;
  /** The per-source limiter's hold on this connection, released when it ends. */
  private lease: SourceLease | undefined;
  /** Checks the first bytes of a peer outside proxyProtocol.accept, at splice time. */
  private firstBytesScreen: ClientScreen | undefined;
  /** Refused by source rules: summarised by the service instead of an access-log line. */
  private refused = false;
  /** The peer's address and port, read once at accept: Node forgets them once the socket is closed. */
  private readonly peerHost: string | undefined;
  private readonly peerPort: number | undefined;

  constructor(
    private readonly host: ConnectionHost,
    readonly client: Socket,
    /** Set when a passthrough listener routed it here. */
    readonly routing?: Routing,
  ) {
    this.acceptedAt = host.clock.now();
    this.peerHost = client.remoteAddress;
    this.peerPort = client.remotePort;
    const owned: ClientSocket = client;
    owned[CONNECTION] = this;
    client.on('error', onEarlyClientError);
    client.on('close', onEarlyClientClose);
  }

  get state(): ConnectionState {
    const stage = this.stage;
    return typeof stage === 'string' ? stage : stage.state;
  }

  /** Flow: what the chooser hashes; empty for strategies that do not hash, and once spliced. */
  get key(): HashKey {
    return this.flowKey;
  }

  /** Whether its end is summarised by the service (refused by source rules) instead of logged. */
  get quiet(): boolean {
    return this.refused;
  }

  /** The screen for a peer outside proxyProtocol.accept, if one was set. */
  get screen(): ClientScreen | undefined {
    return this.firstBytesScreen;
  }

  /** The backend this connection holds a slot on (connecting or spliced), if any. */
  get currentBackend(): ResolvedBackend | undefined {
    const stage = this.stage;
    return typeof stage === 'string' ? undefined : stage.currentBackend;
  }

  /** The splice, while spliced. */
  get splice(): Splice | undefined {
    const stage = this.stage;
    return typeof stage === 'string' ? undefined : stage.splice;
  }

  /** Client address:port, for the log: the effective client (a trusted PROXY header's source, else the peer). */
  get clientAddress(): string {
    return formatAddress(this.clientHost, this.clientPort);
  }

  /** The effective client address, for hashing and rules; undefined only if the socket was gone at accept. */
  get clientHost(): string | undefined {
    return this.proxied === undefined ? this.peerHost : this.proxied.source.address;
  }

  get clientPort(): number | undefined {
    return this.proxied === undefined ? this.peerPort : this.proxied.source.port;
  }

  /** What a header sent on to the backend carries: the effective client and the destination it asked for. */
  get endpoints(): ConnectionEndpoints | undefined {
    if (this.proxied !== undefined) return this.proxied;
    const { localAddress, localPort } = this.client;
    const remoteAddress = this.peerHost;
    const remotePort = this.peerPort;
    if (remoteAddress === undefined || remotePort === undefined || localAddress === undefined || localPort === undefined) return undefined;
    return { source: { address: remoteAddress, port: remotePort }, destination: { address: localAddress, port: localPort } };
  }

  /** A trusted peer's PROXY header named `endpoints` (undefined: LOCAL or UNKNOWN, the socket's own apply). Pre: not placed. */
  headerRead(endpoints: ConnectionEndpoints | undefined): void {
    this.proxied = endpoints;
  }

  /** The client's first bytes go through `screen` once spliced. Pre: not placed. */
  screenWith(screen: ClientScreen): void {
    this.firstBytesScreen = screen;
  }

  /** Admitted by the per-source limiter: `lease` is released when the connection ends. Pre: not placed. */
  admitted(lease: SourceLease): void {
    this.lease = lease;
  }

  /** Refused by the source rules: ends now with `reason`, summarised instead of logged. */
  refuse(reason: SourceRefusal): void {
    this.refused = true;
    this.finish(reason);
  }

  /** The key the chooser hashes for this connection's picks. Pre: not placed. */
  assignKey(key: HashKey): void {
    this.flowKey = key;
  }

  /** Joined the service's wait queue at `now`. Pre: accepted. */
  markQueued(now: number): void {
    this.stage = 'queued';
    this.queuedAt = now;
  }

  /** Left the wait queue at `now`, to be started or refused. Pre: queued. */
  dequeued(now: number): void {
    this.queueMs = now - this.queuedAt;
    this.stage = 'accepted';
  }

  /** Pre: accepted (out of the queue); `backend` has room. Post: connecting to it, its counters incremented. */
  start(plan: ServicePlan, backend: ResolvedBackend): void {
    this.stage = new Placement(this, this.host, plan, backend);
  }

  /**
   * Pre: this connection's placement just connected on `backend`. Post: the client's early
   * listeners are off, the key is dropped (only the picker's walks needed it; the spliced
   * connection keeps no copy), and bytes flow both ways.
   */
  spliceTo(backend: Socket, placement: Placement): Splice {
    this.client.removeListener('error', onEarlyClientError);
    this.client.removeListener('close', onEarlyClientClose);
    this.flowKey = EMPTY_KEY;
    return new Splice(this.client, backend, placement);
  }

  /**
   * Ends the connection now whatever its state (balancer shutdown, or its backend went down). A
   * cut flow must look cut to the client: its side is reset (RST), not closed with a FIN. The
   * connection always finishes, whether or not its sockets were already destroyed.
   */
  abort(reason: 'shutdown' | 'backend-down' = 'shutdown'): void {
    const splice = this.splice;
    if (splice !== undefined) {
      splice.cut(reason);
      return;
    }
    resetClient(this.client);
    this.finish(reason);
  }

  /**
   * Ends the connection, once: closes what is open, gives back the backend slot, and hands the
   * access record to the service. A spliced connection ends here when its splice has closed.
   */
  finish(reason: EndReason, error?: string): void {
    const stage = this.stage;
    if (stage === 'ended') return;
    const from = this.state;
    this.stage = 'ended';
    const placement = typeof stage === 'string' ? undefined : stage;
    placement?.release();
    if (!this.client.destroyed) this.client.destroy();
    this.lease?.release();
    const shown = placement?.lastTried;
    const splice = placement?.splice;
    const connectMs = placement?.connectMs ?? -1;
    this.host.connectionEnded(
      this,
      {
        client: this.clientAddress,
        ...(this.proxied === undefined ? {} : { peer: formatAddress(this.peerHost, this.peerPort) }),
        backend: shown?.name ?? null,
        backendAddress: shown === undefined ? null : formatAddress(shown.address.host, shown.address.port),
        queueMs: roundMs(this.queueMs),
        connectMs: connectMs < 0 ? -1 : roundMs(connectMs),
        durationMs: roundMs(this.host.clock.now() - this.acceptedAt),
        bytesUp: splice?.bytesUp ?? 0,
        bytesDown: splice?.bytesDown ?? 0,
        retries: placement?.retries ?? 0,
        ...(this.routing === undefined ? {} : { listener: this.routing.listener, inspect: this.routing.inspect, ...(this.routing.sni === undefined ? {} : { sni: this.routing.sni }) }),
        end: reason,
        ...(error === undefined ? {} : { error }),
      },
      from,
    );
  }
}
