/**
 * The health gate in front of the chooser (src/services/gate.ts), driven through a real balancer:
 * admin states, Maglev affinity (a drained backend's clients go to the picker's next candidate —
 * checked against the hashing core as an oracle — and nobody else moves), backups only when no
 * primary is usable, slow start holding back a backend that just came back, onDown close vs keep,
 * and a reload keeping the health of backends that stay.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { admissionDraw, slowStartFraction } from '../src/services/index.js';
import { createPicker } from '../src/hashing/index.js';
import { flowKey } from '../src/hashing/keys.js';
import { slotHashOf } from '../src/services/index.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import type { HealthChange } from '../src/services/index.js';
import type { BackendConfig, ProxyServiceConfig } from '../src/config/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog } from './helpers/log.js';
import { closed, connectClient, readLine, startNamedServer, type TestServer } from './helpers/net.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(names: string[], overrides: Partial<ProxyServiceConfig> = {}, extra: (name: string) => Partial<BackendConfig> = () => ({})) {
  const servers: TestServer[] = await Promise.all(names.map((name) => startNamedServer(name)));
  const service = proxyService(
    names.map((name, i) => backend(name, servers[i].port, extra(name))),
    { name: 'svc', tableSize: 251, ...overrides },
  );
  const log = captureLog();
  const balancer = await startBalancer(configOf(service), { logger: log.logger });
  cleanups.push(async () => {
    await balancer.close(0);
    await Promise.all(servers.map((server) => server.close()));
  });
  return { servers, balancer, service, log };
}

async function ask(balancer: Balancer, source: string): Promise<string> {
  const socket = await connectClient(balancer.address('svc').port, source);
  const name = await readLine(socket);
  socket.destroy();
  return name;
}

const SOURCES = Array.from({ length: 40 }, (_, i) => `127.6.0.${i + 1}`);

function healthEvent(balancer: Balancer, backendName: string, health: 'up' | 'down'): Promise<HealthChange> {
  return new Promise((resolve) => {
    balancer.events.on('health', (change) => {
      if (change.backend === backendName && change.health === health) resolve(change);
    });
  });
}

describe('admin states and Maglev affinity', () => {
  it('a drained backend gets no new clients; its clients go to their next candidate (oracle: pick(key, 1)); nobody else moves', async () => {
    const { balancer, service } = await setup(['a', 'b', 'c', 'd']);
    const before = new Map<string, string>();
    for (const source of SOURCES) before.set(source, await ask(balancer, source));
    const victim = 'b';
    expect([...before.values()]).toContain(victim);
    balancer.setState('svc', victim, 'draining');
    const picker = createPicker('maglev', service.backends, { tableSize: service.tableSize, slotHash: slotHashOf(service) });
    for (const source of SOURCES) {
      const now = await ask(balancer, source);
      if (before.get(source) === victim) expect(now).toBe(picker.pick(flowKey(source), 1)?.name);
      else expect(now).toBe(before.get(source));
    }
    balancer.setState('svc', victim, 'active');
    for (const source of SOURCES) expect(await ask(balancer, source)).toBe(before.get(source));
  });

  it('backups take traffic only when no primary is usable', async () => {
    const { balancer } = await setup(['p1', 'p2', 'spare'], {}, (name) => (name === 'spare' ? { backup: true } : {}));
    const seen = async () => new Set(await Promise.all(SOURCES.slice(0, 20).map((source) => ask(balancer, source))));
    expect(await seen()).toEqual(new Set(['p1', 'p2']));
    balancer.setState('svc', 'p1', 'maintenance');
    expect(await seen()).toEqual(new Set(['p2']));
    balancer.setState('svc', 'p2', 'draining');
    expect(await seen()).toEqual(new Set(['spare']));
    balancer.setState('svc', 'p2', 'active');
    expect(await seen()).toEqual(new Set(['p2']));
    expect(balancer.stats()[0].backends.map((row) => [row.name, row.backup, row.state])).toEqual([
      ['p1', false, 'maintenance'],
      ['p2', false, 'active'],
      ['spare', true, 'active'],
    ]);
  });

  it('slow start: a backend enabled again takes back its clients gradually, not at once', async () => {
    const { balancer } = await setup(['a', 'b', 'c'], {}, (name) => (name === 'a' ? { slowStart: 3_600_000 } : {}));
    const owned = [];
    for (const source of SOURCES) if ((await ask(balancer, source)) === 'a') owned.push(source);
    expect(owned.length).toBeGreaterThan(0);
    balancer.setState('svc', 'a', 'maintenance');
    balancer.setState('svc', 'a', 'active');
    // One hour of ramp has barely begun: its share is ~0, so its clients still go elsewhere.
    expect(balancer.stats()[0].backends[0].slowStart).toBeLessThan(0.001);
    for (const source of owned) expect(await ask(balancer, source)).not.toBe('a');
  });

  it('slow-start admission: the admitted share follows the ramp; a flow\'s draw is fixed by its key (fast-check, seed 42)', () => {
    const keys = Array.from({ length: 20_000 }, (_, i) => flowKey(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`));
    for (const fraction of [0.1, 0.3, 0.5, 0.9]) {
      const share = keys.filter((key) => admissionDraw(key, 'pg2') < fraction).length / keys.length;
      expect(Math.abs(share - fraction)).toBeLessThan(0.02);
    }
    fc.assert(
      // A flow's draw is a pure function of its key (an equal copy draws the same), in [0, 1): with
      // admission `draw < fraction`, a flow admitted once stays admitted as the fraction grows.
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 18 }), (key) => {
        const draw = admissionDraw(key, 'pg2');
        expect(draw >= 0 && draw < 1).toBe(true);
        expect(admissionDraw(Uint8Array.from(key), 'pg2')).toBe(draw);
      }),
      { seed: 42, numRuns: 500 },
    );
  });

  it('roundrobin and leastconn are rebuilt over usable backends: a drained one gets nothing, the others share', async () => {
    for (const balance of ['roundrobin', 'leastconn'] as const) {
      const { balancer } = await setup(['a', 'b', 'c'], { balance });
      balancer.setState('svc', 'b', 'draining');
      const seen = [];
      for (let i = 0; i < 12; i++) seen.push(await ask(balancer, '127.0.0.1'));
      expect(new Set(seen)).toEqual(new Set(['a', 'c']));
      await cleanups.pop()?.();
    }
  });

  it('slowStartFraction ramps linearly from 0 to 1 over slowStart', () => {
    const ramp = { slowStartMs: 1000, rampStart: 5000 };
    expect([4000, 5000, 5250, 5500, 6000, 9000].map((now) => slowStartFraction(ramp, now))).toEqual([0, 0, 0.25, 0.5, 1, 1]);
    expect(slowStartFraction({ slowStartMs: 0, rampStart: 5000 }, 5000)).toBe(1);
    expect(slowStartFraction({ slowStartMs: 1000, rampStart: -Infinity }, 0)).toBe(1);
  });
});

describe('health: onDown and reloads', () => {
  const CHECK = { type: 'tcp' as const, interval: 50, timeout: 50, rise: 1, fall: 1, initial: 'fully-up' as const };

  it('onDown: close ends the established connections of a backend that goes down; keep leaves them', async () => {
    for (const onDown of ['close', 'keep'] as const) {
      const { balancer, servers, log } = await setup(['x'], { healthCheck: CHECK, onDown });
      const client = await connectClient(balancer.address('svc').port, '127.6.1.1');
      expect(await readLine(client)).toBe('x');
      const down = healthEvent(balancer, 'x', 'down');
      // Stop accepting; the established connection stays open on the server side.
      servers[0].server.close();
      await down;
      if (onDown === 'close') {
        // The balancer cuts the flow: the client is reset, not sent a FIN.
        client.resume();
        expect((await closed(client))?.code).toBe('ECONNRESET');
        expect((await log.waitForAccess(1))[0]).toMatchObject({ backend: 'x', end: 'backend-down' });
      } else {
        client.write('alive\n');
        expect(await readLine(client)).toBe('alive');
        client.destroy();
      }
    }
  });

  it('a reload keeps the health of backends that stay', async () => {
    const { balancer, servers, service } = await setup(['x', 'y'], { healthCheck: CHECK });
    const down = healthEvent(balancer, 'x', 'down');
    servers[0].server.close();
    await down;
    const extra = await startNamedServer('z');
    cleanups.push(() => extra.close());
    await balancer.reload(configOf({ ...service, backends: [...service.backends, backend('z', extra.port)] }));
    const rows = balancer.stats()[0].backends;
    expect(rows.map((row) => [row.name, row.health])).toEqual([
      ['x', 'down'],
      ['y', 'up'],
      ['z', 'up'],
    ]);
  });
});
