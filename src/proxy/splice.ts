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
 * - Backpressure: a direction holds at most one chunk. When a write cannot go out at once (the
 *   writer's queue is not empty after it), the reader stops reading from the kernel until the
 *   writer's queue is empty again ('drain', which fires whenever it empties: the sockets' writable
 *   high-water mark is 1 byte). So what the splice holds in user space per direction is one read
 *   (at most READ_BUFFER_BYTES), whatever the peers do (`buffered()` reports it).
 * - Reads (src/proxy/read-buffers.ts): each socket reads into buffers l4lb reuses; a small
 *   chunk is copied out of the shared landing buffer, a large one is written from the direction's
 *   private buffer, which is not read into again until that write has completed. Where this Node
 *   cannot adopt an accepted socket, that side reads with 'data' events under the same rule.
 * - Idle timeout: every byte moved is first read by the splice, which stamps `lastActive` on the
 *   clock of the sweeper it is given (src/proxy/idle-sweeper.ts: the process's one, unless a test
 *   injects another); the sweeper ends connections quiet for their timeout. No timer per
 *   connection, none per chunk.
 *
 * The per-chunk path is `Splice.received()` / `forward()` and nothing else: no logging, no
 * allocation but a small copy or a view of the chunk. Every listener is a module function shared
 * by all connections (`this` is the socket, which points at its splice), so a connection costs
 * two sockets and this object, and no closures.
 */
import type { Socket } from 'node:net';
import type { Clock } from '../clock.js';
import type { IdleSweeper, IdleWatched } from './idle-sweeper.js';
import { adoptUserBuffer, chooseNextBuffer, COPY_LIMIT, giveBack, readsWith, takeBuffer, type ReadCallback } from './read-buffers.js';

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
  /** Watches the splice for its idle timeout; its clock stamps `lastActive` (even when the timeout is 0). */
  readonly idleSweeper: IdleSweeper;
  /** Called once, after both sockets have closed (as a method of the options object). */
  onEnd(splice: Splice): void;
  /** Checks the first client bytes (absent: every byte is forwarded as it comes). */
  readonly screen?: ClientScreen;
}

const SPLICE = Symbol('l4lb.splice');

type SplicedSocket = Socket & { [SPLICE]?: Splice };

function spliceOf(socket: Socket): Splice {
  return (socket as SplicedSocket)[SPLICE] as Splice;
}

/**
 * The read callback of every spliced socket (`onread.callback`, or adopted): `this` is the socket.
 * A backend socket made with it before its splice exists reads nothing until then: Node starts
 * reading only after the 'connect' listeners, one of which makes the splice.
 */
export const spliceRead: ReadCallback = function (this: Socket, nread: number, buffer: Buffer): boolean {
  const splice = (this as SplicedSocket)[SPLICE];
  if (splice === undefined) {
    this.destroy(new Error('bytes read before the connection was spliced'));
    return false;
  }
  return splice.received(this, nread, buffer);
};

function onSocketData(this: Socket, chunk: Buffer): void {
  spliceOf(this).receivedOwned(this, chunk);
}

function onSocketDrain(this: Socket): void {
  spliceOf(this).drained(this);
}

function onSocketEnd(this: Socket): void {
  spliceOf(this).ended(this);
}

function onSocketError(this: Socket, error: NodeJS.ErrnoException): void {
  spliceOf(this).failed(this, error);
}

function onSocketClose(this: Socket): void {
  spliceOf(this).socketClosed();
}

/**
 * Sends a FIN to `to` once what is queued for it is written. Pre: its peer sent its own FIN.
 * When `to` has already read its peer's FIN and has nothing queued, closing it sends the same FIN
 * (nothing is unread, so no RST) and saves the shutdown() that end() would make before the close.
 */
function forwardFin(to: Socket): void {
  if (to.readableEnded && to.writableLength === 0 && !to.writableEnded) to.destroy();
  else to.end();
}

export class Splice implements IdleWatched {
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
  /** The private read buffer of each direction while it moves large chunks (read-buffers.ts). */
  private upBuffer: Buffer | undefined;
  private downBuffer: Buffer | undefined;
  /** The direction's last chunk is still queued on its writer: its reader is stopped until 'drain'. */
  private upHeld = false;
  private downHeld = false;
  /** The sweeper's clock at the last read either way (IdleWatched). */
  lastActive: number;
  readonly idleTimeoutMs: number;
  private readonly sweeper: IdleSweeper;
  private readonly clock: Clock;

  /**
   * Pre: both sockets connected, created with `allowHalfOpen: true` and a writable high-water mark
   * of 1, with no 'data' listener; the client may be paused (it is resumed here) and may hold
   * bytes in its readable buffer (a PROXY header reader put them back): they go first.
   * Post: bytes flow both ways until both close.
   */
  constructor(
    readonly client: Socket,
    readonly backend: Socket,
    private readonly options: SpliceOptions,
  ) {
    if (client.writableHighWaterMark !== 1 || backend.writableHighWaterMark !== 1) {
      throw new Error('Splice: both sockets need a writable high-water mark of 1 (see the backpressure rule)');
    }
    this.screen = options.screen;
    this.sweeper = options.idleSweeper;
    this.clock = this.sweeper.clock;
    this.lastActive = this.clock.now();
    (client as SplicedSocket)[SPLICE] = this;
    (backend as SplicedSocket)[SPLICE] = this;
    client.on('end', onSocketEnd);
    backend.on('end', onSocketEnd);
    client.on('drain', onSocketDrain);
    backend.on('drain', onSocketDrain);
    client.on('error', onSocketError);
    backend.on('error', onSocketError);
    client.on('close', onSocketClose);
    backend.on('close', onSocketClose);
    this.idleTimeoutMs = options.idleTimeoutMs;
    if (this.idleTimeoutMs > 0) this.sweeper.watch(this);
    this.startReading(client);
    this.startReading(backend);
  }

  private startReading(socket: Socket): void {
    if (!readsWith(socket, spliceRead) && !adoptUserBuffer(socket, spliceRead)) {
      socket.on('data', onSocketData);
      socket.resume();
      return;
    }
    for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) this.receivedOwned(socket, chunk);
    // read() restarts the handle's reading once the readable buffer is empty, even after a pause
    // by receivedOwned(): settle it here, held or not.
    if (socket === this.client ? this.upHeld : this.downHeld) socket.pause();
    else socket.resume();
  }

  /** Undefined while the connection is open. */
  get reason(): SpliceEnd | undefined {
    return this.endReason;
  }

  /** Private read buffers (64 KiB each) this connection holds now: 0 while no bulk transfer is under way. */
  get readBuffersHeld(): number {
    return (this.upBuffer === undefined ? 0 : 1) + (this.downBuffer === undefined ? 0 : 1);
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

  /**
   * `nread` bytes were read from `from` into `buffer` (ours: the landing buffer or the direction's
   * private one). Post: they are queued on the other socket; the buffer for the next read is
   * chosen; false (stop reading) if the write is still pending. Cost: one write, plus a copy when
   * `buffer` is the landing one: small chunks, and the one large read that starts a bulk flow
   * (after it the direction reads into its own buffer).
   */
  received(from: Socket, nread: number, buffer: Buffer): boolean {
    this.lastActive = this.clock.now();
    const up = from === this.client;
    let own = up ? this.upBuffer : this.downBuffer;
    let chunk: Buffer;
    if (buffer === own && this.screen === undefined) {
      chunk = nread === buffer.length ? buffer : buffer.subarray(0, nread);
    } else {
      chunk = Buffer.allocUnsafe(nread);
      buffer.copy(chunk, 0, 0, nread);
    }
    const held = this.forward(up, chunk);
    if (buffer === own) {
      if (held || nread === buffer.length) {
        chooseNextBuffer(own); // still queued on the writer (read into it after 'drain'), or more is waiting
      } else {
        giveBack(own); // a short read whose write is done: the flow caught up, an idle connection keeps no buffer
        own = undefined;
      }
    } else if (nread > COPY_LIMIT) {
      own = takeBuffer(); // a large read into the landing buffer: bulk is flowing, the next read goes into our own
      chooseNextBuffer(own);
    }
    if (up) this.upBuffer = own;
    else this.downBuffer = own;
    return !held;
  }

  /** A chunk Node allocated ('data' events, or bytes a PROXY header reader put back): no buffer to manage. */
  receivedOwned(from: Socket, chunk: Buffer): void {
    this.lastActive = this.clock.now();
    if (this.forward(from === this.client, chunk)) from.pause();
  }

  /**
   * Screens and counts `chunk`, then writes it to the other socket. Returns whether it is still
   * queued there (the direction is then held until that socket's 'drain').
   */
  private forward(up: boolean, chunk: Buffer): boolean {
    if (up) {
      if (this.screen !== undefined) {
        const passed = this.screened(chunk);
        if (passed === undefined) return false;
        chunk = passed;
      }
      this.bytesUp += chunk.length;
      this.backend.write(chunk);
      return (this.upHeld = this.backend.writableLength !== 0);
    }
    this.bytesDown += chunk.length;
    this.client.write(chunk);
    return (this.downHeld = this.client.writableLength !== 0);
  }

  /** The bytes to forward once the screen let them pass; undefined while it holds or after it refused. */
  private screened(chunk: Buffer): Buffer | undefined {
    const verdict = (this.screen as ClientScreen).push(chunk);
    if (verdict === 'hold') return undefined;
    this.screen = undefined;
    if (verdict !== 'refuse') return verdict;
    this.destroy('proxy-header-not-allowed');
    return undefined;
  }

  /** IdleWatched: quiet for the idle timeout. */
  idleExpired(): void {
    this.destroy('idle-timeout');
  }

  /** `to` wrote everything queued: the direction that feeds it may read again. */
  drained(to: Socket): void {
    this.lastActive = this.clock.now(); // a pending write finished: bytes moved
    if (to === this.backend) {
      if (!this.upHeld) return;
      this.upHeld = false;
      this.client.resume();
    } else {
      if (!this.downHeld) return;
      this.downHeld = false;
      this.backend.resume();
    }
  }

  /** `from` sent its FIN: forward it once what is queued is written; the other direction goes on. */
  ended(from: Socket): void {
    if (from === this.client) {
      const held = this.screen?.flush();
      this.screen = undefined;
      if (held !== undefined) {
        this.bytesUp += held.length;
        this.backend.write(held);
      }
      this.firstFin ??= 'client';
      forwardFin(this.backend);
    } else {
      this.firstFin ??= 'backend';
      forwardFin(this.client);
    }
  }

  /**
   * The balancer cuts the flow (drain deadline passed, or its backend went down with onDown:
   * close): the client is reset (RST), so the cut does not look like a clean end of stream, and
   * the backend closed. A socket already destroyed is left as it is: its 'close' still reaches
   * socketClosed, so `onEnd` follows in every case.
   */
  cut(reason: 'shutdown' | 'backend-down'): void {
    this.abortReason ??= reason;
    if (!this.client.destroyed) this.client.resetAndDestroy();
    if (!this.backend.destroyed) this.backend.destroy();
  }

  /** A socket failed: the other is reset, as the peer did. */
  failed(socket: Socket, error: NodeJS.ErrnoException): void {
    const clientFailed = socket === this.client;
    if (this.abortReason === undefined) {
      this.abortReason = clientFailed ? 'client-reset' : 'backend-reset';
      this.errorCode = error.code ?? error.message;
    }
    const peer = clientFailed ? this.backend : this.client;
    if (!peer.destroyed) peer.resetAndDestroy();
  }

  /** Both closed: no write refers to the private buffers any more; they go back to the pool. */
  socketClosed(): void {
    if (++this.closed < 2) return;
    this.sweeper.unwatch(this);
    if (this.upBuffer !== undefined) giveBack(this.upBuffer);
    if (this.downBuffer !== undefined) giveBack(this.downBuffer);
    this.upBuffer = this.downBuffer = undefined;
    this.endReason = this.abortReason ?? (this.firstFin === 'backend' ? 'backend-close' : 'client-close');
    this.options.onEnd(this);
  }
}
