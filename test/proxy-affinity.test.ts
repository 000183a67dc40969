/**
 * Placement through a running balancer: every client source address reaches the backend the
 * hashing core predicts (maglev with murmur3 and with jhash, ring, rendezvous), a reload that
 * removes a backend moves exactly the clients the new picker says and leaves open connections and
 * the listener alone, and the stateful strategies (roundrobin, leastconn, bounded loads) spread
 * as documented.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { BackendConfig, ProxyServiceConfig } from '../src/config/index.js';
import { createPicker, type Algorithm } from '../src/hashing/index.js';
import { flowKey } from '../src/hashing/keys.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import { slotHashOf } from '../src/services/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog, type CapturedLog } from './helpers/log.js';
import { connectClient, freePort, readLine, startNamedServer, startServer, type TestServer } from './helpers/net.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function namedBackends(count: number): Promise<BackendConfig[]> {
  const backends: BackendConfig[] = [];
  for (let i = 1; i <= count; i++) {
    const server: TestServer = await startNamedServer(`b${i}`);
    cleanups.push(() => server.close());
    backends.push(backend(`b${i}`, server.port));
  }
  return backends;
}

async function start(service: ProxyServiceConfig, log: CapturedLog = captureLog()): Promise<Balancer> {
  const balancer = await startBalancer(configOf(service), { logger: log.logger });
  cleanups.push(() => balancer.close(0));
  return balancer;
}

/** The backend the hashing core says `source` maps to under `service`. */
function predictor(service: ProxyServiceConfig): (source: string) => string | undefined {
  const picker = createPicker(service.balance as Algorithm, service.backends, { tableSize: service.tableSize, slotHash: slotHashOf(service) });
  return (source) => picker.pick(flowKey(source))?.name;
}

/** Connects from `source`, reads the greeting (the backend's name), and leaves the connection open if asked. */
async function greetingFrom(port: number, source: string, keep = false): Promise<{ name: string; socket: Socket }> {
  const socket = await connectClient(port, source);
  const name = await readLine(socket);
  if (keep) cleanups.push(async () => socket.destroy());
  else socket.destroy();
  return { name, socket };
}

const SOURCES = Array.from({ length: 60 }, (_, i) => `127.20.${1 + (i >> 4)}.${10 + (i & 15) * 7}`);

describe('affinity', () => {
  const cases: { label: string; overrides: Partial<ProxyServiceConfig> }[] = [
    { label: 'maglev, murmur3', overrides: { balance: 'maglev' } },
    { label: 'maglev, jhash seed 7', overrides: { balance: 'maglev', flowHash: 'jhash', hashSeed: 7, tableSize: 4099 } },
    { label: 'ring', overrides: { balance: 'ring' } },
    { label: 'rendezvous', overrides: { balance: 'rendezvous' } },
  ];
  for (const { label, overrides } of cases) {
    it(`${label}: each source always reaches the backend the picker predicts`, async () => {
      const service = proxyService(await namedBackends(3), overrides);
      const port = (await start(service)).address('svc').port;
      const predict = predictor(service);
      const seen = new Set<string>();
      for (const source of SOURCES) {
        const first = await greetingFrom(port, source);
        const second = await greetingFrom(port, source);
        expect({ source, name: first.name }).toEqual({ source, name: predict(source) });
        expect(second.name).toBe(first.name);
        seen.add(first.name);
      }
      expect(seen.size).toBe(3); // the sources do spread
    });
  }
});

describe('reload', () => {
  it('removing a backend moves exactly the clients the new picker says; open connections and the listener stay', async () => {
    const backends = await namedBackends(4);
    const before = proxyService(backends);
    const balancer = await start(before);
    const port = balancer.address('svc').port;
    const predictBefore = predictor(before);
    const onB4 = SOURCES.find((source) => predictBefore(source) === 'b4') as string;
    const open = await greetingFrom(port, onB4, true);
    expect(open.name).toBe('b4');

    const placedBefore = new Map<string, string>();
    for (const source of SOURCES) placedBefore.set(source, (await greetingFrom(port, source)).name);

    const after = proxyService(backends.slice(0, 3));
    // Connections arriving during the swap are all served, by one plan or the other.
    const during = Promise.all(SOURCES.slice(0, 20).map((source) => greetingFrom(port, source).then((g) => g.name)));
    await balancer.reload(configOf(after));
    for (const name of await during) expect(['b1', 'b2', 'b3', 'b4']).toContain(name);
    expect(balancer.address('svc').port).toBe(port);

    const predictAfter = predictor(after);
    let moved = 0;
    for (const source of SOURCES) {
      const now = (await greetingFrom(port, source)).name;
      expect({ source, name: now }).toEqual({ source, name: predictAfter(source) });
      if (now !== placedBefore.get(source)) moved++;
    }
    const predictedMoves = SOURCES.filter((source) => predictAfter(source) !== predictBefore(source)).length;
    expect(moved).toBe(predictedMoves);
    expect(moved).toBeGreaterThanOrEqual(SOURCES.filter((source) => predictBefore(source) === 'b4').length);

    // The connection placed on b4 before the reload still works.
    open.socket.write('still here\n');
    expect(await readLine(open.socket)).toBe('still here');
    expect(balancer.stats()[0].backends.map((b) => b.name)).toEqual(['b1', 'b2', 'b3']);
  });

  it('a changed listen endpoint opens the new one and closes the old one gracefully', async () => {
    const backends = await namedBackends(1);
    const balancer = await start(proxyService(backends));
    const oldPort = balancer.address('svc').port;
    const open = await greetingFrom(oldPort, '127.0.0.1', true);
    const newPort = await freePort();
    await balancer.reload(configOf(proxyService(backends, { listen: [{ host: '127.0.0.1', port: newPort }] })));
    expect(balancer.address('svc').port).toBe(newPort);
    expect((await greetingFrom(newPort, '127.0.0.1')).name).toBe('b1');
    await expect(connectClient(oldPort)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    open.socket.write('old listener gone, connection kept\n');
    expect(await readLine(open.socket)).toBe('old listener gone, connection kept');
  });

  it('a reload that cannot bind keeps the running configuration', async () => {
    const backends = await namedBackends(2);
    const balancer = await start(proxyService(backends));
    const port = balancer.address('svc').port;
    const taken = await startServer();
    cleanups.push(() => taken.close());
    const bad = configOf(proxyService(backends.slice(0, 1)), { ...proxyService(backends), name: 'other', listen: [{ host: '127.0.0.1', port: taken.port }] });
    await expect(balancer.reload(bad)).rejects.toMatchObject({ code: 'LB_ERR_LISTEN' });
    expect(balancer.stats().map((s) => s.backends.length)).toEqual([2]);
    expect(['b1', 'b2']).toContain((await greetingFrom(port, '127.0.0.1')).name);
  });
});

describe('stateful strategies', () => {
  it('roundrobin takes the backends in turn, by weight', async () => {
    const backends = await namedBackends(3);
    const port = (await start(proxyService(backends, { balance: 'roundrobin' }))).address('svc').port;
    const names: string[] = [];
    for (let i = 0; i < 6; i++) names.push((await greetingFrom(port, '127.0.0.1')).name);
    expect(names).toEqual(['b1', 'b2', 'b3', 'b1', 'b2', 'b3']);

    const weighted = [{ ...backends[0], weight: 2 }, backends[1]];
    const port2 = (await start({ ...proxyService(weighted, { balance: 'roundrobin' }), name: 'weighted' })).address('weighted').port;
    const counts = new Map<string, number>();
    for (let i = 0; i < 6; i++) {
      const name = (await greetingFrom(port2, '127.0.0.1')).name;
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    expect(Object.fromEntries(counts)).toEqual({ b1: 4, b2: 2 });
  });

  it('leastconn sends a new connection to the backend with the fewest open ones', async () => {
    const backends = await namedBackends(3);
    const log = captureLog();
    const balancer = await start(proxyService(backends, { balance: 'leastconn' }), log);
    const port = balancer.address('svc').port;
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await greetingFrom(port, '127.0.0.1', true));
    expect(held.map((h) => h.name).sort()).toEqual(['b1', 'b2', 'b3']);
    (held.find((h) => h.name === 'b2') as { socket: Socket }).socket.destroy();
    await log.waitForAccess(1); // the balancer has seen that connection end: its slot is free
    expect(balancer.stats()[0].backends.find((b) => b.name === 'b2')?.current).toBe(0);
    expect((await greetingFrom(port, '127.0.0.1', true)).name).toBe('b2');
    // All level at one connection each: the next three fill one each, whatever the tie-breaks.
    const next = [];
    for (let i = 0; i < 3; i++) next.push((await greetingFrom(port, '127.0.0.1', true)).name);
    expect(next.sort()).toEqual(['b1', 'b2', 'b3']);
  });

  it('bounded loads (balanceFactor) caps a backend even when every client hashes to it', async () => {
    const backends = await namedBackends(3);
    const balancer = await start(proxyService(backends, { balanceFactor: 1.25 }));
    const port = balancer.address('svc').port;
    const counts = new Map<string, number>();
    for (let i = 0; i < 12; i++) {
      const { name } = await greetingFrom(port, '127.0.0.1', true); // one source: one primary
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    for (const count of counts.values()) expect(count).toBeLessThanOrEqual(Math.ceil((1.25 * 12) / 3));
    expect(counts.size).toBe(3);
  });
});
