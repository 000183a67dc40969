/**
 * Read buffers for the splicer: reads land in memory l4lb owns and reuses, instead of a fresh
 * 64 KiB allocation per read (Node's default, which costs page faults and GC work per chunk).
 *
 * Node's `onread` socket option (`{ buffer, callback }`) makes a socket read into a buffer of ours
 * and call `callback(nread, buffer)`; `buffer` may be a function, asked once at start and again
 * after every read for the buffer of the next one. Outgoing sockets take it as a `net.connect`
 * option. Node 20's `net.Server` gives accepted sockets no such option, so `adoptUserBuffer`
 * installs the same three fields the `net.Socket` constructor sets from it and calls the same
 * handle method (`useUserBuffer`), found once at load by their names; where this Node lacks them,
 * `userBuffersSupported` is false and the splicer reads that side with 'data' events instead.
 *
 * Two kinds of buffer, so that an idle connection holds none and a bulk one allocates nothing:
 * - the landing buffer, one per process, shared by every socket not moving bulk data. What lands
 *   there is copied out (a small copy from Node's buffer pool) before the callback returns, so it
 *   is free again for the next read of any socket;
 * - private buffers, from a pool, lent to a direction after a read larger than `COPY_LIMIT`, and
 *   kept while its reads fill it (more is waiting) or its last write is pending; a short read whose
 *   write is done gives it back, so a connection that goes quiet after a bulk transfer holds none
 *   (unless its last read happened to fill the buffer exactly: then the next read, or the close,
 *   gives it back).
 *   A chunk read into one is written out as it is, without a copy; the direction stops reading
 *   while that write is pending, so the buffer is never overwritten while a write holds it.
 */
import { Socket } from 'node:net';

/** Size of every read buffer: one read moves at most this many bytes. */
export const READ_BUFFER_BYTES = 64 * 1024;

/** Chunks up to this size are copied out of the landing buffer (Node's pool serves them: no page faults). */
export const COPY_LIMIT = 4096;

/** Free private buffers kept for reuse; more than this are left to the garbage collector. */
const POOL_LIMIT = 256;

/** The process's landing buffer (see the file header). */
export const LANDING = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);

const free: Buffer[] = [];

/** A private read buffer. Cost: O(1); allocates only when the pool is empty. */
export function takeBuffer(): Buffer {
  return free.pop() ?? Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
}

/** Pre: nothing references `buffer` any more (no pending write, no socket reading into it). */
export function giveBack(buffer: Buffer): void {
  if (free.length < POOL_LIMIT) free.push(buffer);
}

let next: Buffer = LANDING;

/**
 * The `onread.buffer` function of every spliced socket: the buffer the read callback chose for
 * the next read (`chooseNextBuffer`), or the landing buffer. Node calls it right after the
 * callback, on the same turn, so one process-wide slot is enough.
 */
export function nextReadBuffer(): Buffer {
  const chosen = next;
  next = LANDING;
  return chosen;
}

/** Called from a read callback: the socket's next read goes into `buffer`. */
export function chooseNextBuffer(buffer: Buffer): void {
  next = buffer;
}

/** What a socket calls with each read: `this` is the socket; false stops reading until `resume()`. */
export type ReadCallback = (this: Socket, nread: number, buffer: Buffer) => boolean;

interface UserBufferFields {
  readonly buffer: symbol;
  readonly callback: symbol;
  readonly generator: symbol;
}

/** The socket fields Node's constructor sets from `onread`, by name, or undefined if this Node has none. */
function findUserBufferFields(): UserBufferFields | undefined {
  const probe = new Socket();
  const byName = new Map(Object.getOwnPropertySymbols(probe).map((symbol) => [symbol.description, symbol]));
  const buffer = byName.get('kBuffer');
  const callback = byName.get('kBufferCb');
  const generator = byName.get('kBufferGen');
  probe.destroy();
  return buffer && callback && generator ? { buffer, callback, generator } : undefined;
}

const fields = findUserBufferFields();

interface UserBufferHandle {
  useUserBuffer(buffer: Uint8Array): void;
}

type AdoptableSocket = Socket & Record<symbol, unknown> & { _handle?: Partial<UserBufferHandle> | null };

/** Whether this Node lets an accepted socket read into our buffers (checked by test/read-buffers.test.ts on Node 20). */
export const userBuffersSupported = fields !== undefined;

/** Whether `socket` already reads into our buffers with `callback` (created with that `onread`, or adopted). */
export function readsWith(socket: Socket, callback: ReadCallback): boolean {
  return fields !== undefined && (socket as AdoptableSocket)[fields.callback] === callback;
}

/**
 * Makes an accepted socket read into our buffers, as if it had been created with
 * `onread: { buffer: nextReadBuffer, callback }`. Pre: the socket is paused (`pauseOnConnect`),
 * not destroyed. Post: true, and from its next read on `callback` gets every byte and no 'data'
 * event fires; or false (this Node cannot, or the socket has no handle) and nothing changed.
 * Bytes already buffered in the socket's readable state are not touched: the caller reads them.
 */
export function adoptUserBuffer(socket: Socket, callback: ReadCallback): boolean {
  const adoptable = socket as AdoptableSocket;
  const handle = adoptable._handle;
  if (fields === undefined || handle == null || typeof handle.useUserBuffer !== 'function') return false;
  const first = nextReadBuffer();
  adoptable[fields.buffer] = first;
  adoptable[fields.callback] = callback;
  adoptable[fields.generator] = nextReadBuffer;
  handle.useUserBuffer(first);
  return true;
}
