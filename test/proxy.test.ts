/**
 * Proxy services: retries on the strategy's next candidate after connect failures and timeouts,
 * per-backend and per-service maxConnections with the bounded wait queue (its timeouts on a
 * manual clock), the access log's fields and end reasons, start-up errors (port taken, name that
 * resolves nowhere), reload and drain.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import type { BackendConfig, DsrServiceConfig, ProxyServiceConfig } from '../src/config/index.js';
import { createPicker } from '../src/hashing/index.js';
import { flowKey } from '../src/hashing/keys.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import { ServiceCounters } from '../src/proxy/queue.js';
import { ProxyService } from '../src/proxy/service.js';
import { buildPlan, resolveBackends, ServiceLoads, slotHashOf } from '../src/services/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog, type CapturedLog } from './helpers/log.js';
import { connectClient, peerClosed, freePort, readAll, readBytes, readLine, startBlackhole, startNamedServer, startServer, type TestServer } from './helpers/net.js';
import { listenFor } from './helpers/listen.js';

/** Everything a test starts, stopped after it whatever happened. */
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

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

/** One service as the balancer builds it, but on a manual clock the test moves (queue timeouts, queueMs). */
async function serviceOnClock(service: ProxyServiceConfig): Promise<{ running: ProxyService; clock: ManualClock; log: CapturedLog; port: number }> {
  const clock = new ManualClock();
  const log = captureLog();
  const running = new ProxyService(buildPlan(service, await resolveBackends(service, service.name), new ServiceLoads()), log.logger, new ServiceCounters(), { clock });
  const { port, close } = await listenFor(running, log.logger);
  cleanups.push(() => running.close(0).then(close));
  return { running, clock, log, port };
}

/** A loopback source whose primary (attempt 0) backend is `name`, and that backend's successor. */
function sourceWhosePrimaryIs(service: ProxyServiceConfig, name: string): { source: string; next: string } {
  const picker = createPicker('maglev', service.backends, { tableSize: service.tableSize, slotHash: slotHashOf(service) });
  for (let i = 2; i < 250; i++) {
    const source = `127.0.9.${i}`;
    if (picker.pick(flowKey(source))?.name === name) return { source, next: picker.pick(flowKey(source), 1)?.name as string };
  }
  throw new Error(`no source in 127.0.9.0/24 maps to ${name}`);
}

async function client(port: number, source?: string): Promise<Socket> {
  const socket = await connectClient(port, source);
  cleanups.push(async () => socket.destroy());
  return socket;
}

describe('retries', () => {
  it('a refused connect retries on the picker’s next candidate', async () => {
    const dead = await freePort();
    const backends: BackendConfig[] = [backend('dead', dead), backend('b2', (await named('b2')).port), backend('b3', (await named('b3')).port)];
    const service = proxyService(backends, { retries: 2 });
    const { source, next } = sourceWhosePrimaryIs(service, 'dead');
    const { log, port } = await balancerFor(service);
    const socket = await client(port, source);
    expect(await readLine(socket)).toBe(next);
    socket.end();
    const [record] = await log.waitForAccess(1);
    expect(record).toMatchObject({ backend: next, retries: 1, end: 'client-close' });
  });

  it('gives up after `retries` failures with connect-failed', async () => {
    const backends = [backend('d1', await freePort()), backend('d2', await freePort()), backend('d3', await freePort())];
    const { log, port } = await balancerFor(proxyService(backends, { retries: 1 }));
    const socket = await client(port);
    await peerClosed(socket);
    const [record] = await log.waitForAccess(1);
    expect(record).toMatchObject({ retries: 1, end: 'connect-failed', error: 'ECONNREFUSED', bytesUp: 0, bytesDown: 0, connectMs: -1 });
  });

  it('a connect timeout retries on the next candidate; with no retry left it is logged as connect-timeout', async () => {
    const hole = await startBlackhole();
    cleanups.push(() => hole.close());
    const timeouts = { connect: 150, idle: 60_000, queue: 1000, drain: 1000 };
    const service = proxyService([backend('hole', hole.port), backend('b2', (await named('b2')).port)], { retries: 1, timeouts });
    const { source, next } = sourceWhosePrimaryIs(service, 'hole');
    const { log, port } = await balancerFor(service);
    const socket = await client(port, source);
    expect(await readLine(socket)).toBe(next);
    socket.end();
    expect((await log.waitForAccess(1))[0]).toMatchObject({ backend: 'b2', retries: 1 });

    const alone = await balancerFor({ ...proxyService([backend('hole', hole.port)], { retries: 0, timeouts }), name: 'alone' });
    const stuck = await client(alone.port);
    await peerClosed(stuck);
    expect((await alone.log.waitForAccess(1))[0]).toMatchObject({ backend: 'hole', end: 'connect-timeout', retries: 0 });
  });
});

describe('maxConnections', () => {
  it('a backend at its maxConnections is skipped for the next candidate, without counting a retry', async () => {
    const b1 = await named('b1');
    const backends = [backend('b1', b1.port, { maxConnections: 1 }), backend('b2', (await named('b2')).port), backend('b3', (await named('b3')).port)];
    const service = proxyService(backends);
    const { source, next } = sourceWhosePrimaryIs(service, 'b1');
    const { balancer, log, port } = await balancerFor(service);
    const first = await client(port, source);
    expect(await readLine(first)).toBe('b1');
    const second = await client(port, source);
    expect(await readLine(second)).toBe(next);
    expect(balancer.stats()[0].backends.find((b) => b.name === 'b1')?.current).toBe(1);
    second.end();
    expect((await log.waitForAccess(1))[0]).toMatchObject({ backend: next, retries: 0 });
  });

  it('beyond the service maxConnections a client waits in the queue and is served when a slot frees', async () => {
    const b1 = await named('b1');
    const { running, clock, log, port } = await serviceOnClock(proxyService([backend('b1', b1.port)], { maxConnections: 1 }));
    const first = await client(port);
    expect(await readLine(first)).toBe('b1'); // spliced: the idle sweeper's timer is set by now
    const waiting = clock.nextTimer(); // the next timer set is the second client's queue timeout
    const second = await client(port);
    const greeting = readLine(second);
    await waiting;
    expect(running.stats({ host: '127.0.0.1', port })).toMatchObject({ current: 1, queued: 1 });
    clock.advance(25);
    first.end();
    expect(await greeting).toBe('b1');
    second.end();
    const records = await log.waitForAccess(2);
    expect(records[1].queueMs).toBe(25);
    expect(records.map((r) => r.end)).toEqual(['client-close', 'client-close']);
  });

  it('refuses at once when the queue is full, and when timeouts.queue has passed without a free slot, not before', async () => {
    const b1 = await named('b1');
    const timeouts = { connect: 1000, idle: 60_000, queue: 200, drain: 1000 };
    // maxConnections 1 also bounds the queue to 1 waiter.
    const { running, clock, log, port } = await serviceOnClock(proxyService([backend('b1', b1.port)], { maxConnections: 1, timeouts }));
    const holder = await client(port);
    expect(await readLine(holder)).toBe('b1');
    const waiting = clock.nextTimer();
    const waiter = await client(port);
    const waiterClosed = peerClosed(waiter);
    await waiting; // the waiter is queued
    const refused = await client(port);
    await peerClosed(refused);
    expect((await log.waitForAccess(1))[0]).toMatchObject({ end: 'refused-queue-full', backend: null });
    clock.advance(199);
    expect(running.stats({ host: '127.0.0.1', port })).toMatchObject({ refused: 1, current: 1, queued: 1 });
    clock.advance(1);
    expect(running.stats({ host: '127.0.0.1', port })).toMatchObject({ refused: 2, current: 1, queued: 0 });
    await waiterClosed;
    const records = await log.waitForAccess(2);
    expect(records[1]).toMatchObject({ end: 'refused-queue-timeout', backend: null, queueMs: 200 });
  });
});

describe('access log', () => {
  it('writes one tcplog-like line per connection, at close, with every field', async () => {
    const b1 = await named('b1');
    const { log, port } = await balancerFor(proxyService([backend('b1', b1.port)], { name: 'pg' }));
    const socket = await client(port, '127.0.7.7');
    expect(await readLine(socket)).toBe('b1');
    expect(log.access()).toHaveLength(0); // nothing logged while the connection is open
    socket.end('ping\n');
    expect((await readAll(socket)).toString()).toBe('ping\n');
    const [record] = await log.waitForAccess(1);
    expect(record).toMatchObject({
      msg: 'connection',
      service: 'pg',
      client: expect.stringMatching(/^127\.0\.7\.7:\d+$/),
      backend: 'b1',
      backendAddress: `127.0.0.1:${b1.port}`,
      bytesUp: 5,
      bytesDown: 8,
      retries: 0,
      end: 'client-close',
    });
    for (const field of ['connectMs', 'durationMs', 'queueMs']) expect(record[field]).toBeGreaterThanOrEqual(0);
  });
});

describe('IPv6', () => {
  it('listens on [::1], keys an IPv6 client as the picker does, and logs bracketed addresses', async () => {
    const b1 = await named('b1');
    const b2 = await named('b2');
    const service = proxyService([backend('b1', b1.port), backend('b2', b2.port)], { listen: [{ host: '::1', port: 0 }] });
    const { log, port } = await balancerFor(service);
    const picker = createPicker('maglev', service.backends, { tableSize: service.tableSize, slotHash: slotHashOf(service) });
    const socket = await connectClient(port, undefined, '::1');
    cleanups.push(async () => socket.destroy());
    expect(await readLine(socket)).toBe(picker.pick(flowKey('::1'))?.name);
    socket.end();
    const [record] = await log.waitForAccess(1);
    expect(record.client).toMatch(/^\[::1\]:\d+$/);
  });
});

describe('start-up and shutdown', () => {
  it('a taken port is one LB_ERR_LISTEN error naming the service, its listen key and the address', async () => {
    const taken = await startServer();
    cleanups.push(() => taken.close());
    const service = proxyService([backend('b1', taken.port)], { listen: [{ host: '127.0.0.1', port: taken.port }] });
    await expect(startBalancer(configOf(service), { logger: captureLog().logger })).rejects.toMatchObject({
      code: 'LB_ERR_LISTEN',
      message: `services[0] (svc).listen: cannot listen on 127.0.0.1:${taken.port}: address already in use`,
    });
  });

  it('backend host names are resolved once at start; one that resolves nowhere is LB_ERR_RESOLVE', async () => {
    const b1 = await named('b1');
    const asked: string[] = [];
    const lookup = async (host: string): Promise<string> => {
      asked.push(host);
      if (host === 'db.test') return '127.0.0.1';
      throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    };
    const good = proxyService([{ name: 'b1', address: { host: 'db.test', port: b1.port }, weight: 1 }]);
    const log = captureLog();
    const balancer = await startBalancer(configOf(good), { logger: log.logger, lookup });
    cleanups.push(() => balancer.close(0));
    for (let i = 0; i < 3; i++) {
      const socket = await client(balancer.address('svc').port);
      expect(await readLine(socket)).toBe('b1');
      socket.destroy();
    }
    expect(asked).toEqual(['db.test']);
    const bad = proxyService([backend('b1', b1.port), { name: 'b2', address: { host: 'nowhere.test', port: 1 }, weight: 1 }]);
    await expect(startBalancer(configOf(bad), { logger: log.logger, lookup })).rejects.toMatchObject({
      code: 'LB_ERR_RESOLVE',
      message: 'services[0] (svc).backends[1] (b2): cannot resolve "nowhere.test" (ENOTFOUND)',
    });
  });

  it('several services on port 0 each get a port of their own, kept across a reload', async () => {
    const [b1, b2] = [await named('b1'), await named('b2')];
    const services = [{ ...proxyService([backend('b1', b1.port)]), name: 'one' }, { ...proxyService([backend('b2', b2.port)]), name: 'two' }];
    const balancer = await startBalancer({ services }, { logger: captureLog().logger });
    cleanups.push(() => balancer.close(0));
    const ports = [balancer.address('one').port, balancer.address('two').port];
    expect(ports[0]).not.toBe(ports[1]);
    await balancer.reload({ services });
    expect([balancer.address('one').port, balancer.address('two').port]).toEqual(ports);
    for (const [i, name] of ['b1', 'b2'].entries()) {
      const socket = await client(ports[i]);
      expect(await readLine(socket)).toBe(name);
    }
  });

  it('kernel services (mode: dsr) are left to the kernel writer: not proxied', async () => {
    const b1 = await named('b1');
    const log = captureLog();
    const dsr: DsrServiceConfig = {
      mode: 'dsr',
      name: 'web',
      vip: { host: '192.0.2.10', port: 80 },
      dscp: 10,
      hashKey: 'source-ip',
      hashSeed: 0,
      tableSize: 251,
      onDown: 'close',
      backends: [{ name: 'w1', address: { host: '10.0.0.2', port: 80 }, weight: 1 }],
    };
    const balancer = await startBalancer({ services: [dsr, proxyService([backend('b1', b1.port)])] }, { logger: log.logger });
    cleanups.push(() => balancer.close(0));
    expect(balancer.stats().map((service) => service.name)).toEqual(['svc']);
    expect(() => balancer.address('web')).toThrow(/no service "web"/);
  });

  it('close(drain) stops accepting, lets open connections finish, then ends the rest', async () => {
    const b1 = await named('b1');
    const log = captureLog();
    const balancer = await startBalancer(configOf(proxyService([backend('b1', b1.port)])), { logger: log.logger });
    const port = balancer.address('svc').port;
    const polite = await client(port);
    const stubborn = await client(port);
    expect(await readLine(polite)).toBe('b1');
    expect(await readLine(stubborn)).toBe('b1');
    // The drain deadline cuts the stubborn client with a reset, not a FIN: it must see ECONNRESET.
    const cut = new Promise<NodeJS.ErrnoException>((resolve) => stubborn.once('error', resolve));
    const closing = balancer.close(300);
    await expect(connectClient(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    polite.write('still served while draining\n');
    expect(await readLine(polite)).toBe('still served while draining');
    polite.end();
    await closing;
    expect((await cut).code).toBe('ECONNRESET');
    const ends = (await log.waitForAccess(2)).map((record) => record.end);
    expect(ends).toEqual(['client-close', 'shutdown']);
  });
});

describe('a balancer on an injected clock', () => {
  it('runs every service\'s idle timeout on the clock it is given', async () => {
    const server = await startServer();
    cleanups.push(() => server.close());
    const clock = new ManualClock();
    const log = captureLog();
    const service = proxyService([backend('b1', server.port)], { timeouts: { connect: 3000, idle: 1000, queue: 1000, drain: 1000 } });
    const balancer = await startBalancer(configOf(service), { logger: log.logger, clock });
    cleanups.push(() => balancer.close(0));
    const client = await connectClient(balancer.address('svc').port);
    client.write('ping');
    const backendSide = await server.nextConnection();
    await readBytes(backendSide, 4);
    clock.advance(999);
    expect(balancer.stats()[0].current).toBe(1);
    clock.advance(1);
    const [record] = await log.waitForAccess(1);
    expect(record).toMatchObject({ end: 'idle-timeout', durationMs: 1000 });
    client.destroy();
  });
});
