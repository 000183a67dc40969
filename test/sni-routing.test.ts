/**
 * TLS passthrough listeners (src/proxy/router.ts) on real loopback sockets, IPv4 and IPv6, in an
 * in-process balancer: which route a server name takes (exact, then the longest one-label
 * wildcard, then the default; names compared in lower case without a trailing dot), that the
 * backend receives every byte the client sent, the ClientHello included, however it was cut into
 * segments, what happens to a client with no ClientHello in time or a first flight that is not
 * TLS (the default route, or a reset without one; counted either way), that a client leaving
 * during inspection leaves nothing behind, the PROXY v2 header in front of the ClientHello, and
 * `hashKey: sni`. The ClientHello reader itself is test/client-hello.test.ts's.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import type { BackendConfig, ListenerConfig, ProxyServiceConfig, RouteConfig } from '../src/config/index.js';
import { createPicker } from '../src/hashing/index.js';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { startAdmin } from '../src/admin/server.js';
import { startBalancer, type Balancer, type InspectStats, type ListenerStats } from '../src/proxy/index.js';
import { ProxyHeaderParser, proxiedEndpoints } from '../src/proxy-protocol/index.js';
import { slotHashOf } from '../src/services/index.js';
import { backend, proxyService } from './helpers/config.js';
import { captureLog, type CapturedLog, type LogRecord } from './helpers/log.js';
import { metricValue } from './helpers/metrics.js';
import { connectClient, peerClosed, readAll, readLine, startNamedServer, startServer, type TestServer } from './helpers/net.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A real first flight: `openssl s_client -servername db.example.com` (test/fixtures/tls). */
const OPENSSL_HELLO = Buffer.from(readFileSync(new URL('./fixtures/tls/openssl-s_client-db.example.com.hex', import.meta.url), 'utf8').trim(), 'hex');

function u16(value: number): Buffer {
  return Buffer.from([value >> 8, value & 0xff]);
}

/**
 * A minimal well-formed TLS 1.2 ClientHello (RFC 5246 §7.4.1.2) in one record, with a server_name
 * extension (RFC 6066 §3) holding `name` as given (any case, a trailing dot kept), or none.
 */
function clientHello(name: string | undefined): Buffer {
  let extensions = Buffer.alloc(0);
  if (name !== undefined) {
    const host = Buffer.from(name, 'latin1');
    const entry = Buffer.concat([Buffer.from([0]), u16(host.length), host]);
    const list = Buffer.concat([u16(entry.length), entry]);
    extensions = Buffer.concat([u16(0), u16(list.length), list]);
  }
  const body = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32, 0x5a), Buffer.from([0]), u16(2), Buffer.from([0xc0, 0x2f]), Buffer.from([1, 0]), u16(extensions.length), extensions]);
  const message = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([22, 3, 1]), u16(message.length), message]);
}

async function named(name: string): Promise<TestServer> {
  const server = await startNamedServer(name);
  cleanups.push(() => server.close());
  return server;
}

/** A backend that keeps everything each client sent until its FIN, then ends its side. */
async function recorder(): Promise<TestServer & { received: Promise<Buffer>[] }> {
  const received: Promise<Buffer>[] = [];
  const server = await startServer((socket) => {
    received.push(readAll(socket).then((bytes) => (socket.end(), bytes)));
  });
  cleanups.push(() => server.close());
  return Object.assign(server, { received });
}

/** A proxy service only listeners reach (no listen of its own). */
function routedService(name: string, backends: BackendConfig[], extra: Partial<ProxyServiceConfig> = {}): ProxyServiceConfig {
  return proxyService(backends, { name, listen: [], ...extra });
}

function listener(routes: RouteConfig[], host = '127.0.0.1', inspect = 5000): ListenerConfig {
  return { listen: { host, port: 0 }, routes, timeouts: { inspect } };
}

interface Running {
  readonly balancer: Balancer;
  readonly log: CapturedLog;
  /** The bound port of listeners[i]. */
  readonly port: (index?: number) => number;
}

async function start(services: ProxyServiceConfig[], listeners: ListenerConfig[], clock?: ManualClock): Promise<Running> {
  const log = captureLog();
  const balancer = await startBalancer({ services, listeners }, { logger: log.logger, ...(clock === undefined ? {} : { clock }) });
  cleanups.push(() => balancer.close(0));
  return { balancer, log, port: (index = 0) => balancer.listenerAddress(index).port };
}

async function client(port: number, source?: string, host = '127.0.0.1'): Promise<Socket> {
  const socket = await connectClient(port, source, host);
  socket.on('error', () => {}); // refused clients are reset; each test looks at 'close'
  cleanups.push(async () => socket.destroy());
  return socket;
}

/** The name the backend a client named `sni` (undefined: a ClientHello without one) reached greets it with. */
async function backendFor(port: number, sni: string | undefined): Promise<string> {
  const socket = await client(port);
  socket.write(clientHello(sni));
  const name = await readLine(socket);
  socket.destroy();
  return name;
}

/** listeners[0]'s rows of l4lb_sni_inspect_total, without the listener's name. */
function rows(balancer: Balancer): Omit<InspectStats, 'listener'>[] {
  return balancer
    .inspections()
    .map(({ result, route, count }) => ({ result, route, count }))
    .sort((a, b) => `${a.result} ${a.route}`.localeCompare(`${b.result} ${b.route}`));
}

/**
 * Resolves once listeners[index] has a client under inspection. Each inspection sets its timer on
 * `clock` as the listener takes the client, so every new timer is a moment to look again.
 */
async function inspectingNow(balancer: Balancer, clock: ManualClock, index: number): Promise<void> {
  while ((balancer.listenerStats()[index]?.inspecting ?? 0) === 0) await clock.nextTimer();
}

function accessOf(log: CapturedLog, inspect: string): Promise<LogRecord> {
  return log.waitFor((record) => record.msg === 'connection' && record.inspect === inspect);
}

describe('which route a server name takes', () => {
  it('exact beats wildcard, the longest wildcard beats a shorter one, a wildcard beats the default; case and a trailing dot do not matter', async () => {
    const services = [
      routedService('exact', [backend('exact', (await named('exact')).port)]),
      routedService('wild', [backend('wild', (await named('wild')).port)]),
      routedService('deep', [backend('deep', (await named('deep')).port)]),
      routedService('fallback', [backend('fallback', (await named('fallback')).port)]),
    ];
    // Wildcards listed before the exact name: the order of routes does not decide, the kind does.
    const routes: RouteConfig[] = [{ sni: '*.example.org', service: 'wild' }, { sni: '*.b.example.org', service: 'deep' }, { sni: 'db.example.org', service: 'exact' }, { default: 'fallback' }];
    const { balancer, log, port } = await start(services, [listener(routes)]);
    const cases: [string | undefined, string][] = [
      ['db.example.org', 'exact'],
      ['DB.Example.ORG', 'exact'],
      ['db.example.org.', 'exact'],
      ['a.example.org', 'wild'],
      ['A.EXAMPLE.org', 'wild'],
      ['a.b.example.org', 'deep'],
      ['example.org', 'fallback'], // no label in front of *.example.org
      ['x.y.example.org', 'fallback'], // two labels in front of *.example.org, and *.b.example.org does not end it
      ['example.org.evil.test', 'fallback'],
      ['db.example.com', 'fallback'],
      [undefined, 'fallback'], // a ClientHello without a server name
    ];
    for (const [sni, expected] of cases) expect(`${sni} -> ${await backendFor(port(), sni)}`).toBe(`${sni} -> ${expected}`);
    const records = await log.waitForAccess(cases.length);
    expect(records.find((record) => record.backend === 'exact')).toMatchObject({ service: 'exact', inspect: 'sni', sni: 'db.example.org', listener: '127.0.0.1:0 listeners[0]' });
    expect(records.filter((record) => record.sni === 'a.b.example.org').map((record) => record.service)).toEqual(['deep']);
    expect(rows(balancer)).toEqual([
      { result: 'no-sni', route: 'default', count: 1 },
      { result: 'sni', route: 'default', count: 4 },
      { result: 'sni', route: 'name', count: 6 },
    ]);
  });

  it('a name no route matches, with no default route, is reset, logged sni-refused and counted', async () => {
    const services = [routedService('only', [backend('only', (await named('only')).port)])];
    const { balancer, log, port } = await start(services, [listener([{ sni: 'only.example.net', service: 'only' }])]);
    expect(await backendFor(port(), 'ONLY.example.net')).toBe('only');
    const stray = await client(port());
    const strayAddress = `127.0.0.1:${stray.localPort}`;
    stray.write(clientHello('other.example.net'));
    expect((await peerClosed(stray))?.code).toBe('ECONNRESET');
    expect(await log.waitFor((record) => record.backend === 'only')).toMatchObject({ service: 'only', inspect: 'sni', sni: 'only.example.net' });
    // The refused client's address is the one it connected from, although its socket is gone when the line is written.
    expect(await log.waitFor((record) => record.end === 'sni-refused')).toMatchObject({ inspect: 'sni', sni: 'other.example.net', backend: null, client: strayAddress });
    expect(rows(balancer)).toEqual([
      { result: 'sni', route: 'name', count: 1 },
      { result: 'sni', route: 'none', count: 1 },
    ]);
  });
});

describe('the bytes the backend receives', () => {
  it('a real ClientHello written one byte at a time reaches the backend its name routes to, every byte unchanged and first, then the rest', async () => {
    const pg = await recorder();
    const other = await recorder();
    const services = [routedService('pg', [backend('pg', pg.port)]), routedService('other', [backend('other', other.port)])];
    const { balancer, port } = await start(services, [listener([{ sni: 'db.example.com', service: 'pg' }, { default: 'other' }])]);
    const socket = await client(port());
    socket.setNoDelay(true);
    for (let at = 0; at < OPENSSL_HELLO.length; at++) {
      await new Promise<void>((resolve, reject) => socket.write(OPENSSL_HELLO.subarray(at, at + 1), (error) => (error ? reject(error) : resolve())));
    }
    const rest = Buffer.from('after the hello: application bytes');
    socket.end(rest);
    await pg.nextConnection();
    expect((await pg.received[0]).equals(Buffer.concat([OPENSSL_HELLO, rest]))).toBe(true);
    await once(socket, 'end'); // the backend ended its side after the client's FIN: half-close went both ways
    expect(other.accepted).toHaveLength(0);
    expect(rows(balancer)).toEqual([{ result: 'sni', route: 'name', count: 1 }]);
  });

  it('a first flight that is not TLS takes the default route with its bytes intact; without a default it is reset; both are counted not-tls', async () => {
    const web = await recorder();
    const services = [routedService('web', [backend('web', web.port)])];
    const { balancer, log, port } = await start(services, [listener([{ sni: 'web.example.org', service: 'web' }, { default: 'web' }]), listener([{ sni: 'web.example.org', service: 'web' }])]);
    const request = Buffer.from('GET / HTTP/1.1\r\nHost: web.example.org\r\n\r\n');
    const plain = await client(port(0));
    plain.end(request);
    await web.nextConnection();
    expect((await web.received[0]).equals(request)).toBe(true);
    expect(await accessOf(log, 'not-tls')).toMatchObject({ service: 'web', listener: expect.any(String) });

    const refused = await client(port(1));
    refused.write(request);
    expect((await peerClosed(refused))?.code).toBe('ECONNRESET');
    expect(await log.waitFor((record) => record.end === 'sni-refused')).toMatchObject({ inspect: 'not-tls', backend: null });
    expect(web.accepted).toHaveLength(1);
    // A listener on port 0 is named by its endpoint and its owner (src/proxy/listening-socket.ts).
    expect(balancer.inspections()).toEqual([
      { listener: '127.0.0.1:0 listeners[0]', result: 'not-tls', route: 'default', count: 1 },
      { listener: '127.0.0.1:0 listeners[1]', result: 'not-tls', route: 'none', count: 1 },
    ]);
  });
});

describe('first flights the reader refuses', () => {
  it('a ClientHello whose lengths do not add up, or one declared over 16 KiB, takes the default route with its bytes, counted malformed and too-large', async () => {
    const web = await recorder();
    const { balancer, port } = await start([routedService('web', [backend('web', web.port)])], [listener([{ sni: 'web.example.org', service: 'web' }, { default: 'web' }])]);
    const malformed = Buffer.from(clientHello('web.example.org'));
    malformed[5 + 4 + 34] = 200; // legacy_session_id length 200: at most 32
    const tooLarge = Buffer.from([22, 3, 1, 0x40, 0x00, 1, 0x00, 0x40, 0x00]); // a handshake message of 16384 bytes: over the limit with its header
    for (const bytes of [malformed, tooLarge]) {
      const socket = await client(port());
      socket.end(bytes);
      await web.nextConnection();
    }
    expect((await web.received[0]).equals(malformed)).toBe(true);
    expect((await web.received[1]).equals(tooLarge)).toBe(true);
    expect(rows(balancer)).toEqual([
      { result: 'malformed', route: 'default', count: 1 },
      { result: 'too-large', route: 'default', count: 1 },
    ]);
  });
});

describe('clients that send no ClientHello', () => {
  it('timeouts.inspect with no data: the default route (the backend gets no bytes), or a reset without one; counted timeout', async () => {
    const clock = new ManualClock();
    const fallback = await named('fallback');
    const services = [routedService('fallback', [backend('fallback', fallback.port)])];
    const { balancer, log, port } = await start(services, [listener([{ default: 'fallback' }], '127.0.0.1', 2000), listener([{ sni: 'x.example.org', service: 'fallback' }], '127.0.0.1', 2000)], clock);

    const silent = await client(port(0));
    await inspectingNow(balancer, clock, 0);
    clock.advance(1999);
    expect(fallback.accepted).toHaveLength(0);
    clock.advance(1);
    expect(await readLine(silent)).toBe('fallback');
    expect((await fallback.nextConnection()).bytesRead).toBe(0);
    silent.end();
    expect(await accessOf(log, 'timeout')).toMatchObject({ service: 'fallback', backend: 'fallback' });

    const refused = await client(port(1));
    await inspectingNow(balancer, clock, 1);
    clock.advance(2000);
    expect((await peerClosed(refused))?.code).toBe('ECONNRESET');
    expect(await log.waitFor((record) => record.end === 'sni-refused')).toMatchObject({ inspect: 'timeout', durationMs: 2000 });
    expect(balancer.inspections()).toEqual([
      { listener: '127.0.0.1:0 listeners[0]', result: 'timeout', route: 'default', count: 1 },
      { listener: '127.0.0.1:0 listeners[1]', result: 'timeout', route: 'none', count: 1 },
    ]);
  });

  it.each([
    ['ends (FIN)', (socket: Socket) => socket.end()],
    ['resets (RST)', (socket: Socket) => socket.resetAndDestroy()],
  ])('a client that %s halfway through its ClientHello reaches no backend and leaves no connection behind', async (_how, leave) => {
    const clock = new ManualClock();
    const db = await recorder();
    const services = [routedService('db', [backend('db', db.port)])];
    const { balancer, log, port } = await start(services, [listener([{ sni: 'db.example.com', service: 'db' }, { default: 'db' }])], clock);
    const socket = await client(port());
    socket.write(OPENSSL_HELLO.subarray(0, 40));
    await inspectingNow(balancer, clock, 0);
    const address = `127.0.0.1:${socket.localPort}`;
    expect(balancer.listenerStats()[0]?.inspecting).toBe(1);
    leave(socket);
    expect(await accessOf(log, 'client-closed')).toMatchObject({ end: 'client-aborted', backend: null, bytesUp: 0, client: address });
    expect(clock.pending).toBe(0); // the inspection's timer is gone with it
    expect(db.accepted).toHaveLength(0);
    expect(balancer.stats()[0]).toMatchObject({ name: 'db', current: 0, total: 0 });
    expect(rows(balancer)).toEqual([{ result: 'client-closed', route: 'none', count: 1 }]);
    expect(balancer.listenerStats()).toEqual([{ listener: '127.0.0.1:0 listeners[0]', owner: 'listeners[0]', listen: { host: '127.0.0.1', port: port() }, inspecting: 0, inspections: [{ result: 'client-closed', route: 'none', count: 1 }] }]);
  });
});

describe('stop and reload', () => {
  it('closing the balancer ends a client still being inspected at once, counted and logged shutdown', async () => {
    const clock = new ManualClock();
    const db = await recorder();
    const { balancer, log, port } = await start([routedService('db', [backend('db', db.port)])], [listener([{ default: 'db' }])], clock);
    const socket = await client(port());
    await inspectingNow(balancer, clock, 0);
    const closed = peerClosed(socket);
    await balancer.close(60_000); // a drain of a minute: nothing of the listener may wait for it
    await closed;
    expect(await accessOf(log, 'shutdown')).toMatchObject({ end: 'shutdown', backend: null });
    expect(db.accepted).toHaveLength(0);
    expect(rows(balancer)).toEqual([{ result: 'shutdown', route: 'none', count: 1 }]);
  });

  it('a reload that changes the routes sends new clients the new way on the same socket, and the counts go on', async () => {
    const services = [routedService('one', [backend('one', (await named('one')).port)]), routedService('two', [backend('two', (await named('two')).port)])];
    const endpoint = listener([{ sni: 'app.example.org', service: 'one' }]);
    const { balancer, port } = await start(services, [endpoint]);
    const before = port();
    expect(await backendFor(before, 'app.example.org')).toBe('one');
    await balancer.reload({ services, listeners: [{ ...endpoint, routes: [{ sni: 'app.example.org', service: 'two' }] }] });
    expect(port()).toBe(before);
    expect(await backendFor(before, 'app.example.org')).toBe('two');
    expect(rows(balancer)).toEqual([{ result: 'sni', route: 'name', count: 2 }]);
  });
});

describe('after the route', () => {
  it.each(['127.0.0.1', '::1'])('on %s, proxyProtocol.send v2: the backend reads the client and the listener in the header, then the ClientHello unchanged', async (host) => {
    const tls = await recorder();
    const services = [routedService('tls', [backend('tls', tls.port)], { proxyProtocol: { send: 'v2' } })];
    const { port } = await start(services, [listener([{ sni: 'db.example.com', service: 'tls' }], host)]);
    const socket = await client(port(), undefined, host);
    const clientPort = socket.localPort as number;
    socket.end(Buffer.concat([OPENSSL_HELLO, Buffer.from('tail')]));
    await tls.nextConnection();
    const parsed = new ProxyHeaderParser().push(await tls.received[0]);
    if (parsed.status !== 'done') throw new Error(`no complete PROXY header at the backend: ${parsed.status}`);
    expect(parsed.header).toMatchObject({ version: 2, command: 'proxy', addresses: { family: host === '::1' ? 'tcp6' : 'tcp4' } });
    expect(proxiedEndpoints(parsed.header)).toEqual({ source: { address: host, port: clientPort }, destination: { address: host, port: port() } });
    expect(Buffer.from(parsed.rest).equals(Buffer.concat([OPENSSL_HELLO, Buffer.from('tail')]))).toBe(true);
  });

  it('hashKey: sni puts every client of one name on the backend the name hashes to, whatever its source address', async () => {
    const backends = [backend('t1', (await named('t1')).port), backend('t2', (await named('t2')).port), backend('t3', (await named('t3')).port)];
    const tenants = routedService('tenants', backends, { hashKey: 'sni' });
    const { port } = await start([tenants], [listener([{ sni: '*.example.org', service: 'tenants' }])]);
    const picker = createPicker('maglev', backends, { tableSize: tenants.tableSize, slotHash: slotHashOf(tenants) });
    const seen = new Set<string>();
    for (let tenant = 0; tenant < 8; tenant++) {
      const name = `tenant${tenant}.example.org`;
      const expected = picker.pick(Buffer.from(name, 'latin1'))?.name;
      for (const source of ['127.0.0.21', '127.0.0.22', '127.0.0.23']) {
        const socket = await client(port(), source);
        // Upper case on the wire: the key is the name as compared, lower case.
        socket.write(clientHello(source === '127.0.0.23' ? name.toUpperCase() : name));
        expect(`${name} from ${source}: ${await readLine(socket)}`).toBe(`${name} from ${source}: ${expected}`);
        socket.destroy();
      }
      seen.add(expected ?? '');
    }
    expect(seen.size).toBeGreaterThan(1); // the names spread: the key is the name, not one constant
  });
});

describe('counted in /stats and /metrics', () => {
  it('each listener’s clients being inspected and its inspections by result and route, as the admin API shows them', async () => {
    const clock = new ManualClock();
    const services = [routedService('db', [backend('db', (await named('db')).port)]), routedService('rest', [backend('rest', (await named('rest')).port)])];
    const { balancer, log, port } = await start(services, [listener([{ sni: 'db.example.com', service: 'db' }, { default: 'rest' }]), listener([{ sni: 'db.example.com', service: 'db' }], '::1')], clock);
    const admin = await startAdmin(balancer, { listen: { host: '127.0.0.1', port: 0 } });
    cleanups.push(() => admin.close());
    expect(await backendFor(port(0), 'db.example.com')).toBe('db');
    expect(await backendFor(port(0), undefined)).toBe('rest');
    expect(await backendFor(port(0), 'www.example.com')).toBe('rest');
    const refused = await client(port(1), undefined, '::1');
    refused.write(clientHello('www.example.com'));
    await peerClosed(refused);
    const waiting = await client(port(0)); // sends nothing: still being inspected while the admin API answers
    await inspectingNow(balancer, clock, 0);
    await log.waitFor((record) => record.end === 'sni-refused');

    const url = `http://127.0.0.1:${admin.address().port}`;
    const stats = (await (await fetch(`${url}/stats`)).json()) as { listeners: ListenerStats[] };
    expect(stats.listeners).toEqual([
      {
        listener: '127.0.0.1:0 listeners[0]',
        owner: 'listeners[0]',
        listen: { host: '127.0.0.1', port: port(0) },
        inspecting: 1,
        inspections: [
          { result: 'sni', route: 'name', count: 1 },
          { result: 'sni', route: 'default', count: 1 },
          { result: 'no-sni', route: 'default', count: 1 },
        ],
      },
      { listener: '[::1]:0 listeners[1]', owner: 'listeners[1]', listen: { host: '::1', port: port(1) }, inspecting: 0, inspections: [{ result: 'sni', route: 'none', count: 1 }] },
    ]);
    const families = parsePrometheusTextFormat(await (await fetch(`${url}/metrics`)).text());
    const first = '127.0.0.1:0 listeners[0]';
    expect(metricValue(families, 'l4lb_sni_inspect_total', { listener: first, result: 'sni', route: 'name' })).toBe(1);
    expect(metricValue(families, 'l4lb_sni_inspect_total', { listener: first, result: 'no-sni', route: 'default' })).toBe(1);
    expect(metricValue(families, 'l4lb_sni_inspect_total', { listener: '[::1]:0 listeners[1]', result: 'sni', route: 'none' })).toBe(1);
    expect(metricValue(families, 'l4lb_sni_inspecting', { listener: first })).toBe(1);

    waiting.end();
    await accessOf(log, 'client-closed');
    const after = parsePrometheusTextFormat(await (await fetch(`${url}/metrics`)).text());
    expect(metricValue(after, 'l4lb_sni_inspecting', { listener: first })).toBe(0);
    expect(metricValue(after, 'l4lb_sni_inspect_total', { listener: first, result: 'client-closed', route: 'none' })).toBe(1);
  });

  it('without listeners, /stats has no listeners key and /metrics no inspection series', async () => {
    const { balancer } = await start([proxyService([backend('b', (await named('b')).port)])], []);
    const admin = await startAdmin(balancer, { listen: { host: '127.0.0.1', port: 0 } });
    cleanups.push(() => admin.close());
    const url = `http://127.0.0.1:${admin.address().port}`;
    expect(await (await fetch(`${url}/stats`)).json()).not.toHaveProperty('listeners');
    expect(await (await fetch(`${url}/metrics`)).text()).not.toMatch(/^l4lb_sni_inspect_total\{/m);
  });
});
