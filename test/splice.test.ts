/**
 * The splicer through a running balancer: byte-exact transfer both ways (fast-check, fixed seed),
 * TCP half-close in both directions, reset propagation, bounded buffering under backpressure, and
 * the idle timeout (on a manual clock) — each checked from the client's and the backend's side and
 * in the access log.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import { IdleSweeper } from '../src/proxy/idle-sweeper.js';
import { ServiceCounters } from '../src/proxy/queue.js';
import { ProxyService } from '../src/proxy/service.js';
import { buildPlan, resolveBackends, ServiceLoads } from '../src/services/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog, type CapturedLog } from './helpers/log.js';
import { closed, connectClient, readAll, readBytes, startServer, waitUntil, writeChunked, type TestServer } from './helpers/net.js';
import { listenFor } from './helpers/listen.js';

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

/**
 * The most a loopback TCP path can hold between the balancer and a backend that reads nothing:
 * the balancer's send buffer and the backend's receive buffer, each at most its autotuning
 * maximum (tcp_wmem, tcp_rmem). Falls back to 64 MiB where /proc does not say.
 */
function kernelPathBytes(): number {
  const max = (name: string): number => {
    try {
      return Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/)[2]);
    } catch {
      return 32 * 1024 * 1024;
    }
  };
  return max('tcp_wmem') + max('tcp_rmem');
}

describe('backpressure', () => {
  it('a backend that stops reading stalls the client, not the balancer memory', async () => {
    // More than the kernel's socket buffers can absorb on the way (tcp_rmem max is 32 MB here).
    const total = 128 * 1024 * 1024;
    const kernel = kernelPathBytes();
    expect(kernel + 16 * 1024 * 1024).toBeLessThan(total); // else this payload cannot show a stall
    const payload = randomBytes(total);
    const accepted = new Promise<Socket>((resolve) => {
      onBackend = (socket) => {
        socket.pause();
        resolve(socket);
      };
    });
    const stats = () => balancer.stats()[0];
    const before = stats().bytesUp; // the service's count includes earlier tests' connections
    const client = await connectClient(port);
    client.write(payload); // all queued at once: the client keeps writing as fast as TCP lets it
    const backendSide = await accepted;
    // Backpressure engaged: the balancer's write buffer to the backend went over its high-water mark.
    await waitUntil(() => stats().buffered >= 16 * 1024);
    // From here the backend reads, and at every read the balancer has taken from the client at most
    // what the backend read, plus what the kernel path between them holds, plus what it holds itself:
    // it reads from the client only as fast as the backend drains, never the whole payload ahead.
    const received: Buffer[] = [];
    let have = 0;
    let maxBuffered = stats().buffered;
    let maxAhead = stats().bytesUp - before;
    await new Promise<void>((resolve) => {
      backendSide.on('readable', () => {
        const now = stats();
        maxBuffered = Math.max(maxBuffered, now.buffered);
        maxAhead = Math.max(maxAhead, now.bytesUp - before - have);
        for (let chunk = backendSide.read() as Buffer | null; chunk !== null; chunk = backendSide.read() as Buffer | null) {
          received.push(chunk);
          have += chunk.length;
        }
        if (have >= total) resolve();
      });
    });
    expect(Buffer.concat(received).equals(payload)).toBe(true);
    expect(maxBuffered).toBeLessThanOrEqual(512 * 1024);
    expect(maxAhead).toBeLessThanOrEqual(kernel + 512 * 1024);
    client.destroy();
  }, 60_000);
});

describe('idle timeout', () => {
  const openSockets: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const close of openSockets.splice(0)) await close();
  });
  /**
   * A service with a 500 ms idle timeout in front of a fresh backend, on a manual clock with a
   * sweeper of its own (period 125 ms: a quarter of the timeout), and its log.
   */
  async function idleSetup(): Promise<{ idleServer: TestServer; idleLog: CapturedLog; clock: ManualClock; sweeper: IdleSweeper; service: ProxyService; port: number }> {
    const idleServer = await startServer();
    const idleLog = captureLog();
    const clock = new ManualClock();
    const sweeper = new IdleSweeper(clock);
    const config = proxyService([backend('b1', idleServer.port)], { timeouts: { connect: 3000, idle: 500, queue: 1000, drain: 1000 } });
    const service = new ProxyService(buildPlan(config, await resolveBackends(config, 'svc'), new ServiceLoads()), idleLog.logger, new ServiceCounters(), { clock, idleSweeper: sweeper });
    const { port, close } = await listenFor(service, idleLog.logger);
    openSockets.push(close);
    return { idleServer, idleLog, clock, sweeper, service, port };
  }

  it('closes a connection on which no byte moves, not before its timeout, and logs it', async () => {
    const { idleServer, idleLog, clock, sweeper, service, port } = await idleSetup();
    try {
      const client = await connectClient(port);
      client.write('one chunk, then silence');
      const backendSide = await idleServer.nextConnection();
      await readBytes(backendSide, 23); // spliced (and watched) at time 0, its last byte moved at time 0
      expect(sweeper.size).toBe(1);
      clock.advance(499);
      expect(sweeper.size).toBe(1); // never before the timeout
      clock.advance(1);
      expect(sweeper.size).toBe(0); // the sweep at 500 ended it
      const [clientRest, backendRest] = await Promise.all([readAll(client), readAll(backendSide)]); // both get a FIN
      expect(clientRest.length + backendRest.length).toBe(0);
      const [record] = await idleLog.waitForAccess(1);
      expect(record).toMatchObject({ end: 'idle-timeout', bytesUp: 23, durationMs: 500 });
    } finally {
      await service.close(0);
      await idleServer.close();
    }
  });

  it('keeps a connection open while bytes move more often than the timeout, either way, then closes it once they stop', async () => {
    const { idleServer, idleLog, clock, sweeper, service, port } = await idleSetup();
    try {
      const client = await connectClient(port);
      const clientGot = readAll(client);
      client.write('u');
      const backendSide = await idleServer.nextConnection();
      const backendGot = readAll(backendSide);
      await once(backendSide, 'data');
      // Twelve beats 150 ms apart (1.8 s, over three timeouts), alternating direction; each byte
      // has crossed the splice (which stamps it) before the clock moves on.
      for (let beat = 0; beat < 12; beat++) {
        clock.advance(150);
        if (beat % 2 === 0) {
          backendSide.write('d');
          await once(client, 'data');
        } else {
          client.write('u');
          await once(backendSide, 'data');
        }
      }
      expect(sweeper.size).toBe(1); // still open at 1800 ms, its last byte at 1800 ms
      expect(idleLog.access()).toHaveLength(0);
      clock.advance(499);
      expect(sweeper.size).toBe(1);
      clock.advance(125); // within a sweep period of the timeout
      expect(sweeper.size).toBe(0);
      const [record] = await idleLog.waitForAccess(1);
      expect(record).toMatchObject({ end: 'idle-timeout', bytesUp: 7, bytesDown: 6 });
      expect((await clientGot).toString()).toBe('dddddd');
      expect((await backendGot).toString()).toBe('uuuuuuu');
    } finally {
      await service.close(0);
      await idleServer.close();
    }
  });
});
