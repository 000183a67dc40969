/**
 * PROXY headers and source rules wired into proxy services, over loopback with real sockets:
 * `proxyProtocol.accept` (header required from trusted peers, its source becomes the client for
 * hashing, rules and the access log; every fault closes and is counted, the header timeout on a
 * manual clock), the screen for untrusted peers, `send` v1/v2, and `allow`/`deny`/`limits`
 * refusing before any backend is contacted.
 */
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import type { BackendConfig, ProxyServiceConfig } from '../src/config/index.js';
import { createPicker } from '../src/hashing/index.js';
import { flowKey } from '../src/hashing/keys.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import { ServiceCounters } from '../src/proxy/queue.js';
import { ProxyService } from '../src/proxy/service.js';
import { buildPlan, resolveBackends, ServiceLoads, slotHashOf } from '../src/services/index.js';
import { ProxyHeaderParser, encodeForConnection, encodeV2, proxiedEndpoints, type ConnectionEndpoints, type ProxyHeader } from '../src/proxy-protocol/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog, type CapturedLog } from './helpers/log.js';
import { connectClient, peerClosed, readAll, readLine, startNamedServer, startServer, writeChunked, type TestServer } from './helpers/net.js';
import { listenFor } from './helpers/listen.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A backend that keeps every byte each connection sent, until that connection's FIN. */
async function recorder(): Promise<TestServer & { received: Promise<Buffer>[] }> {
  const received: Promise<Buffer>[] = [];
  const server = await startServer((socket) => {
    received.push(readAll(socket).then((bytes) => (socket.end(), bytes)));
  });
  cleanups.push(() => server.close());
  return Object.assign(server, { received });
}

async function named(name: string): Promise<TestServer> {
  const server = await startNamedServer(name);
  cleanups.push(() => server.close());
  return server;
}

async function balancerFor(service: ProxyServiceConfig): Promise<{ balancer: Balancer; log: CapturedLog; port: number }> {
  const log = captureLog();
  const balancer = await startBalancer(configOf(service), { logger: log.logger });
  cleanups.push(() => balancer.close(0));
  return { balancer, log, port: balancer.address(service.name).port };
}

async function client(port: number, source?: string, host?: string): Promise<Socket> {
  const socket = await connectClient(port, source, host);
  cleanups.push(async () => socket.destroy());
  return socket;
}

const ends = (source: string, sourcePort: number, destination = '192.0.2.1', destinationPort = 443): ConnectionEndpoints => ({
  source: { address: source, port: sourcePort },
  destination: { address: destination, port: destinationPort },
});

/** Parses the PROXY header a backend received; returns it and the bytes after it. */
function splitHeader(bytes: Buffer): { header: ProxyHeader; rest: Buffer } {
  const result = new ProxyHeaderParser().push(bytes);
  if (result.status !== 'done') throw new Error(`backend did not receive a complete header: ${result.status}`);
  return { header: result.header, rest: Buffer.from(result.rest) };
}

const accepting = (backends: BackendConfig[], extra: Partial<ProxyServiceConfig> = {}): ProxyServiceConfig =>
  proxyService(backends, {
    proxyProtocol: { accept: ['127.0.0.1', '::1'] },
    timeouts: { connect: 3000, idle: 60_000, queue: 5000, drain: 1000, proxyHeader: 3000 },
    ...extra,
  });

describe('proxyProtocol.accept from a trusted peer', () => {
  it.each(['v1', 'v2'] as const)('%s: the header is stripped, the bytes after it in the same write arrive intact, the log names the header’s client', async (version) => {
    const be = await recorder();
    const { balancer, log, port } = await balancerFor(accepting([backend('b1', be.port)]));
    const socket = await client(port, '127.0.0.1');
    socket.end(Buffer.concat([encodeForConnection(version, ends('203.0.113.7', 41000)), Buffer.from('hello after the header\n')]));
    await be.nextConnection();
    expect((await be.received[0]).toString()).toBe('hello after the header\n');
    const [record] = await log.waitForAccess(1);
    expect(record).toMatchObject({ client: '203.0.113.7:41000', peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/), bytesUp: 23, end: 'client-close' });
    expect(balancer.stats()[0].rejected['proxy-header-invalid']).toBe(0);
  });

  it('slow drip: a v2 header one byte per write, then 1 MiB of payload in odd chunks, arrives byte for byte', async () => {
    const be = await recorder();
    const { log, port } = await balancerFor(accepting([backend('b1', be.port)]));
    const socket = await client(port, '127.0.0.1');
    const header = encodeV2({ command: 'proxy', addresses: { family: 'tcp6', ...ends('2001:db8::5', 5000, '2001:db8::1', 80) } }, { crc32c: true });
    for (const byte of header) {
      socket.write(Buffer.of(byte));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const payload = Buffer.alloc(1 << 20);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919) & 0xff;
    await writeChunked(socket, payload, [1, 3, 1000, 65536, 7]);
    socket.end();
    await be.nextConnection();
    const got = await be.received[0];
    expect(got.length).toBe(payload.length);
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
    expect((await log.waitForAccess(1))[0]).toMatchObject({ client: '[2001:db8::5]:5000', bytesUp: payload.length });
  });

  it('hashing uses the header’s source: 40 sources behind one proxy land where the picker says', async () => {
    const names = ['b1', 'b2', 'b3'];
    const servers = await Promise.all(names.map(named));
    const service = accepting(names.map((name, i) => backend(name, servers[i].port)));
    const picker = createPicker('maglev', service.backends, { tableSize: service.tableSize, slotHash: slotHashOf(service) });
    const { port } = await balancerFor(service);
    const seen = new Set<string>();
    for (let i = 1; i <= 40; i++) {
      const source = `198.51.100.${i}`;
      const socket = await client(port, '127.0.0.1');
      socket.write(encodeForConnection(i % 2 === 0 ? 'v1' : 'v2', ends(source, 40000 + i)));
      const name = await readLine(socket);
      expect(name).toBe(picker.pick(flowKey(source))?.name);
      seen.add(name);
      socket.destroy();
    }
    expect(seen.size).toBe(3); // the test would prove nothing if every source hashed alike
  });

  it('a v2 LOCAL header (a health check from the proxy) keeps the peer as the client', async () => {
    const be = await recorder();
    const { log, port } = await balancerFor(accepting([backend('b1', be.port)]));
    const socket = await client(port, '127.0.0.1');
    socket.end(Buffer.concat([encodeV2({ command: 'local', addresses: { family: 'unspec' } }), Buffer.from('x')]));
    await be.nextConnection();
    expect((await be.received[0]).toString()).toBe('x');
    const [record] = await log.waitForAccess(1);
    expect(record.client).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(record.peer).toBeUndefined();
  });

  const faults: [string, Buffer | 'fin', string, RegExp][] = [
    ['garbage (an HTTP request)', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 'proxy-header-invalid', /first byte 0x47/],
    ['v1 with a bad address', Buffer.from('PROXY TCP4 300.1.1.1 127.0.0.1 1 2\r\n'), 'proxy-header-invalid', /address/],
    ['v1 without CRLF in 107 bytes', Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`), 'proxy-header-invalid', /107/],
    ['v2 length field too large', Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0xff, 0xff]), 'proxy-header-invalid', /length/],
    ['truncated, then FIN', 'fin', 'proxy-header-invalid', /truncated: the peer closed after 9 bytes/],
  ];

  it.each(faults)('%s: closed, logged with its reason, counted, and no backend contacted', async (_name, input, end, error) => {
    const be = await recorder();
    const service = accepting([backend('b1', be.port)], { timeouts: { connect: 3000, idle: 60_000, queue: 5000, drain: 1000, proxyHeader: 1000 } });
    const { balancer, log, port } = await balancerFor(service);
    const socket = await client(port, '127.0.0.1');
    const closed = peerClosed(socket);
    if (input === 'fin') socket.end('PROXY TCP');
    else socket.write(input);
    await closed;
    const [record] = await log.waitForAccess(1);
    expect(record).toMatchObject({ end, backend: null, bytesUp: 0 });
    expect(record.error).toMatch(error);
    expect(balancer.stats()[0].rejected[end as 'proxy-header-invalid']).toBe(1);
    expect(be.accepted).toHaveLength(0);
  });

  it('nothing at all: closed when timeouts.proxyHeader has passed, not before, logged, counted, and no backend contacted', async () => {
    const be = await recorder();
    const config = accepting([backend('b1', be.port)], { timeouts: { connect: 3000, idle: 60_000, queue: 5000, drain: 1000, proxyHeader: 1000 } });
    const clock = new ManualClock();
    const log = captureLog();
    const service = new ProxyService(buildPlan(config, await resolveBackends(config, 'svc'), new ServiceLoads()), log.logger, new ServiceCounters(), { clock });
    const { port, close } = await listenFor(service, log.logger);
    cleanups.push(() => service.close(0).then(close));
    const reading = clock.nextTimer(); // the header read's timeout, set when the connection is accepted
    const socket = await client(port, '127.0.0.1');
    const closed = peerClosed(socket);
    await reading;
    clock.advance(999);
    expect(service.stats({ host: '127.0.0.1', port }).rejected['proxy-header-timeout']).toBe(0);
    clock.advance(1);
    await closed;
    const [record] = await log.waitForAccess(1);
    expect(record).toMatchObject({ end: 'proxy-header-timeout', backend: null, bytesUp: 0, durationMs: 1000 });
    expect(record.error).toMatch(/no complete PROXY header within 1000 ms \(0 bytes/);
    expect(service.stats({ host: '127.0.0.1', port }).rejected['proxy-header-timeout']).toBe(1);
    expect(be.accepted).toHaveLength(0);
  });
});

describe('peers outside proxyProtocol.accept', () => {
  const untrusted = (backends: BackendConfig[]): ProxyServiceConfig => accepting(backends, { proxyProtocol: { accept: ['127.0.0.2'] } });

  it.each(['v1', 'v2'] as const)('a %s header from them ends the connection before any of it reaches the backend', async (version) => {
    const be = await recorder();
    const { balancer, log, port } = await balancerFor(untrusted([backend('b1', be.port)]));
    const socket = await client(port, '127.0.0.1');
    const closed = peerClosed(socket);
    const header = Buffer.from(encodeForConnection(version, ends('10.6.6.6', 666)));
    socket.write(header.subarray(0, 3)); // a prefix is held back, not forwarded
    await be.nextConnection();
    socket.write(header.subarray(3));
    await closed;
    expect((await log.waitForAccess(1))[0]).toMatchObject({ end: 'proxy-header-not-allowed', bytesUp: 0 });
    expect(balancer.stats()[0].rejected['proxy-header-not-allowed']).toBe(1);
    expect((await be.received[0]).length).toBe(0);
  });

  it('ordinary bytes from them pass, including a held prefix of a signature flushed by their FIN', async () => {
    const be = await recorder();
    const { log, port } = await balancerFor(untrusted([backend('b1', be.port)]));
    const a = await client(port, '127.0.0.1');
    a.end('PROXIMITY is not a header\n');
    const b = await client(port, '127.0.0.1');
    b.end('PRO');
    await be.nextConnection();
    await be.nextConnection();
    const got = (await Promise.all(be.received)).map(String).sort();
    expect(got).toEqual(['PRO', 'PROXIMITY is not a header\n']);
    const records = await log.waitForAccess(2);
    expect(records.map((record) => record.end)).toEqual(['client-close', 'client-close']);
  });
});

describe('proxyProtocol.send', () => {
  it.each(['v1', 'v2'] as const)('%s: the backend reads the client’s address and the listener’s, then the client’s bytes', async (version) => {
    const be = await recorder();
    const { port } = await balancerFor(proxyService([backend('b1', be.port)], { proxyProtocol: { send: version } }));
    const socket = await client(port, '127.0.0.5');
    const localPort = socket.localPort as number; // read before the socket closes
    socket.end('payload');
    await be.nextConnection();
    const { header, rest } = splitHeader(await be.received[0]);
    expect(header.version).toBe(version === 'v1' ? 1 : 2);
    expect(proxiedEndpoints(header)).toEqual(ends('127.0.0.5', localPort, '127.0.0.1', port));
    expect(rest.toString()).toBe('payload');
  });

  it('over IPv6 the header is TCP6', async () => {
    const be = await recorder();
    const { port } = await balancerFor(proxyService([backend('b1', be.port)], { listen: [{ host: '::1', port: 0 }], proxyProtocol: { send: 'v1' } }));
    const socket = await client(port, undefined, '::1');
    const localPort = socket.localPort as number;
    socket.end('six');
    await be.nextConnection();
    const { header, rest } = splitHeader(await be.received[0]);
    expect(header).toMatchObject({ version: 1, protocol: 'TCP6' });
    expect(proxiedEndpoints(header)).toEqual(ends('::1', localPort, '::1', port));
    expect(rest.toString()).toBe('six');
  });

  it('a server-speaks-first backend still gets the header at once, before the client says anything', async () => {
    let gotFirst: (chunk: Buffer) => void = () => undefined;
    const firstChunk = new Promise<Buffer>((resolve) => (gotFirst = resolve));
    const be = await startServer((socket) => socket.once('data', gotFirst));
    cleanups.push(() => be.close());
    const { port } = await balancerFor(proxyService([backend('b1', be.port)], { proxyProtocol: { send: 'v2' } }));
    const socket = await client(port, '127.0.0.6');
    const first = await firstChunk;
    expect(proxiedEndpoints(splitHeader(first).header)?.source.address).toBe('127.0.0.6');
    socket.end();
  });

  it('accept and send together pass the trusted header’s client and destination on', async () => {
    const be = await recorder();
    const { port } = await balancerFor(accepting([backend('b1', be.port)], { proxyProtocol: { accept: ['127.0.0.1'], send: 'v2' } }));
    const socket = await client(port, '127.0.0.1');
    socket.end(Buffer.concat([encodeForConnection('v1', ends('203.0.113.9', 1234, '192.0.2.80', 8443)), Buffer.from('data')]));
    await be.nextConnection();
    const { header, rest } = splitHeader(await be.received[0]);
    expect(proxiedEndpoints(header)).toEqual(ends('203.0.113.9', 1234, '192.0.2.80', 8443));
    expect(rest.toString()).toBe('data');
  });
});

describe('allow, deny and limits', () => {
  it('deny wins over allow; refused clients never reach a backend, get no access line each, and are counted', async () => {
    const be = await recorder();
    const service = proxyService([backend('b1', be.port)], { allow: ['127.0.0.0/8'], deny: ['127.0.0.66', '127.0.1.0/24'] });
    const { balancer, log, port } = await balancerFor(service);
    for (const source of ['127.0.0.66', '127.0.1.9', '127.0.1.10']) await peerClosed(await client(port, source));
    const ok = await client(port, '127.0.0.67');
    ok.end('fine');
    await be.nextConnection();
    expect((await be.received[0]).toString()).toBe('fine');
    const records = await log.waitForAccess(1);
    expect(records.map((record) => record.end)).toEqual(['client-close']);
    expect(balancer.stats()[0].rejected['refused-denied']).toBe(3);
    expect(be.accepted).toHaveLength(1);
    expect(log.records.filter((record) => record.msg === 'connection refused by source rules')).toHaveLength(1);
  });

  it('allow applies to the PROXY header’s client, not to the proxy in front', async () => {
    const b1 = await named('b1');
    const { balancer, port } = await balancerFor(accepting([backend('b1', b1.port)], { allow: ['203.0.113.0/24'] }));
    const good = await client(port, '127.0.0.1');
    good.write(encodeForConnection('v1', ends('203.0.113.1', 1)));
    expect(await readLine(good)).toBe('b1');
    const bad = await client(port, '127.0.0.1');
    bad.write(encodeForConnection('v1', ends('198.51.100.1', 1)));
    await peerClosed(bad);
    expect(balancer.stats()[0].rejected['refused-not-allowed']).toBe(1);
  });

  it('perSourceConnections: the third concurrent connection from one source is refused; closing one makes room', async () => {
    const b1 = await named('b1');
    const { balancer, log, port } = await balancerFor(proxyService([backend('b1', b1.port)], { limits: { perSourceConnections: 2 } }));
    const first = await client(port, '127.0.0.8');
    const second = await client(port, '127.0.0.8');
    expect(await readLine(first)).toBe('b1');
    expect(await readLine(second)).toBe('b1');
    await peerClosed(await client(port, '127.0.0.8'));
    const other = await client(port, '127.0.0.9'); // another source is not affected
    expect(await readLine(other)).toBe('b1');
    first.destroy();
    await log.waitForAccess(1); // the balancer has seen it end (the refused one is summarised, not logged)
    expect(balancer.stats()[0].current).toBe(2);
    const again = await client(port, '127.0.0.8');
    expect(await readLine(again)).toBe('b1');
    expect(balancer.stats()[0].rejected['refused-over-connections']).toBe(1);
  });

  it('perSourceRate: a burst of N, then refused until the bucket refills', async () => {
    const b1 = await named('b1');
    const { balancer, port } = await balancerFor(proxyService([backend('b1', b1.port)], { limits: { perSourceRate: '3/m' } }));
    for (let i = 0; i < 3; i++) {
      const socket = await client(port, '127.0.0.10');
      expect(await readLine(socket)).toBe('b1');
      socket.destroy();
    }
    await peerClosed(await client(port, '127.0.0.10'));
    expect(balancer.stats()[0].rejected['refused-over-rate']).toBe(1);
  });
});
