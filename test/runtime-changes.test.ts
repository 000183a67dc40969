/**
 * Runtime changes of a service's backends (weight, add, remove) against a real balancer: a runtime
 * change and a file change with the same result build the very same table (compared slot for
 * slot); the answer names exactly the slots that moved; a reload replaces the overlay; every
 * refusal is typed, and the admin API and the CLI answer with the status and exit code it means.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminServer } from '../src/admin/index.js';
import type { BackendConfig, ProxyServiceConfig } from '../src/config/index.js';
import { BackendExistsError, RuntimeChangeError, UnknownBackendError, UnknownServiceError } from '../src/errors.js';
import { diffMaglevTables, type MaglevTable } from '../src/hashing/index.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { runCli } from './helpers/child.js';
import { captureLog } from './helpers/log.js';
import { startNamedServer, type TestServer } from './helpers/net.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

let servers: TestServer[] = [];
beforeAll(async () => {
  servers = await Promise.all(['b1', 'b2', 'b3', 'b4'].map((name) => startNamedServer(name)));
});
afterAll(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

const named = (count: number): BackendConfig[] => servers.slice(0, count).map((server, i) => backend(`b${i + 1}`, server.port));

async function start(service: ProxyServiceConfig): Promise<Balancer> {
  const balancer = await startBalancer(configOf(service), { logger: captureLog().logger });
  cleanups.push(() => balancer.close(0));
  return balancer;
}

function tableOf(balancer: Balancer): MaglevTable {
  const table = balancer.plan('svc').chooser.table;
  if (table === undefined) throw new Error('no Maglev table');
  return table;
}

/** Slot owners by name: what two tables must agree on. */
const owners = (table: MaglevTable): string[] => Array.from(table.slots, (index) => table.backends[index].name);

describe('a runtime change builds the table a file change builds', () => {
  const cases: { label: string; change: Parameters<Balancer['changeBackends']>[1]; file: () => BackendConfig[] }[] = [
    { label: 'add b4', change: { kind: 'add', backend: backend('b4', 0) }, file: () => [...named(3), backend('b4', 0)] },
    { label: 'weight b2 = 3', change: { kind: 'weight', backend: 'b2', weight: 3 }, file: () => named(3).map((each) => (each.name === 'b2' ? { ...each, weight: 3 } : each)) },
    { label: 'remove b1', change: { kind: 'remove', backend: 'b1' }, file: () => named(3).slice(1) },
  ];
  for (const { label, change, file } of cases) {
    it(`${label}: same slots, and the answer is exactly the diff`, async () => {
      const tableSize = 4099;
      const running = await start(proxyService(named(3), { tableSize }));
      const before = tableOf(running);
      const result = await running.changeBackends('svc', change.kind === 'add' ? { kind: 'add', backend: { ...change.backend, address: { host: '127.0.0.1', port: servers[3].port } } } : change);
      const fromFile = await start(proxyService(file().map((each) => (each.name === 'b4' ? backend('b4', servers[3].port) : each)), { tableSize, listen: [{ host: '127.0.0.1', port: 0 }] }));
      expect(owners(tableOf(running))).toEqual(owners(tableOf(fromFile)));
      const diff = diffMaglevTables(before, tableOf(running));
      expect(result.moves).toMatchObject({ balance: 'maglev', unit: 'slots', total: tableSize, moved: diff.length });
      for (const row of result.moves.backends) {
        expect(row.gained, row.name).toBe(diff.filter((slot) => slot.to === row.name).length);
        expect(row.lost, row.name).toBe(diff.filter((slot) => slot.from === row.name).length);
      }
      // Maglev's near-minimal disruption (NSDI'16 §3.4: a few slots also move between the others).
      if (change.kind === 'add') expect(diff.filter((slot) => slot.to === 'b4').length / diff.length).toBeGreaterThan(0.9);
      if (change.kind === 'remove') expect(diff.filter((slot) => slot.from === 'b1').length / diff.length).toBeGreaterThan(0.9);
    });
  }

  it('a reload replaces the overlay: the file\'s table again, and /stats shows the overlay until then', async () => {
    const service = proxyService(named(3), { tableSize: 4099 });
    const balancer = await start(service);
    const original = owners(tableOf(balancer));
    await balancer.changeBackends('svc', { kind: 'weight', backend: 'b3', weight: 5 });
    await balancer.changeBackends('svc', { kind: 'add', backend: backend('b4', servers[3].port) });
    await balancer.changeBackends('svc', { kind: 'remove', backend: 'b1' });
    expect(balancer.stats()[0]?.runtime).toEqual({ added: ['b4'], removed: ['b1'], weights: { b3: 5 } });
    expect(balancer.stats()[0]?.backends.map((row) => row.name)).toEqual(['b2', 'b3', 'b4']);
    await balancer.reload(configOf(service));
    expect(owners(tableOf(balancer))).toEqual(original);
    expect(balancer.stats()[0]?.runtime).toBeUndefined();
  });

  it('ring: moves measured over sampled keys; roundrobin: none move, weights reported', async () => {
    const ring = await start(proxyService(named(3), { balance: 'ring' }));
    const added = await ring.changeBackends('svc', { kind: 'add', backend: backend('b4', servers[3].port) });
    expect(added.moves).toMatchObject({ balance: 'ring', unit: 'keys', total: 65_536 });
    expect(added.moves.share).toBeGreaterThan(0.1);
    expect(added.moves.share).toBeLessThan(0.45);
    expect(added.moves.backends.find((row) => row.name === 'b4')).toMatchObject({ before: 0, lost: 0, gained: added.moves.moved });
    const rr = await start(proxyService(named(3), { balance: 'roundrobin', listen: [{ host: '127.0.0.1', port: 0 }] }));
    const weighted = await rr.changeBackends('svc', { kind: 'weight', backend: 'b1', weight: 4 });
    expect(weighted.moves).toMatchObject({ unit: 'weight', moved: 0, total: 6 });
    expect(weighted.moves.backends[0]).toEqual({ name: 'b1', before: 1, after: 4, gained: 3, lost: 0 });
  });

  it('a backend added under a health check starts in the check\'s initial state; the others keep theirs', async () => {
    const balancer = await start(proxyService(named(2), { healthCheck: { type: 'tcp', interval: 60_000, timeout: 1000, rise: 2, fall: 3, initial: 'down' } }));
    await balancer.changeBackends('svc', { kind: 'add', backend: backend('b4', servers[3].port) });
    const rows = balancer.stats()[0].backends;
    expect(rows.find((row) => row.name === 'b4')).toMatchObject({ health: 'down', reason: 'initial state down' });
  });
});

describe('refusals are typed', () => {
  it.each([
    ['an unknown service', (b: Balancer) => b.changeBackends('nope', { kind: 'remove', backend: 'b1' }), UnknownServiceError],
    ['an unknown backend', (b: Balancer) => b.changeBackends('svc', { kind: 'weight', backend: 'zz', weight: 2 }), UnknownBackendError],
    ['a name the service has', (b: Balancer) => b.changeBackends('svc', { kind: 'add', backend: backend('b2', 1) }), BackendExistsError],
    ['a weight out of range', (b: Balancer) => b.changeBackends('svc', { kind: 'weight', backend: 'b1', weight: 0 }), RuntimeChangeError],
    ['a name with a colon', (b: Balancer) => b.changeBackends('svc', { kind: 'add', backend: backend('a:b', 1) }), RuntimeChangeError],
  ])('%s', async (_label, run, type) => {
    const balancer = await start(proxyService(named(2)));
    const before = owners(tableOf(balancer));
    await expect(run(balancer)).rejects.toBeInstanceOf(type);
    expect(owners(tableOf(balancer))).toEqual(before);
  });

  it('the last primary cannot be removed; a backend that does not fit the table cannot be added', async () => {
    const balancer = await start(proxyService([...named(1), backend('spare', servers[1].port, { backup: true })], { tableSize: 2 }));
    await expect(balancer.changeBackends('svc', { kind: 'remove', backend: 'b1' })).rejects.toMatchObject({ code: 'LB_ERR_RUNTIME_CHANGE', reason: 'no-primary', backend: 'b1' });
    await expect(balancer.changeBackends('svc', { kind: 'add', backend: backend('b9', 1) })).rejects.toMatchObject({ code: 'LB_ERR_RUNTIME_CHANGE', reason: 'table-too-small' });
  });
});

describe('admin API and CLI', () => {
  const TOKEN = 'runtime-token-0123456789';
  let balancer: Balancer;
  let admin: AdminServer;
  let base = '';
  beforeAll(async () => {
    balancer = await startBalancer(configOf(proxyService(named(3), { tableSize: 4099 })), { logger: captureLog().logger });
    admin = await startAdmin(balancer, { listen: { host: '127.0.0.1', port: 0 }, token: TOKEN });
    base = `http://127.0.0.1:${admin.address().port}`;
  });
  afterAll(async () => {
    await admin?.close();
    await balancer?.close(0);
  });

  const call = async (method: string, path: string, body?: unknown, token = TOKEN): Promise<{ status: number; body: { error?: { code: string; message: string } } & Record<string, unknown> }> => {
    const response = await fetch(base + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: response.status, body: (await response.json()) as { error?: { code: string; message: string } } };
  };

  it('answers each change with what moved; refusals with their status', async () => {
    expect((await call('POST', '/services/svc/backends/b1/weight', { weight: 2 }, 'wrong-token-0123456789')).status).toBe(401);
    const weighted = await call('POST', '/services/svc/backends/b1/weight', { weight: 2 });
    expect(weighted.status).toBe(200);
    expect(weighted.body).toMatchObject({ service: 'svc', change: 'weight', backend: 'b1', backends: 3, moves: { unit: 'slots', total: 4099 } });
    const added = await call('POST', '/services/svc/backends', { name: 'b4', address: `127.0.0.1:${servers[3].port}`, weight: 1 });
    expect(added.body).toMatchObject({ change: 'add', backends: 4 });
    expect((await call('POST', '/services/svc/backends', { name: 'b4', address: '127.0.0.1:1' })).status).toBe(409);
    expect((await call('POST', '/services/svc/backends', { name: 'b5' })).status).toBe(400);
    expect((await call('POST', '/services/svc/backends/b1/weight', { weight: -1 })).status).toBe(400);
    expect((await call('POST', '/services/svc/backends/b1/weight', { weight: 2, extra: 1 })).status).toBe(400);
    expect((await call('DELETE', '/services/svc/backends/zz')).status).toBe(404);
    expect((await call('DELETE', '/services/nope/backends/b1')).status).toBe(404);
    expect((await call('GET', '/services/svc/backends/b1')).status).toBe(405);
    const removed = await call('DELETE', '/services/svc/backends/b4');
    expect(removed.body).toMatchObject({ change: 'remove', backend: 'b4', backends: 3 });
  });

  it('l4lb set-weight / add-backend / remove-backend print what moved; a bad name exits 2', async () => {
    const options = ['--admin', base.replace('http://', ''), '--token', TOKEN];
    const added = await runCli(['add-backend', 'svc', 'b9', `127.0.0.1:${servers[3].port}`, '--weight', '2', ...options]);
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(/^svc\/b9 added: \d+ of 4099 slots moved \(\d+\.\d%\)\n/);
    expect(added.stdout).toMatch(/\n {2}b9: 0 -> \d+ \(\+\d+\)\n/);
    const weighted = await runCli(['set-weight', 'svc', 'b9', '1', ...options]);
    expect(weighted.stdout).toMatch(/^svc\/b9 weight set: \d+ of 4099 slots moved/);
    const status = await runCli(['status', ...options]);
    expect(status.stdout).toContain('  runtime changes until the next reload: added b9; b1 weight 2\n');
    const removed = await runCli(['remove-backend', 'svc', 'b9', ...options]);
    expect(removed.stdout).toMatch(/^svc\/b9 removed: /);
    const unknown = await runCli(['remove-backend', 'svc', 'b9', ...options]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^l4lb: service "svc" has no backend "b9" \(backends: b1, b2, b3\)\n$/);
  }, 60_000);
});
