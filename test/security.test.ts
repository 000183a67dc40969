/**
 * Bad input, measured (docs/security.md): each kind of attack runs against a live balancer on
 * loopback while a well-behaved client loops through the same service, and the suite asserts what
 * l4lb did with every bad input AND that the well-behaved client saw zero failures meanwhile. Loops
 * are bounded; generated inputs use fast-check with a fixed seed. The figures table printed at the
 * end is the one quoted in docs/security.md. Config files and CLI arguments are in
 * test/security-inputs.test.ts.
 */
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyServiceConfig } from '../src/config/index.js';
import { startBalancer, type Balancer, type ServiceStats } from '../src/proxy/index.js';
import { encodeForConnection, encodeV2, type ConnectionEndpoints } from '../src/proxy-protocol/index.js';
import type { Rejection } from '../src/proxy/rejections.js';
import { backend, proxyService } from './helpers/config.js';
import { captureLog } from './helpers/log.js';
import { startEchoServer, waitUntil, type TestServer } from './helpers/net.js';

const SEED = 42;
/** Per test: the floods open thousands of loopback connections. */
const LONG = 120_000;
/**
 * Long enough that a loaded machine never lets the timer fire before a well-behaved client's
 * header (sent at once) is read: after a stalled event loop, timers run before I/O.
 */
const HEADER_TIMEOUT_MS = 1000;
const TIMEOUTS = { connect: 3000, idle: 60_000, queue: 5000, drain: 1000 };

interface Figure {
  attack: string;
  tried: number;
  outcome: string;
  good: number;
  goodFailures: number;
  logLines: number;
}
const figures: Figure[] = [];

const log = captureLog();
let balancer: Balancer;
const servers: TestServer[] = [];
const ports: Record<string, number> = {};

beforeAll(async () => {
  for (let i = 0; i < 2; i++) servers.push(await startEchoServer());
  const backends = servers.map((server, i) => backend(`e${i + 1}`, server.port));
  const service = (name: string, extra: Partial<ProxyServiceConfig>): ProxyServiceConfig => ({ ...proxyService(backends, { timeouts: TIMEOUTS, ...extra }), name });
  const services = [
    service('pp', { proxyProtocol: { accept: ['127.0.0.1'] }, timeouts: { ...TIMEOUTS, proxyHeader: HEADER_TIMEOUT_MS } }),
    service('plain', {}),
    service('limited', { limits: { perSourceConnections: 20 } }),
    service('rated', { limits: { perSourceRate: '50/m' } }),
    service('guarded', { deny: ['127.0.0.99'] }),
  ];
  balancer = await startBalancer({ services }, { logger: log.logger });
  for (const { name } of services) ports[name] = balancer.address(name).port;
});

afterAll(async () => {
  await balancer?.close(0);
  for (const server of servers) await server.close();
  const total = figures.reduce((sum, row) => sum + row.tried, 0);
  const lines = [
    '| attack | bad inputs | what l4lb did | well-behaved connections (failed) | log lines |',
    '|---|---|---|---|---|',
    ...figures.map((row) => `| ${row.attack} | ${row.tried} | ${row.outcome} | ${row.good} (${row.goodFailures}) | ${row.logLines} |`),
    `| **total** | **${total}** | | | |`,
  ];
  console.log(`\nsecurity figures (seed ${SEED}):\n${lines.join('\n')}\n`);
});

function statsOf(name: string): ServiceStats {
  return balancer.stats().find((stats) => stats.name === name) as ServiceStats;
}

const rejectedOf = (name: string): Record<Rejection, number> => ({ ...statsOf(name).rejected });

function delta(before: Record<Rejection, number>, after: Record<Rejection, number>): Partial<Record<Rejection, number>> {
  const out: Partial<Record<Rejection, number>> = {};
  for (const key of Object.keys(after) as Rejection[]) if (after[key] !== before[key]) out[key] = after[key] - before[key];
  return out;
}

const describeDelta = (counts: Partial<Record<string, number>>): string =>
  Object.entries(counts).map(([reason, count]) => `${count} ${reason}`).join(', ');

/** A connection from `source` (any 127.0.0.0/8 address is local on Linux). */
function open(port: number, source: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: source, allowHalfOpen: true });
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/**
 * Resolves with the bytes the balancer sent once it closed its side (FIN or reset); our side is
 * then closed too (the socket is half-open capable, so a FIN alone would leave it open).
 */
function closedByPeer(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = (): void => {
      socket.destroy();
      resolve(Buffer.concat(chunks));
    };
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.once('end', done);
    socket.once('close', done);
    socket.resume();
  });
}

/** Sends `bytes` (then FIN unless `keepOpen`), resolves with what came back once the balancer closed. */
async function attack(port: number, source: string, bytes: Uint8Array, keepOpen = false): Promise<Buffer> {
  const socket = await open(port, source);
  const closed = closedByPeer(socket);
  if (bytes.length > 0) socket.write(bytes);
  if (!keepOpen) socket.end();
  return closed;
}

/** Runs `count` tasks, `width` at a time. */
async function inBatches(count: number, width: number, task: (index: number) => Promise<unknown>): Promise<void> {
  for (let start = 0; start < count; start += width) {
    await Promise.all(Array.from({ length: Math.min(width, count - start) }, (_, i) => task(start + i)));
  }
}

const endpoints = (source: string, port: number): ConnectionEndpoints => ({ source: { address: source, port }, destination: { address: '192.0.2.1', port: 443 } });

/**
 * A well-behaved client: one connection after another (with a valid PROXY header for `pp`),
 * each sending a line and expecting it echoed, until `stop()` and at least `min` rounds, at most
 * `max`. Any error, early close or wrong echo is a failure.
 */
function wellBehaved(service: string, source: string, options: { min?: number; max?: number } = {}) {
  const { min = 5, max = 100_000 } = options;
  let stopped = false;
  let ok = 0;
  let failed = 0;
  const failures: string[] = [];
  const loop = (async () => {
    for (let round = 0; (!stopped || round < min) && round < max; round++) {
      const line = `hello ${round}\n`;
      try {
        const socket = await open(ports[service], source);
        const back = closedByPeer(socket);
        const header = service === 'pp' ? encodeForConnection(round % 2 === 0 ? 'v1' : 'v2', endpoints('203.0.113.50', 50000 + (round % 1000))) : new Uint8Array(0);
        socket.end(Buffer.concat([header, Buffer.from(line)]));
        const got = (await back).toString();
        if (got === line) ok++;
        else {
          failed++;
          failures.push(JSON.stringify(got));
        }
      } catch (error) {
        failed++;
        failures.push(String(error));
      }
    }
  })();
  return {
    async stop(): Promise<{ ok: number; failed: number; failures: string[] }> {
      stopped = true;
      await loop;
      return { ok, failed, failures };
    },
  };
}

const logLinesSince = (mark: number): number => log.records.length - mark;

/** Runs one attack beside a well-behaved client of the same service and records the figures. */
async function measured(name: string, service: string, run: () => Promise<{ tried: number; outcome: string }>, good: { source?: string; max?: number } = {}): Promise<void> {
  const mark = log.records.length;
  const client = wellBehaved(service, good.source ?? '127.0.0.1', { max: good.max });
  const { tried, outcome } = await run();
  const result = await client.stop();
  // Connections still closing log their lines now: count them with this attack, not the next.
  await waitUntil(() => balancer.stats().every((stats) => stats.current === 0 && stats.queued === 0));
  // Every record is either a well-behaved client's access line or caused by the attack.
  const attackLines = logLinesSince(mark) - result.ok;
  figures.push({ attack: name, tried, outcome, good: result.ok + result.failed, goodFailures: result.failed, logLines: attackLines });
  expect(result.failures).toEqual([]);
  expect(result.ok).toBeGreaterThanOrEqual(5);
}

const VALID_HEADERS: Uint8Array[] = [
  encodeForConnection('v1', endpoints('198.51.100.7', 40001)),
  encodeForConnection('v1', { source: { address: '2001:db8::7', port: 40002 }, destination: { address: '2001:db8::1', port: 443 } }),
  encodeForConnection('v2', endpoints('198.51.100.8', 40003)),
  encodeV2(
    { command: 'proxy', addresses: { family: 'tcp6', source: { address: '2001:db8::8', port: 40004 }, destination: { address: '2001:db8::1', port: 443 } }, tlvs: [{ type: 0x02, value: Buffer.from('example.com') }] },
    { crc32c: true },
  ),
];

describe('PROXY header attacks on a service with proxyProtocol.accept (timeout 1 s)', () => {
  it('random bytes then FIN: every one refused as invalid, none reaches a backend', async () => {
    const inputs = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 400 }), { seed: SEED, numRuns: 300 });
    await measured('random bytes as a PROXY header, then FIN', 'pp', async () => {
      const before = rejectedOf('pp');
      const replies = new Set<string>();
      await inBatches(inputs.length, 50, async (i) => replies.add((await attack(ports.pp, '127.0.0.1', inputs[i])).toString()));
      const counts = delta(before, rejectedOf('pp'));
      expect(counts).toEqual({ 'proxy-header-invalid': inputs.length });
      expect([...replies]).toEqual(['']); // closed without a byte back: no backend saw them
      return { tried: inputs.length, outcome: `closed: ${describeDelta(counts)}` };
    });
  }, LONG);

  it('every truncation of four valid headers (v1/v2, IPv4/IPv6, TLVs), then FIN: all invalid', async () => {
    const inputs = VALID_HEADERS.flatMap((header) => Array.from({ length: header.length - 1 }, (_, cut) => header.subarray(0, cut + 1)));
    await measured('valid headers cut at every length, then FIN', 'pp', async () => {
      const before = rejectedOf('pp');
      await inBatches(inputs.length, 50, (i) => attack(ports.pp, '127.0.0.1', inputs[i]));
      const counts = delta(before, rejectedOf('pp'));
      expect(counts).toEqual({ 'proxy-header-invalid': inputs.length });
      return { tried: inputs.length, outcome: `closed: ${describeDelta(counts)}` };
    });
  }, LONG);

  it('one byte of a valid header changed: refused, or (if still a valid header) served; never a crash or a hang', async () => {
    const inputs = fc.sample(fc.tuple(fc.nat({ max: VALID_HEADERS.length - 1 }), fc.nat(), fc.integer({ min: 1, max: 255 })), { seed: SEED, numRuns: 300 }).map(([which, at, xor]) => {
      const header = Buffer.from(VALID_HEADERS[which]);
      header[at % header.length] ^= xor;
      return Buffer.concat([header, Buffer.from('ping\n')]);
    });
    await measured('valid headers with one byte changed', 'pp', async () => {
      const before = rejectedOf('pp');
      let echoed = 0;
      await inBatches(inputs.length, 50, async (i) => {
        if ((await attack(ports.pp, '127.0.0.1', inputs[i])).toString() === 'ping\n') echoed++;
      });
      const counts = delta(before, rejectedOf('pp'));
      // The rest kept the PROXY grammar (e.g. another digit in an address) and were served.
      expect((counts['proxy-header-invalid'] ?? 0) + (counts['proxy-header-timeout'] ?? 0) + echoed).toBe(inputs.length);
      return { tried: inputs.length, outcome: `closed: ${describeDelta(counts)}; still valid, served: ${echoed}` };
    });
  }, LONG);

  it('oversized headers (v1 without CRLF past 107 bytes, v2 length fields 2049–65535) are refused when the length is seen', async () => {
    const v2 = (length: number): Buffer => Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, length >> 8, length & 0xff]);
    const inputs = [
      ...[108, 200, 1000, 65536].map((n) => Buffer.from(`PROXY TCP4 ${'9'.repeat(n)}`)),
      ...[2049, 4096, 30000, 65535].map(v2),
    ];
    await measured('oversized headers', 'pp', async () => {
      const before = rejectedOf('pp');
      await inBatches(inputs.length, 50, (i) => attack(ports.pp, '127.0.0.1', inputs[i], true));
      const counts = delta(before, rejectedOf('pp'));
      expect(counts).toEqual({ 'proxy-header-invalid': inputs.length });
      return { tried: inputs.length, outcome: `closed at once (no timeout needed): ${describeDelta(counts)}` };
    });
  }, LONG);

  it('slow drip: 50 valid headers at one byte per 100 ms are cut off by timeouts.proxyHeader', async () => {
    const count = 50;
    await measured('slow-drip headers (1 byte / 100 ms)', 'pp', async () => {
      const before = rejectedOf('pp');
      await inBatches(count, count, async (i) => {
        const socket = await open(ports.pp, '127.0.0.1');
        const closed = closedByPeer(socket);
        const header = VALID_HEADERS[i % VALID_HEADERS.length];
        let sent = 0;
        const timer = setInterval(() => {
          if (sent < header.length && !socket.destroyed) socket.write(header.subarray(sent, ++sent));
        }, 100);
        await closed;
        clearInterval(timer);
      });
      const counts = delta(before, rejectedOf('pp'));
      expect(counts).toEqual({ 'proxy-header-timeout': count });
      return { tried: count, outcome: `closed after timeouts.proxyHeader (1 s): ${describeDelta(counts)}` };
    });
  }, LONG);

  it('connections that never send: 300 at once are closed by the header timeout', async () => {
    const count = 300;
    await measured('silent connections (header required)', 'pp', async () => {
      const before = rejectedOf('pp');
      await inBatches(count, count, () => attack(ports.pp, '127.0.0.1', new Uint8Array(0), true));
      const counts = delta(before, rejectedOf('pp'));
      expect(counts).toEqual({ 'proxy-header-timeout': count });
      return { tried: count, outcome: `closed after timeouts.proxyHeader (1 s): ${describeDelta(counts)}` };
    });
  }, LONG);

  it('headers from a peer outside accept (127.0.0.2): every one refused before reaching a backend', async () => {
    const inputs = Array.from({ length: 200 }, (_, i) => Buffer.concat([VALID_HEADERS[i % VALID_HEADERS.length], Buffer.from('spoofed\n')]));
    await measured('PROXY headers from an untrusted peer', 'pp', async () => {
      const before = rejectedOf('pp');
      const replies = new Set<string>();
      await inBatches(inputs.length, 50, async (i) => replies.add((await attack(ports.pp, '127.0.0.2', inputs[i])).toString()));
      const counts = delta(before, rejectedOf('pp'));
      expect(counts).toEqual({ 'proxy-header-not-allowed': inputs.length });
      expect([...replies]).toEqual(['']);
      return { tried: inputs.length, outcome: `closed: ${describeDelta(counts)}` };
    });
  }, LONG);
});

describe('floods and source rules', () => {
  it('silent connections on a plain service: 500 held open do not stop others being served', async () => {
    const count = 500;
    await measured('silent connections held open (no header expected)', 'plain', async () => {
      const held: Socket[] = [];
      await inBatches(count, 100, async () => held.push(await open(ports.plain, '127.0.0.3')));
      await waitUntil(() => statsOf('plain').current >= count);
      const spliced = statsOf('plain').current;
      for (const socket of held) socket.destroy();
      return { tried: count, outcome: `all spliced and held open (${spliced} at once); the listener kept accepting` };
    });
  }, LONG);

  it('a flood of 2,000 connections from one source with perSourceConnections 20: 20 admitted, the rest refused at accept', async () => {
    const count = 2000;
    await measured('flood from one source (perSourceConnections: 20)', 'limited', async () => {
      const before = rejectedOf('limited');
      const held: Socket[] = [];
      const refused: Promise<Buffer>[] = [];
      await inBatches(count, 200, async () => {
        const socket = await open(ports.limited, '127.0.0.66');
        held.push(socket);
        refused.push(closedByPeer(socket));
      });
      // A client's connect completes in the kernel before l4lb accepts: wait for l4lb's count.
      await waitUntil(() => rejectedOf('limited')['refused-over-connections'] - before['refused-over-connections'] >= count - 20);
      const counts = delta(before, rejectedOf('limited'));
      expect(counts).toEqual({ 'refused-over-connections': count - 20 });
      const admitted = held.filter((socket) => !socket.destroyed && socket.readyState === 'open').length;
      for (const socket of held) socket.destroy();
      await Promise.all(refused);
      return { tried: count, outcome: `admitted ${count - (counts['refused-over-connections'] ?? 0)} (open at the end: ${admitted}), ${describeDelta(counts)}` };
    }, { source: '127.0.0.77' });
  }, LONG);

  it('a connect-and-close flood of 600 from one source with perSourceRate 50/m: 50 admitted, plus one a refill while it lasts', async () => {
    const count = 600;
    await measured('connect/close flood (perSourceRate: 50/m)', 'rated', async () => {
      const before = rejectedOf('rated');
      const started = performance.now();
      await inBatches(count, 100, async () => {
        const socket = await open(ports.rated, '127.0.0.68');
        const closed = closedByPeer(socket);
        socket.end();
        await closed;
      });
      const elapsed = performance.now() - started;
      const counts = delta(before, rejectedOf('rated'));
      // 50/m refills one token every 1.2 s: on a slow machine the flood outlasts a refill or two,
      // and each refill may admit one more. Nothing but the rate limit may refuse.
      const admitted = count - (counts['refused-over-rate'] ?? 0);
      expect(Object.keys(counts)).toEqual(['refused-over-rate']);
      expect(admitted).toBeGreaterThanOrEqual(50);
      expect(admitted).toBeLessThanOrEqual(50 + Math.ceil(elapsed / 1200));
      return { tried: count, outcome: `admitted ${admitted} in ${(elapsed / 1000).toFixed(1)} s, ${describeDelta(counts)}` };
    }, { source: '127.0.0.78', max: 40 });
  }, LONG);

  it('a flood of 2,000 from a denied source: all refused before any backend', async () => {
    const count = 2000;
    await measured('flood from a denied source', 'guarded', async () => {
      const before = rejectedOf('guarded');
      const backendConnectionsBefore = statsOf('guarded').backends.reduce((sum, row) => sum + row.total, 0);
      await inBatches(count, 200, (i) => attack(ports.guarded, '127.0.0.99', Buffer.from(`GET /${i} HTTP/1.0\r\n\r\n`)));
      const counts = delta(before, rejectedOf('guarded'));
      expect(counts).toEqual({ 'refused-denied': count });
      const backendConnections = statsOf('guarded').backends.reduce((sum, row) => sum + row.total, 0) - backendConnectionsBefore;
      return { tried: count, outcome: `${describeDelta(counts)}; backend connections meanwhile: ${backendConnections} (the well-behaved client's)` };
    });
  }, LONG);

  it('refusals are logged at a bounded rate: a first line, then at most one summary a second', async () => {
    // The floods above wrote far fewer lines than they refused connections (see the table), and
    // none per refused connection: check the largest one.
    const flood = figures.find((row) => row.attack === 'flood from a denied source');
    expect(flood).toBeDefined();
    expect(flood?.logLines).toBeLessThan(20);
    const firsts = log.records.filter((record) => record.msg === 'connection refused by source rules');
    const summaries = log.records.filter((record) => record.msg === 'connections refused by source rules (summary)');
    const refused = ['limited', 'rated', 'guarded'].reduce((sum, name) => sum + Object.values(statsOf(name).rejected).reduce((a, b) => a + b, 0), 0);
    const summarised = summaries.reduce((sum, record) => sum + (record.total as number), 0);
    // Every refusal is in a line (a first one, or a summary's total), and there are few lines.
    expect(firsts.length + summarised).toBeLessThanOrEqual(refused);
    expect(firsts.length + summaries.length).toBeLessThan(refused / 100);
    figures.push({ attack: 'refusal log, all floods', tried: 0, outcome: `${refused} refused → ${firsts.length} first lines + ${summaries.length} summaries`, good: 0, goodFailures: 0, logLines: firsts.length + summaries.length });
  }, LONG);
});

describe('after every attack', () => {
  it('the balancer still answers on every service and holds no stray connection', async () => {
    for (const service of ['plain', 'limited', 'guarded']) {
      const socket = await open(ports[service], '127.0.0.5');
      const back = closedByPeer(socket);
      socket.end('still here\n');
      expect((await back).toString()).toBe('still here\n');
    }
    await waitUntil(() => balancer.stats().every((stats) => stats.current === 0 && stats.queued === 0));
  }, LONG);
});
