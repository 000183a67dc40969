/**
 * The pure parts of `workers: N`: the worker count, the stats sum over workers, the worker's
 * PrimaryVerdicts (what it sends, what it keeps), and the seam in the balancer: following the
 * primary, a balancer runs no health checks, sends its passive observations away and applies the verdicts
 * it is given — the same backend for the same client as the process that decided them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { workerCount } from '../src/runtime/settings.js';
import { PrimaryVerdicts } from '../src/cluster/link.js';
import { mergeListeners, mergeStats, noRejections, retire, retireListeners } from '../src/cluster/stats.js';
import type { WorkerMessage } from '../src/cluster/messages.js';
import { startBalancer, type Balancer, type ListenerStats, type ServiceStatusStats } from '../src/proxy/index.js';
import { ServiceState, type SharedStatus } from '../src/services/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog } from './helpers/log.js';
import { connectClient, freePort, peerClosed, readLine, startNamedServer, type TestServer } from './helpers/net.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('workerCount', () => {
  it('absent is 1, a number is itself, auto is the cores (at least 1)', () => {
    expect(workerCount(undefined, 8)).toBe(1);
    expect(workerCount(3, 8)).toBe(3);
    expect(workerCount('auto', 8)).toBe(8);
    expect(workerCount('auto', 0)).toBe(1);
  });
});

function row(name: string, counts: Partial<ServiceStatusStats>, backends: [string, number, number][]): ServiceStatusStats {
  return {
    name,
    listen: { host: '127.0.0.1', port: 0 },
    current: 0,
    queued: 0,
    total: 0,
    refused: 0,
    bytesUp: 0,
    bytesDown: 0,
    buffered: 0,
    rejected: noRejections(),
    localErrors: {},
    pausedRefused: 0,
    healthCheck: null,
    ...counts,
    backends: backends.map(([backendName, current, total]) => ({
      name: backendName,
      address: `127.0.0.1:${backendName.length}`,
      current,
      total,
      failures: 0,
      bytesUp: total * 10,
      bytesDown: total * 20,
      health: 'up',
      state: 'active',
      backup: false,
      slowStart: 1,
      reason: 'worker view',
      since: '',
      lastCheck: null,
    })),
  };
}

describe('mergeStats', () => {
  it('sums every counter by service and backend name, keeps the skeleton health, takes a reported listen port', () => {
    const skeleton = [row('svc', {}, [['b1', 0, 0], ['b2', 0, 0]])];
    skeleton[0].backends[1].health = 'down';
    skeleton[0].backends[1].reason = 'primary verdict';
    const w1 = [{ ...row('svc', { current: 1, total: 5, bytesUp: 50, bytesDown: 100, listen: { host: '127.0.0.1', port: 4242 } }, [['b1', 1, 5], ['gone', 3, 3]]) }];
    w1[0].rejected['refused-denied'] = 2;
    const w2 = [row('svc', { current: 2, total: 7, refused: 1, queued: 1 }, [['b1', 0, 4], ['b2', 2, 3]]), row('other', { total: 99 }, [])];
    const [merged] = mergeStats(skeleton, [w1, w2]);
    expect(merged).toMatchObject({ name: 'svc', current: 3, total: 12, refused: 1, queued: 1, bytesUp: 50, bytesDown: 100, listen: { port: 4242 } });
    expect(merged.rejected['refused-denied']).toBe(2);
    expect(merged.backends.map((b) => [b.name, b.current, b.total, b.bytesUp, b.health, b.reason])).toEqual([
      ['b1', 1, 9, 90, 'up', 'worker view'],
      ['b2', 2, 3, 30, 'down', 'primary verdict'],
    ]);
    expect(skeleton[0].total).toBe(0); // the skeleton is not modified
  });

  it('a retired report keeps its totals and drops its gauges, so a restarted worker does not lower the sums', () => {
    const skeleton = [row('svc', {}, [['b1', 0, 0]])];
    const dead = retire([row('svc', { current: 4, total: 10, buffered: 100 }, [['b1', 4, 10]])]);
    const fresh = [row('svc', { current: 1, total: 1 }, [['b1', 1, 1]])];
    const [merged] = mergeStats(skeleton, [dead, fresh]);
    expect(merged).toMatchObject({ current: 1, total: 11, buffered: 0 });
    expect(merged.backends[0]).toMatchObject({ current: 1, total: 11 });
  });
});

describe('mergeListeners', () => {
  const listener = (name: string, inspecting: number, counts: [ListenerStats['inspections'][number]['result'], ListenerStats['inspections'][number]['route'], number][]): ListenerStats => ({
    listener: name,
    owner: 'listeners[0]',
    listen: { host: '127.0.0.1', port: 8443 },
    inspecting,
    inspections: counts.map(([result, route, count]) => ({ result, route, count })),
  });

  it('sums clients being inspected and inspections by listener, result and route over the workers', () => {
    const w1 = [listener('127.0.0.1:8443', 1, [['sni', 'name', 5], ['timeout', 'none', 1]])];
    const w2 = [listener('127.0.0.1:8443', 2, [['sni', 'name', 3], ['not-tls', 'default', 2]])];
    expect(mergeListeners([], [w1, w2])).toEqual([
      listener('127.0.0.1:8443', 3, [['sni', 'name', 8], ['timeout', 'none', 1], ['not-tls', 'default', 2]]),
    ]);
  });

  it('a dead worker’s counts stay in the sums with no client being inspected; a listener only it had is left out', () => {
    const dead = retireListeners([], [listener('127.0.0.1:8443', 4, [['sni', 'name', 10]]), listener('127.0.0.1:9443', 1, [['sni', 'name', 7]])]);
    expect(dead.map((row) => row.inspecting)).toEqual([0, 0]);
    const merged = mergeListeners(dead, [[listener('127.0.0.1:8443', 1, [['sni', 'name', 1]])]]);
    expect(merged).toEqual([listener('127.0.0.1:8443', 1, [['sni', 'name', 11]])]);
  });
});

describe('PrimaryVerdicts', () => {
  it('sends every failure at once, a success only after a failure, and nothing on the healthy path', () => {
    const sent: WorkerMessage[] = [];
    const link = new PrimaryVerdicts((message) => sent.push(message));
    link.observe('svc', 'b1', true);
    link.observe('svc', 'b1', true);
    expect(sent).toEqual([]);
    link.observe('svc', 'b1', false);
    link.observe('svc', 'b1', false);
    link.observe('svc', 'b2', true);
    link.observe('svc', 'b1', true);
    link.observe('svc', 'b1', true);
    expect(sent).toEqual([
      { type: 'observe', service: 'svc', backend: 'b1', passed: false },
      { type: 'observe', service: 'svc', backend: 'b1', passed: false },
      { type: 'observe', service: 'svc', backend: 'b1', passed: true },
    ]);
  });

  it('keeps the latest full snapshot and applies it to the service states that follow it, until they stop', async () => {
    const link = new PrimaryVerdicts(() => undefined);
    const config = proxyService([backend('b1', 1)]);
    const addresses = config.backends.map(({ name, address }) => ({ name, address }));
    const state = new ServiceState('svc', { verdicts: link.sources });
    state.update(config, addresses);
    const status: SharedStatus = { service: 'svc', backend: 'b1', health: 'down', admin: 'draining', reason: 'r', since: 's', usableForMs: null };
    link.apply([status, { ...status, service: 'other', admin: 'maintenance' }]);
    expect(link.current('svc', 'b1')).toEqual(status);
    expect(state.statuses.get('b1')).toMatchObject({ health: 'down', admin: 'draining', reason: 'r' });
    link.apply([]);
    expect(link.current('svc', 'b1')).toBeUndefined();
    await state.stop();
    link.apply([{ ...status, health: 'up', admin: 'active' }]);
    expect(state.statuses.get('b1')).toMatchObject({ health: 'down', admin: 'draining' });
    // A new state for the service starts from the snapshot the link holds.
    const fresh = new ServiceState('svc', { verdicts: link.sources });
    fresh.update(config, addresses);
    expect(fresh.statuses.get('b1')).toMatchObject({ health: 'up', admin: 'active' });
  });
});

describe('a balancer that follows the primary', () => {
  async function named(name: string): Promise<TestServer> {
    const server = await startNamedServer(name);
    cleanups.push(() => server.close());
    return server;
  }

  it('runs no checks, forwards observations, and routes by the verdicts it is sent', async () => {
    const b1 = await named('b1');
    const dead = await freePort();
    const sent: WorkerMessage[] = [];
    const link = new PrimaryVerdicts((message) => sent.push(message));
    const down = (backendName: string): SharedStatus => ({ service: 'svc', backend: backendName, health: 'down', admin: 'active', reason: 'primary says so', since: 'then', usableForMs: null });
    link.apply([down('b2')]); // known before start: b2 starts down
    const log = captureLog();
    // A health check every 50 ms against a dead port: following the primary it must never run.
    const service = proxyService([backend('b1', b1.port), backend('b2', dead)], {
      balance: 'roundrobin',
      hashKey: 'source-ip',
      healthCheck: { type: 'tcp', interval: 50, timeout: 50, rise: 1, fall: 1, initial: 'up' },
    });
    const balancer: Balancer = await startBalancer(configOf(service), { logger: log.logger, verdicts: link.sources });
    cleanups.push(() => balancer.close(0));
    const port = balancer.address('svc').port;
    for (let i = 0; i < 4; i++) {
      const socket = await connectClient(port);
      expect(await readLine(socket)).toBe('b1');
      socket.destroy();
    }
    expect(balancer.stats()[0].backends[1]).toMatchObject({ health: 'down', reason: 'primary says so', since: 'then' });

    // The primary says b2 is up and b1 in maintenance: every new client goes to b2, whose connect fails.
    // A follower logs what it applies at debug only (the primary logged the change): wait on the event.
    const changed = new Promise<void>((resolve) => balancer.events.on('state', (change) => change.backend === 'b1' && resolve()));
    link.apply([{ ...down('b1'), health: 'up', admin: 'maintenance' }, { ...down('b2'), health: 'up' }]);
    await changed;
    const socket = await connectClient(port);
    await peerClosed(socket);
    socket.destroy();
    const failed = await log.waitFor((record) => record.msg === 'connection' && record.end === 'connect-failed');
    expect(failed).toMatchObject({ backend: 'b2' });
    await log.waitForAccess(5);
    expect(log.access().filter((record) => record.backend === 'b1')).toHaveLength(4);
    expect(sent.filter((message) => message.type === 'observe')).toContainEqual({ type: 'observe', service: 'svc', backend: 'b2', passed: false });
    expect(log.records.filter((record) => record.msg === 'backend health changed' && record.reason !== 'primary says so')).toEqual([]);
    expect(balancer.stats()[0].backends.map((b) => b.lastCheck)).toEqual([null, null]);
  });
});
