/**
 * The splicer: moves bytes both ways between two connected TCP sockets, as HAProxy's `mode tcp`
 * does, keeping TCP's semantics across the proxy (RFC 9293):
 *
 * - Half-close (§3.6): a FIN read from one side becomes `end()` (a FIN, sent once the bytes before
 *   it are written) on the other side, while the other direction keeps flowing. Each socket closes
 *   by itself once it has both read and sent a FIN (`allowHalfOpen: true`, `autoDestroy`); the
 *   splice ends when both have closed.
 * - Resets: an error on one side (ECONNRESET, EPIPE, …) resets the other (`resetAndDestroy`, i.e.
 *   SO_LINGER 0 then close → RST), discarding what was still queued for it, as the peer did.
 * - Backpressure: when the writer refuses more (`write()` returns false) the reader is paused until
 *   the writer's 'drain'. A paused socket stops reading from the kernel once its readable buffer
 *   reaches its high-water mark, so what the splice holds in user space per direction is bounded
 *   by one read chunk plus the two high-water marks, whatever the peers do (`buffered()` reports it).
 * - Idle timeout: one Node socket timer on the client socket, refreshed by Node itself on every
 *   read and write. Every byte moved in either direction is a read or a write on the client
 *   socket, so it sees all the connection's activity: no timer per chunk, no second timer.
 *
 * The per-chunk path is `forward()` and nothing else: no logging, no allocation beyond the chunk
 * Node hands over. Reusing read buffers (issue 7, `onread`) replaces that one function and the
 * 'data' subscription; a reused buffer must then stay untouched until its write completes.
 */
import type { Socket } from 'node:net';

/** How a spliced connection ended (the splice's part of the access log's `end`). */
export type SpliceEnd =
  | 'client-close' // the client sent the first FIN and both directions then finished
  | 'backend-close' // the backend sent the first FIN and both directions then finished
  | 'client-reset' // the client socket failed (RST received, EPIPE, …): the backend was reset
  | 'backend-reset' // the backend socket failed: the client was reset
  | 'idle-timeout' // no byte moved either way for the idle timeout
  | 'proxy-header-not-allowed' // a peer outside proxyProtocol.accept started with a PROXY header (the screen refused it)
  | 'backend-down' // ended by the balancer: its backend went down and the service says onDown: close
  | 'shutdown'; // ended by the balancer (drain deadline passed)

/**
 * Looks at the client's first bytes before they are forwarded (src/proxy/proxy-header.ts): returns
 * the bytes to forward (held ones included) and is then no longer asked, or 'hold' to see more,
 * or 'refuse' to end the connection with 'proxy-header-not-allowed'.
 */
export interface ClientScreen {
  push(chunk: Buffer): Buffer | 'hold' | 'refuse';
  /** The client sent its FIN: what is still held, to forward before it. */
  flush(): Buffer | undefined;
}

export interface SpliceOptions {
  /** Inactivity (no byte moved either way) after which both sockets are destroyed; 0 = never. */
  readonly idleTimeoutMs: number;
  /** Called once, after both sockets have closed. */
  readonly onEnd: (splice: Splice) => void;
  /** Checks the first client bytes (absent: every byte is forwarded as it comes). */
  readonly screen?: ClientScreen;
}

/**
 * Pre: the reader may be paused; `to` is writable. Post: the chunk is queued on `to`; if `to` is
 * over its high-water mark, `from` is paused (resumed by `to`'s 'drain').
 */
function forward(from: Socket, to: Socket, chunk: Buffer): void {
  if (!to.write(chunk)) from.pause();
}

export class Splice {
  /** Bytes read from the client (and queued to the backend). */
  bytesUp = 0;
  /** Bytes read from the backend (and queued to the client). */
  bytesDown = 0;
  /** The error code that ended the splice, when a socket failed. */
  errorCode: string | undefined;
  private firstFin: 'client' | 'backend' | undefined;
  private abortReason: SpliceEnd | undefined;
  private closed = 0;
  private endReason: SpliceEnd | undefined;
  private screen: ClientScreen | undefined;

  /**
   * Pre: both sockets connected, created with `allowHalfOpen: true`, with no 'data' listener; the
   * client may be paused (it is resumed here). Post: bytes flow both ways until both close.
   */
  constructor(
    readonly client: Socket,
    readonly backend: Socket,
    private readonly options: SpliceOptions,
  ) {
    this.screen = options.screen;
    client.on('data', this.onClientData);
    backend.on('data', this.onBackendData);
    client.on('end', this.onClientEnd);
    backend.on('end', this.onBackendEnd);
    client.on('drain', this.onClientDrain);
    backend.on('drain', this.onBackendDrain);
    client.on('error', this.onClientError);
    backend.on('error', this.onBackendError);
    client.on('close', this.onSocketClose);
    backend.on('close', this.onSocketClose);
    if (options.idleTimeoutMs > 0) {
      client.setTimeout(options.idleTimeoutMs);
      client.on('timeout', this.onIdle);
    }
    client.resume();
    backend.resume();
  }

  /** Undefined while the connection is open. */
  get reason(): SpliceEnd | undefined {
    return this.endReason;
  }

  /** Bytes held in this process for the connection: both sockets' read and write buffers. */
  buffered(): number {
    const { client, backend } = this;
    return client.readableLength + client.writableLength + backend.readableLength + backend.writableLength;
  }

  /** Ends the connection now (both sockets destroyed); `onEnd` follows once both have closed. */
  destroy(reason: SpliceEnd = 'shutdown'): void {
    this.abortReason ??= reason;
    this.client.destroy();
    this.backend.destroy();
  }

  private readonly onClientData = (chunk: Buffer): void => {
    if (this.screen !== undefined) {
      const passed = this.screened(chunk);
      if (passed === undefined) return;
      chunk = passed;
    }
    this.bytesUp += chunk.length;
    forward(this.client, this.backend, chunk);
  };

  /** The bytes to forward once the screen let them pass; undefined while it holds or after it refused. */
  private screened(chunk: Buffer): Buffer | undefined {
    const verdict = (this.screen as ClientScreen).push(chunk);
    if (verdict === 'hold') return undefined;
    this.screen = undefined;
    if (verdict !== 'refuse') return verdict;
    this.destroy('proxy-header-not-allowed');
    return undefined;
  }

  private readonly onBackendData = (chunk: Buffer): void => {
    this.bytesDown += chunk.length;
    forward(this.backend, this.client, chunk);
  };

  private readonly onClientDrain = (): void => {
    this.backend.resume();
  };

  private readonly onBackendDrain = (): void => {
    this.client.resume();
  };

  private readonly onClientEnd = (): void => {
    const held = this.screen?.flush();
    this.screen = undefined;
    if (held !== undefined) {
      this.bytesUp += held.length;
      this.backend.write(held);
    }
    this.firstFin ??= 'client';
    this.backend.end();
  };

  private readonly onBackendEnd = (): void => {
    this.firstFin ??= 'backend';
    this.client.end();
  };

  private readonly onClientError = (error: NodeJS.ErrnoException): void => {
    this.fail('client-reset', error, this.backend);
  };

  private readonly onBackendError = (error: NodeJS.ErrnoException): void => {
    this.fail('backend-reset', error, this.client);
  };

  private readonly onIdle = (): void => {
    this.destroy('idle-timeout');
  };

  private fail(reason: SpliceEnd, error: NodeJS.ErrnoException, peer: Socket): void {
    if (this.abortReason === undefined) {
      this.abortReason = reason;
      this.errorCode = error.code ?? error.message;
    }
    if (!peer.destroyed) peer.resetAndDestroy();
  }

  private readonly onSocketClose = (): void => {
    if (++this.closed < 2) return;
    this.client.setTimeout(0);
    this.endReason = this.abortReason ?? (this.firstFin === 'backend' ? 'backend-close' : 'client-close');
    this.options.onEnd(this);
  };
}
