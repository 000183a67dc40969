/**
 * One client connection's life: accepted (paused) → maybe queued → connecting to a backend, with
 * a connect timeout and retries on the first candidate, in the key's own order, that this
 * connection has not tried yet (HAProxy's `retries` with redispatch, `chash_get_server_hash(…,
 * avoid)`) — by name, not by position, because the failure itself may mark the backend down and
 * so shorten the health gate's walk under the retry →
 * spliced → ended, logged once. Backends at their maxConnections are skipped without counting as a
 * retry. The service decides admission; this file only walks candidates and connects.
 */
import { connect, type Socket, type TcpNetConnectOpts } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { HashKey } from '../hashing/index.js';
import type { ConnectionEndpoints } from '../proxy-protocol/index.js';
import type { SourceLease } from '../rules/index.js';
import { formatAddress, roundMs, type AccessRecord, type EndReason } from './access-log.js';
import type { Waiter } from './limits.js';
import type { Flow, ResolvedBackend, ServicePlan } from '../services/index.js';
import { writeProxyHeader } from './proxy-header.js';
import { nextReadBuffer } from './read-buffers.js';
import { Splice, spliceRead, type ClientScreen, type SpliceOptions } from './splice.js';

export type ConnectionState = 'accepted' | 'queued' | 'connecting' | 'spliced' | 'ended';

/** What a connection needs from its service. */
export interface ConnectionHost {
  /** Called once per connection, after it ended: release slots, log, wake waiters. */
  connectionEnded(connection: ClientConnection, record: AccessRecord): void;
  /** A backend slot was given back while the connection goes on (a failed attempt). */
  backendReleased(): void;
}

/** `undefined`: every remaining candidate is at its maxConnections; `null`: no candidate at all. */
export type Candidate = ResolvedBackend | undefined | null;

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

/**
 * Listeners are module functions shared by every connection (`this` is the socket, which points
 * at its connection), so a connection allocates no closures: issue 7's per-connection cost.
 */
const CONNECTION = Symbol('l4lb.connection');

type OwnedSocket = Socket & { [CONNECTION]?: ClientConnection };

function connectionOf(socket: Socket): ClientConnection {
  return (socket as OwnedSocket)[CONNECTION] as ClientConnection;
}

function onBackendConnect(this: Socket): void {
  connectionOf(this).connected();
}

function onConnectError(this: Socket, error: NodeJS.ErrnoException): void {
  connectionOf(this).connectFailed('connect-failed', error.code ?? error.message);
}

function onConnectTimeout(this: Socket): void {
  connectionOf(this).connectFailed('connect-timeout', undefined);
}

function onEarlyClientError(this: Socket, error: NodeJS.ErrnoException): void {
  connectionOf(this).finish('client-aborted', error.code ?? error.message);
}

function onEarlyClientClose(this: Socket): void {
  connectionOf(this).finish('client-aborted');
}

/** Destroys a backend socket nobody listens to any more; a late error on it must not crash the process. */
function discard(socket: Socket): void {
  socket.on('error', ignoreError);
  socket.destroy();
}

export class ClientConnection implements Waiter, Flow, SpliceOptions {
  state: ConnectionState = 'accepted';
  key: HashKey = EMPTY_KEY;
  anchor = 0;
  queuedAt = 0;
  queueTimer: NodeJS.Timeout | undefined;
  splice: Splice | undefined;
  private readonly acceptedAt = performance.now();
  private plan: ServicePlan | undefined;
  private backend: ResolvedBackend | undefined;
  private pending: Socket | undefined;
  /** Names of the backends whose connect failed, in order; allocated on the first failure only. */
  private failed: string[] | undefined;
  private retries = 0;
  private connectStartedAt = 0;
  private connectMs = -1;
  private queueMs = 0;
  /** The last backend tried, for the log when no attempt succeeded. */
  private tried: ResolvedBackend | undefined;
  /** Set by finish(): whether the connection held a service slot until then. */
  heldServiceSlot = false;
  /** Issue 5: the client and destination a trusted PROXY header named (undefined: the socket's own). */
  proxied: ConnectionEndpoints | undefined;
  /** Issue 5: the per-source limiter's hold on this connection, released when it ends. */
  lease: SourceLease | undefined;
  /** Issue 5: checks the first bytes of a peer outside proxyProtocol.accept, at splice time. */
  screen: ClientScreen | undefined;
  /** Issue 5: refused by source rules: summarised by the service instead of an access-log line. */
  quiet = false;

  constructor(
    private readonly host: ConnectionHost,
    readonly client: Socket,
  ) {
    (client as OwnedSocket)[CONNECTION] = this;
    client.on('error', onEarlyClientError);
    client.on('close', onEarlyClientClose);
  }

  /** The backend this connection holds a slot on (connecting or spliced), if any. */
  get currentBackend(): ResolvedBackend | undefined {
    return this.backend;
  }

  /** Client address:port, for the log: the effective client (a trusted PROXY header's source, else the peer). */
  get clientAddress(): string {
    return formatAddress(this.clientHost, this.clientPort);
  }

  /** The effective client address, for hashing and rules; undefined once the socket is gone. */
  get clientHost(): string | undefined {
    return this.proxied === undefined ? this.client.remoteAddress : this.proxied.source.address;
  }

  get clientPort(): number | undefined {
    return this.proxied === undefined ? this.client.remotePort : this.proxied.source.port;
  }

  /** What a header sent on to the backend carries: the effective client and the destination it asked for. */
  private endpoints(): ConnectionEndpoints | undefined {
    if (this.proxied !== undefined) return this.proxied;
    const { remoteAddress, remotePort, localAddress, localPort } = this.client;
    if (remoteAddress === undefined || remotePort === undefined || localAddress === undefined || localPort === undefined) return undefined;
    return { source: { address: remoteAddress, port: remotePort }, destination: { address: localAddress, port: localPort } };
  }

  /** Left the wait queue, to be started or refused. */
  dequeued(now: number): void {
    this.queueMs = now - this.queuedAt;
  }

  /**
   * Pre: state accepted or queued; `candidate.backend` has room. Post: connecting to it, the
   * backend's counters incremented; `plan` is kept for the retries.
   */
  start(plan: ServicePlan, backend: ResolvedBackend): void {
    this.plan = plan;
    this.connectTo(backend);
  }

  private connectTo(backend: ResolvedBackend): void {
    const plan = this.plan as ServicePlan;
    this.state = 'connecting';
    this.backend = backend;
    this.tried = backend;
    backend.counters.current++;
    backend.counters.total++;
    this.connectStartedAt = performance.now();
    const options: BackendConnectOptions = {
      host: backend.address.host,
      port: backend.address.port,
      allowHalfOpen: true,
      noDelay: true,
      writableHighWaterMark: 1,
      onread: BACKEND_READS,
    };
    const socket = connect(options);
    socket.setTimeout(plan.config.timeouts.connect);
    (socket as OwnedSocket)[CONNECTION] = this;
    socket.on('connect', onBackendConnect);
    socket.on('error', onConnectError);
    socket.on('timeout', onConnectTimeout);
    this.pending = socket;
  }

  private detachPending(): Socket {
    const socket = this.pending as Socket;
    socket.removeListener('connect', onBackendConnect);
    socket.removeListener('error', onConnectError);
    socket.removeListener('timeout', onConnectTimeout);
    socket.setTimeout(0);
    this.pending = undefined;
    return socket;
  }

  /** The backend accepted: splice. Pre: state connecting. */
  connected(): void {
    const socket = this.detachPending();
    this.connectMs = performance.now() - this.connectStartedAt;
    this.plan?.observe?.((this.backend as ResolvedBackend).name, true);
    this.client.removeListener('error', onEarlyClientError);
    this.client.removeListener('close', onEarlyClientClose);
    this.state = 'spliced';
    const plan = this.plan as ServicePlan;
    const send = plan.config.proxyProtocol?.send;
    if (send !== undefined) writeProxyHeader(socket, send, this.endpoints());
    this.key = EMPTY_KEY; // only the picker's walks needed it; the spliced connection keeps no copy
    this.splice = new Splice(this.client, socket, this);
  }

  /**
   * A try failed: give its slot back, report it (which may mark the backend down at once), then
   * retry on the first untried candidate with room in the gate's order as it is now, or give up.
   */
  connectFailed(failure: 'connect-timeout' | 'connect-failed', code: string | undefined): void {
    discard(this.detachPending());
    const backend = this.backend as ResolvedBackend;
    backend.counters.current--;
    backend.counters.failures++;
    this.backend = undefined;
    (this.failed ??= []).push(backend.name);
    this.plan?.observe?.(backend.name, false);
    const plan = this.plan as ServicePlan;
    const next = this.retries < plan.config.retries ? nextCandidate(plan, this, this.failed) : null;
    if (next) {
      this.retries++;
      this.connectTo(next);
    } else {
      this.finish(failure, code);
    }
    this.host.backendReleased();
  }

  /** SpliceOptions: the service's idle timeout, read once by the splice. */
  get idleTimeoutMs(): number {
    return (this.plan as ServicePlan).config.timeouts.idle;
  }

  /** SpliceOptions: both sockets closed. */
  onEnd(splice: Splice): void {
    if (splice.reason === 'backend-reset' && this.backend !== undefined) this.plan?.observe?.(this.backend.name, false);
    this.finish(splice.reason ?? 'shutdown', splice.errorCode);
  }

  /** Ends the connection now whatever its state (balancer shutdown). */
  abort(reason: 'shutdown' | 'backend-down' = 'shutdown'): void {
    if (this.state === 'spliced') this.splice?.destroy(reason);
    else this.finish(reason);
  }

  /**
   * Ends a connection that is not (or no longer) spliced, once: closes what is open, gives back
   * the backend slot, and hands the access record to the service.
   */
  finish(reason: EndReason, error?: string): void {
    if (this.state === 'ended') return;
    this.heldServiceSlot = this.state === 'connecting' || this.state === 'spliced';
    this.state = 'ended';
    if (this.pending !== undefined) discard(this.detachPending());
    const backend = this.backend;
    const splice = this.splice;
    if (backend !== undefined) {
      backend.counters.current--;
      if (splice !== undefined) {
        backend.counters.bytesUp += splice.bytesUp;
        backend.counters.bytesDown += splice.bytesDown;
      }
    }
    if (!this.client.destroyed) this.client.destroy();
    this.lease?.release();
    const shown = backend ?? this.tried;
    this.host.connectionEnded(this, {
      client: this.clientAddress,
      ...(this.proxied === undefined ? {} : { peer: formatAddress(this.client.remoteAddress, this.client.remotePort) }),
      backend: shown?.name ?? null,
      backendAddress: shown === undefined ? null : formatAddress(shown.address.host, shown.address.port),
      queueMs: roundMs(this.queueMs),
      connectMs: this.connectMs < 0 ? -1 : roundMs(this.connectMs),
      durationMs: roundMs(performance.now() - this.acceptedAt),
      bytesUp: splice?.bytesUp ?? 0,
      bytesDown: splice?.bytesDown ?? 0,
      retries: this.retries,
      end: reason,
      ...(error === undefined ? {} : { error }),
    });
  }
}
