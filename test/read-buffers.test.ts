/**
 * Reused read buffers (src/proxy/read-buffers.ts): the accepted-socket adoption works on this
 * Node (so the fast path cannot silently fall back), and — the property that matters — many
 * connections sharing the landing buffer and the pool of private buffers, behind peers that stop
 * and start reading at random, still deliver every byte in order both ways. Chunk sizes straddle
 * COPY_LIMIT so directions keep moving between the landing buffer and private ones, and slow
 * readers keep writes pending so a buffer held by a write would be overwritten if the splice read
 * into it too early. Peers pause for event-loop turns, not milliseconds, and every wait is on an
 * event (a byte count reached, a write that had to wait for 'drain', a flow finished).
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adoptUserBuffer, COPY_LIMIT, LANDING, nextReadBuffer, READ_BUFFER_BYTES, userBuffersSupported } from '../src/proxy/read-buffers.js';
import { idleSweeper } from '../src/proxy/idle-sweeper.js';
import { Splice, spliceRead } from '../src/proxy/splice.js';

describe('adopting an accepted socket', () => {
  it('is supported on this Node, and the socket then reads into the landing buffer with no data event', async () => {
    expect(userBuffersSupported).toBe(true);
    const reads: { nread: number; landing: boolean; text: string }[] = [];
    let dataEvents = 0;
    const accepted = new Promise<Socket>((resolve) => {
      const server = createServer({ pauseOnConnect: true }, (socket) => {
        server.close();
        resolve(socket);
      });
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        if (typeof address !== 'object' || address === null) throw new Error('no address');
        const client = connect(address.port, '127.0.0.1', () => client.end('hello, buffers'));
      });
    });
    const socket = await accepted;
    socket.on('data', () => dataEvents++);
    expect(
      adoptUserBuffer(socket, function (nread, buffer) {
        reads.push({ nread, landing: buffer === LANDING, text: buffer.toString('latin1', 0, nread) });
        return true;
      }),
    ).toBe(true);
    socket.resume();
    await once(socket, 'end');
    socket.destroy();
    expect(reads).toEqual([{ nread: 14, landing: true, text: 'hello, buffers' }]);
    expect(dataEvents).toBe(0);
  });
});

/**
 * Resolves after `count` turns of the event loop, each of which polls I/O: a pause that lets the
 * other connections move, measured in turns rather than milliseconds so that nothing depends on
 * how fast the machine is.
 */
async function turns(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * A peer that reads in bursts (its socket must allow half-open: it may get the FIN before it
 * finished writing) and stops for a few event-loop turns between them, driven by `pauses` (turns,
 * cycled). `onBytes` is told the total read so far after each chunk.
 */
function stopAndGoReader(socket: Socket, pauses: readonly number[], onBytes?: (total: number) => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let turn = 0;
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      total += chunk.length;
      onBytes?.(total);
      const pause = pauses[turn++ % pauses.length];
      if (pause > 0) {
        socket.pause();
        void turns(pause).then(() => socket.resume());
      }
    });
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
  });
}

/**
 * Writes `data` in pieces of `sizes` (cycled), honouring backpressure, waiting `pauses` event-loop
 * turns (cycled) after each piece, then ends; `onBlocked` is called the first time a write has to
 * wait for 'drain'. A slow writer makes the splice read small chunks; a slow reader on the other
 * side keeps its writes of them pending: the two together test the landing buffer.
 */
async function writePieces(socket: Socket, data: Buffer, sizes: readonly number[], pauses: readonly number[] = [0], end = true, onBlocked?: () => void): Promise<void> {
  for (let offset = 0, turn = 0; offset < data.length; turn++) {
    const size = sizes[turn % sizes.length];
    if (!socket.write(data.subarray(offset, offset + size))) {
      onBlocked?.();
      await once(socket, 'drain');
    }
    offset += size;
    const pause = pauses[turn % pauses.length];
    if (pause > 0) await turns(pause);
  }
  if (end) socket.end();
}

function digest(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

interface Flow {
  readonly up: Buffer;
  readonly down: Buffer;
  readonly upSizes: readonly number[];
  readonly downSizes: readonly number[];
  /** Event-loop turns each peer stops reading for after a chunk, and waits after writing a piece (cycled). */
  readonly clientPauses: readonly number[];
  readonly backendPauses: readonly number[];
  readonly clientWritePauses: readonly number[];
  readonly backendWritePauses: readonly number[];
  /** The backend keeps its side open after sending (default: it ends). */
  readonly keepOpen?: boolean;
  /** The backend starts reading only once this settles (default: at once). */
  readonly backendReadsAfter?: Promise<unknown>;
  /** Told the bytes the backend has read so far (after the flow's 4-byte id). */
  readonly onBackendBytes?: (total: number) => void;
  /** Called the first time the client's write has to wait for 'drain'. */
  readonly onClientBlocked?: () => void;
}

/**
 * Splices over UNIX stream sockets: their kernel buffers are small (about 200 KiB, no autotuning),
 * so with megabytes in flight and peers that stop reading, writes stay pending often and the
 * held-buffer rule is exercised on most chunks (loopback TCP buffers grow to megabytes and hide it).
 */
describe('many splices sharing the read buffers, behind stop-and-go peers', () => {
  let dir: string;
  let front: Server;
  let back: Server;
  let nextId = 1;
  /** The spliced pair for each flow id, made when the front server accepts the flow's client. */
  const flows = new Map<number, Flow>();
  /** Resolves a flow's `up` promise with what its backend reads, once the backend has its id. */
  const backendArrivals = new Map<number, (got: Promise<Buffer>) => void>();
  const ends: Promise<Splice>[] = [];
  const live: Splice[] = [];
  /** The backend's socket of each flow, for the flows that keep it open. */
  const backSockets = new Map<number, Socket>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'l4lb-read-buffers-'));
    back = createServer({ allowHalfOpen: true }, (socket) => {
      const onReadable = (): void => {
        const first = socket.read(4) as Buffer | null;
        if (first === null) return; // fewer than 4 bytes so far: wait for more
        socket.removeListener('readable', onReadable);
        const id = first.readUInt32BE(0);
        const flow = flows.get(id) as Flow;
        if (flow.keepOpen === true) backSockets.set(id, socket);
        const reads = (): Promise<Buffer> => stopAndGoReader(socket, flow.backendPauses, flow.onBackendBytes);
        // Without a gate the reader attaches now: with nothing after the header, 'end' may follow at once.
        // With one, 'end' cannot come before the bytes it waits behind are read, so attaching later is safe.
        const got = flow.backendReadsAfter === undefined ? reads() : flow.backendReadsAfter.then(reads);
        backendArrivals.get(id)?.(got);
        void writePieces(socket, flow.down, flow.downSizes, flow.backendWritePauses, flow.keepOpen !== true);
      };
      socket.on('readable', onReadable);
    });
    back.listen(join(dir, 'back.sock'));
    front = createServer({ allowHalfOpen: true, pauseOnConnect: true, highWaterMark: 1 }, (client) => {
      const options = { path: join(dir, 'back.sock'), allowHalfOpen: true, writableHighWaterMark: 1, onread: { buffer: nextReadBuffer, callback: spliceRead } };
      const backendSocket = connect(options);
      backendSocket.once('connect', () => {
        ends.push(new Promise((resolve) => live.push(new Splice(client, backendSocket, { idleTimeoutMs: 0, idleSweeper, onEnd: resolve }))));
      });
    });
    front.listen(join(dir, 'front.sock'));
    await Promise.all([once(back, 'listening'), once(front, 'listening')]);
  });

  afterAll(async () => {
    await Promise.all([new Promise((resolve) => front.close(resolve)), new Promise((resolve) => back.close(resolve))]);
    rmSync(dir, { recursive: true, force: true });
  });

  const size = fc.oneof(fc.integer({ min: 256, max: COPY_LIMIT }), fc.integer({ min: COPY_LIMIT + 1, max: 2 * READ_BUFFER_BYTES }));
  const flowArbitrary = fc.record({
    upBytes: fc.integer({ min: 0, max: 1_500_000 }),
    downBytes: fc.integer({ min: 0, max: 1_500_000 }),
    upSizes: fc.array(size, { minLength: 1, maxLength: 6 }),
    downSizes: fc.array(size, { minLength: 1, maxLength: 6 }),
    clientPauses: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 5 }),
    backendPauses: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 5 }),
    clientWritePauses: fc.array(fc.constantFrom(0, 0, 0, 1), { minLength: 1, maxLength: 5 }),
    backendWritePauses: fc.array(fc.constantFrom(0, 0, 0, 1), { minLength: 1, maxLength: 5 }),
  });

  it('delivers every byte in order both ways (fast-check, 8 concurrent splices per run)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(flowArbitrary, { minLength: 8, maxLength: 8 }), async (specs) => {
        const results = await Promise.all(specs.map((spec) => runFlow({ ...spec, up: randomBytes(spec.upBytes), down: randomBytes(spec.downBytes) })));
        expect(results).toEqual(results.map(() => ({ up: true, down: true })));
      }),
      { seed: 42, numRuns: 10 },
    );
    const spliced = await Promise.all(ends);
    expect(spliced.length).toBe(80);
    expect(spliced.map((splice) => splice.reason).filter((reason) => reason !== 'client-close' && reason !== 'backend-close')).toEqual([]);
  }, 180_000);

  it('a small chunk whose write waits keeps its bytes while other connections read (landing buffer copy)', async () => {
    const steady = { upSizes: [700], downSizes: [700], clientPauses: [0], backendPauses: [0], clientWritePauses: [1], backendWritePauses: [1] };
    // One flow trickles 1,000-byte pieces at a backend that reads nothing until six other flows
    // have moved all their small chunks through the landing buffer: once its client has to wait
    // (the socket buffers on its way are full), its splice's write is pending, and the six start.
    let othersDone = (): void => {};
    const othersFinished = new Promise<void>((resolve) => (othersDone = resolve));
    let stalledBlocked = (): void => {};
    const blocked = new Promise<void>((resolve) => (stalledBlocked = resolve));
    const stalled: Flow = { ...steady, upSizes: [1000], up: randomBytes(700_000), down: Buffer.alloc(0), backendReadsAfter: othersFinished, onClientBlocked: stalledBlocked };
    const stalledResult = runFlow(stalled);
    await blocked;
    const others = Array.from({ length: 6 }, (): Flow => ({ ...steady, up: randomBytes(500_000), down: randomBytes(500_000) }));
    const othersResults = await Promise.all(others.map(runFlow));
    othersDone();
    const results = [await stalledResult, ...othersResults];
    expect(results).toEqual(results.map(() => ({ up: true, down: true })));
  }, 60_000);

  it('a connection that goes quiet after a bulk transfer gives its private read buffers back', async () => {
    const before = live.length;
    const client = connect({ path: join(dir, 'front.sock'), allowHalfOpen: true });
    await once(client, 'connect');
    const id = nextId++;
    const up = randomBytes(200_000); // bulk upward too: both directions lend a private buffer
    const down = randomBytes(300_000);
    let upArrived = (): void => {};
    const upDone = new Promise<void>((resolve) => (upArrived = resolve));
    const onBackendBytes = (total: number): void => {
      if (total === up.length) upArrived();
    };
    flows.set(id, { up: Buffer.alloc(0), down, upSizes: [1], downSizes: [65_536], clientPauses: [0], backendPauses: [0], clientWritePauses: [0], backendWritePauses: [0], keepOpen: true, onBackendBytes });
    const header = Buffer.alloc(4);
    header.writeUInt32BE(id);
    client.write(header);
    client.write(up);
    const downDone = new Promise<void>((resolve) => {
      let received = 0;
      client.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received === down.length) resolve();
      });
    });
    await Promise.all([upDone, downDone]); // every byte has crossed the splice both ways: it made its last read each way
    expect(live.length).toBe(before + 1);
    const splice = live[before];
    expect(splice.bytesUp).toBe(4 + up.length);
    // Both directions are quiet now, the connection still open: no 64 KiB buffer stays with it.
    expect(splice.readBuffersHeld).toBe(0);
    client.destroy();
    backSockets.get(id)?.destroy();
    backSockets.delete(id);
    flows.delete(id);
  });

  /** Runs one flow through the front splice; whether each direction arrived intact. */
  async function runFlow(flow: Flow): Promise<{ up: boolean; down: boolean }> {
    const id = nextId++;
    flows.set(id, flow);
    const backendGot = new Promise<Buffer>((resolve) => backendArrivals.set(id, resolve));
    const client = connect({ path: join(dir, 'front.sock'), allowHalfOpen: true });
    await once(client, 'connect');
    const clientGot = stopAndGoReader(client, flow.clientPauses);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(id);
    client.write(header);
    await writePieces(client, flow.up, flow.upSizes, flow.clientWritePauses, true, flow.onClientBlocked);
    const down = await clientGot;
    const up = await backendGot;
    flows.delete(id);
    backendArrivals.delete(id);
    return { up: up.length === flow.up.length && digest(up) === digest(flow.up), down: down.length === flow.down.length && digest(down) === digest(flow.down) };
  }
});
