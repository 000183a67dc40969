/**
 * The splicer through a running balancer: byte-exact transfer both ways (fast-check, fixed seed),
 * TCP half-close in both directions, reset propagation, bounded buffering under backpressure, and
 * the idle timeout — each checked from the client's and the backend's side and in the access log.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog, type CapturedLog } from './helpers/log.js';
import { closed, connectClient, readAll, readBytes, startServer, waitUntil, writeChunked, type TestServer } from './helpers/net.js';

/** What the backend does with each connection; set by each test before it connects. */
let onBackend: (socket: Socket) => void = () => {};

let server: TestServer;
let balancer: Balancer;
let log: CapturedLog;
let port: number;

beforeAll(async () => {
  server = await startServer((socket) => onBackend(socket));
  log = captureLog();
  balancer = await startBalancer(configOf(proxyService([backend('b1', server.port)])), { logger: log.logger });
  port = balancer.address('svc').port;
});

afterAll(async () => {
  await balancer.close(0);
  await server.close();
});

/** The access record of the n-th connection (1-based) once it is written. */
async function accessRecord(n: number): Promise<Record<string, unknown>> {
  const records = await log.waitForAccess(n);
  return records[n - 1];
}

describe('byte-exact transfer', () => {
  it('moves random payloads in random chunkings both ways at once (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 400_000 }),
        fc.integer({ min: 0, max: 400_000 }),
        fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 8 }),
        async (upSize, downSize, upChunks, downChunks) => {
          const up = randomBytes(upSize);
          const down = randomBytes(downSize);
          let backendGot: Promise<Buffer> = Promise.resolve(Buffer.alloc(0));
          onBackend = (socket) => {
            backendGot = readAll(socket);
            void writeChunked(socket, down, downChunks).then(() => socket.end());
          };
          const client = await connectClient(port);
          const clientGot = readAll(client);
          await writeChunked(client, up, upChunks);
          client.end();
          const received = await clientGot;
          expect(received.equals(down)).toBe(true);
          expect((await backendGot).equals(up)).toBe(true);
          await closed(client);
        },
      ),
      { seed: 42, numRuns: 25 },
    );
  });

  it('moves 48 MB each way in one connection, byte for byte', async () => {
    const up = randomBytes(48 * 1024 * 1024);
    const down = randomBytes(48 * 1024 * 1024);
    let backendGot!: Promise<Buffer>;
    const accepted = new Promise<void>((resolve) => {
      onBackend = (socket) => {
        backendGot = readAll(socket);
        socket.end(down);
        resolve();
      };
    });
    const before = log.access().length;
    const client = await connectClient(port);
    const clientGot = readAll(client);
    client.end(up);
    await accepted;
    expect((await clientGot).equals(down)).toBe(true);
    expect((await backendGot).equals(up)).toBe(true);
    const record = await accessRecord(before + 1);
    expect(record).toMatchObject({ bytesUp: up.length, bytesDown: down.length, backend: 'b1' });
    const stats = balancer.stats()[0];
    expect(stats.bytesUp).toBeGreaterThanOrEqual(up.length);
    expect(stats.backends[0].bytesDown).toBe(stats.bytesDown); // one backend: its bytes are the service's
  }, 60_000);
});

describe('half-close', () => {
  it('client FIN first: the backend sees EOF and can still answer', async () => {
    onBackend = (socket) => {
      void readAll(socket).then((request) => socket.end(Buffer.concat([Buffer.from('got:'), request])));
    };
    const before = log.access().length;
    const client = await connectClient(port);
    const reply = readAll(client);
    client.end('question');
    expect((await reply).toString()).toBe('got:question');
    expect(await accessRecord(before + 1)).toMatchObject({ end: 'client-close', bytesUp: 8, bytesDown: 12 });
  });

  it('backend FIN first: the client sees EOF and can still send', async () => {
    let backendGot!: Promise<Buffer>;
    onBackend = (socket) => {
      backendGot = readAll(socket);
      socket.end('banner-then-fin');
    };
    const before = log.access().length;
    const client = await connectClient(port);
    const banner = await readAll(client); // the client's read side has ended here
    expect(banner.toString()).toBe('banner-then-fin');
    expect(client.destroyed).toBe(false);
    client.end('late words after the FIN');
    expect((await backendGot).toString()).toBe('late words after the FIN');
    expect(await accessRecord(before + 1)).toMatchObject({ end: 'backend-close', bytesUp: 24, bytesDown: 15 });
  });
});

describe('resets', () => {
  it('a client RST becomes a backend RST', async () => {
    const accepted = new Promise<Socket>((resolve) => {
      onBackend = resolve;
    });
    const before = log.access().length;
    const client = await connectClient(port);
    const backendSide = await accepted;
    const backendClosed = closed(backendSide);
    client.write('x');
    await readBytes(backendSide, 1); // the splice is up
    client.resetAndDestroy();
    const error = await backendClosed;
    expect(error?.code).toBe('ECONNRESET');
    expect(await accessRecord(before + 1)).toMatchObject({ end: 'client-reset', error: 'ECONNRESET' });
  });

  it('a backend RST becomes a client RST', async () => {
    onBackend = (socket) => {
      socket.once('data', () => socket.resetAndDestroy());
    };
    const before = log.access().length;
    const client = await connectClient(port);
    const clientClosed = closed(client);
    client.write('x');
    const error = await clientClosed;
    expect(error?.code).toBe('ECONNRESET');
    expect(await accessRecord(before + 1)).toMatchObject({ end: 'backend-reset', error: 'ECONNRESET' });
  });
});

describe('backpressure', () => {
  it('a backend that stops reading stalls the client, not the balancer memory', async () => {
    // More than the kernel's socket buffers can absorb on the way (tcp_rmem max is 32 MB here).
    const total = 128 * 1024 * 1024;
    const payload = randomBytes(total);
    const accepted = new Promise<Socket>((resolve) => {
      onBackend = (socket) => {
        socket.pause();
        resolve(socket);
      };
    });
    const client = await connectClient(port);
    client.write(payload); // all queued at once: the client keeps writing as fast as TCP lets it
    const backendSide = await accepted;
    const stats = () => balancer.stats()[0];
    // Backpressure engaged: the balancer's write buffer to the backend went over its high-water mark.
    await waitUntil(() => stats().buffered >= 16 * 1024);
    let maxBuffered = 0;
    let lastUp = -1;
    let stable = 0;
    // Stalled: nothing more is read from the client for 50 consecutive samples.
    while (stable < 50) {
      await new Promise((resolve) => setTimeout(resolve, 2));
      const now = stats();
      maxBuffered = Math.max(maxBuffered, now.buffered);
      stable = now.bytesUp === lastUp ? stable + 1 : 0;
      lastUp = now.bytesUp;
    }
    // The balancer stopped reading while the client still had plenty to send.
    expect(total - lastUp).toBeGreaterThan(16 * 1024 * 1024);
    // Now read slowly, sampling the balancer's buffers at every read.
    const received: Buffer[] = [];
    let have = 0;
    await new Promise<void>((resolve) => {
      backendSide.on('readable', () => {
        maxBuffered = Math.max(maxBuffered, stats().buffered);
        for (let chunk = backendSide.read() as Buffer | null; chunk !== null; chunk = backendSide.read() as Buffer | null) {
          received.push(chunk);
          have += chunk.length;
        }
        if (have >= total) resolve();
      });
    });
    expect(Buffer.concat(received).equals(payload)).toBe(true);
    expect(maxBuffered).toBeLessThanOrEqual(512 * 1024);
    client.destroy();
  }, 60_000);
});

describe('idle timeout', () => {
  /** A balancer with a 500 ms idle timeout in front of a fresh backend, and its log. */
  async function idleSetup(): Promise<{ idleServer: TestServer; idleLog: CapturedLog; idle: Balancer }> {
    const idleServer = await startServer();
    const idleLog = captureLog();
    const idle = await startBalancer(
      configOf(proxyService([backend('b1', idleServer.port)], { timeouts: { connect: 3000, idle: 500, queue: 1000, drain: 1000 } })),
      { logger: idleLog.logger },
    );
    return { idleServer, idleLog, idle };
  }

  it('closes a connection on which no byte moves, and logs it', async () => {
    const { idleServer, idleLog, idle } = await idleSetup();
    try {
      const client = await connectClient(idle.address('svc').port);
      client.write('one chunk, then silence');
      const backendSide = await idleServer.nextConnection();
      await readBytes(backendSide, 23);
      const [clientRest, backendRest] = await Promise.all([readAll(client), readAll(backendSide)]); // both get a FIN
      expect(clientRest.length + backendRest.length).toBe(0);
      const [record] = await idleLog.waitForAccess(1);
      expect(record).toMatchObject({ end: 'idle-timeout', bytesUp: 23 });
      expect(record.durationMs as number).toBeGreaterThanOrEqual(500); // never before the timeout
    } finally {
      await idle.close(0);
      await idleServer.close();
    }
  });

  it('keeps a connection open while bytes move more often than the timeout, either way, then closes it once they stop', async () => {
    const { idleServer, idleLog, idle } = await idleSetup();
    try {
      const client = await connectClient(idle.address('svc').port);
      const clientGot = readAll(client);
      client.write('u');
      const backendSide = await idleServer.nextConnection();
      const backendGot = readAll(backendSide);
      // Twelve beats 150 ms apart (1.8 s, over three timeouts), alternating direction.
      for (let beat = 0; beat < 12; beat++) {
        await new Promise((resolve) => setTimeout(resolve, 150));
        if (beat % 2 === 0) backendSide.write('d');
        else client.write('u');
      }
      expect(idleLog.access()).toHaveLength(0); // still open
      const [record] = await idleLog.waitForAccess(1);
      expect(record).toMatchObject({ end: 'idle-timeout', bytesUp: 7, bytesDown: 6 });
      expect((await clientGot).toString()).toBe('dddddd');
      expect((await backendGot).toString()).toBe('uuuuuuu');
    } finally {
      await idle.close(0);
      await idleServer.close();
    }
  });
});
