/**
 * l4lb's own shortages (src/proxy/local-errors.ts): a backend connect failing with EMFILE & co is
 * not the backend's failure — it ends the connection with `local-error`, is counted per code and
 * leaves the backend's health alone — while a real backend failure (ECONNREFUSED) still marks
 * it down. Also: every access line has the client address, and cut flows reset the client.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type * as net from 'node:net';
import { createMetrics } from '../src/observability/metrics.js';
import { BurstGate, isLocalError, LOCAL_ERROR_CODES } from '../src/proxy/local-errors.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import type { ProxyService } from '../src/proxy/service.js';
import type { ProxyServiceConfig } from '../src/config/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog } from './helpers/log.js';
import { closed, connectClient, peerClosed, readLine, startNamedServer, startServer, waitUntil, type TestServer } from './helpers/net.js';

/** The next backend connect made by l4lb fails with this code (one shot), as the kernel would report it. */
const injected: { code: string | undefined; port: number } = { code: undefined, port: -1 };

vi.mock('node:net', async (importOriginal) => {
  const actual = await importOriginal<typeof net>();
  const connect = (...args: Parameters<typeof actual.connect>): net.Socket => {
    const code = injected.code;
    const target = typeof args[0] === 'object' ? (args[0] as { port?: unknown }).port : undefined;
    if (code === undefined || Number(target) !== injected.port) return actual.connect(...args);
    injected.code = undefined;
    const socket = new actual.Socket();
    process.nextTick(() => socket.destroy(Object.assign(new Error(`connect ${code}`), { code })));
    return socket;
  };
  return { ...actual, connect, createConnection: connect };
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  injected.code = undefined;
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(overrides: Partial<ProxyServiceConfig> = {}): Promise<{ balancer: Balancer; server: TestServer; log: ReturnType<typeof captureLog> }> {
  const server = await startNamedServer('x');
  const log = captureLog();
  const balancer = await startBalancer(configOf(proxyService([backend('x', server.port)], { name: 'svc', ...overrides })), { logger: log.logger });
  cleanups.push(async () => {
    await balancer.close(0);
    await server.close();
  });
  injected.port = server.port;
  return { balancer, server, log };
}

describe('classification', () => {
  it('names the host shortages and nothing else', () => {
    for (const code of LOCAL_ERROR_CODES) expect(isLocalError(code)).toBe(true);
    for (const code of ['ECONNREFUSED', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', undefined]) expect(isLocalError(code)).toBe(false);
  });

  it('a burst is reported once: again only after a quiet gap', () => {
    const gate = new BurstGate(1000);
    expect(gate.note(0)).toEqual({ startsBurst: true, previous: 0 });
    expect(gate.note(10).startsBurst).toBe(false);
    expect(gate.note(900).startsBurst).toBe(false);
    expect(gate.note(2000)).toEqual({ startsBurst: true, previous: 3 });
  });
});

describe('health path', () => {
  const CHECK = { type: 'tcp' as const, interval: 600_000, timeout: 1000, rise: 1, fall: 1, initial: 'fully-up' as const };

  it('a connect failing with EMFILE leaves the backend up and uncounted; ECONNREFUSED marks it down', async () => {
    const { balancer, log } = await setup({ healthCheck: CHECK, retries: 0 });
    const metrics = createMetrics(balancer);
    const port = balancer.address('svc').port;

    injected.code = 'EMFILE';
    const client = await connectClient(port);
    const clientPort = client.localPort;
    await peerClosed(client); // the connection ends at once (a FIN: nothing was cut)
    client.destroy();
    const [record] = await log.waitForAccess(1);
    expect(record).toMatchObject({ end: 'local-error', error: 'EMFILE', client: `127.0.0.1:${clientPort}` });
    const [row] = balancer.stats();
    expect(row.backends[0]).toMatchObject({ health: 'up', failures: 0 });
    expect(row.localErrors).toEqual({ EMFILE: 1 });
    expect(await metrics.render()).toMatch(/l4lb_local_errors_total\{service="svc",code="EMFILE"\} 1/);
    expect(log.records.filter((r) => r.msg === "backend connect failed on l4lb's side; backends not marked down")).toHaveLength(1);

    // Right after a descriptor shortage the listener is paused: a new client is reset at accept, and
    // once the pause is over clients reach the backend again.
    let reached = false;
    while (!reached) {
      reached = await connectClient(port).then(
        async (next) => {
          next.on('error', () => {});
          const name = await readLine(next).catch(() => '');
          next.destroy();
          return name === 'x';
        },
        () => false,
      );
    }
    expect(balancer.stats()[0].backends[0]).toMatchObject({ health: 'up' });

    // The control: the same path with a backend's own failure does mark it down.
    injected.code = 'ECONNREFUSED';
    const refused = await connectClient(port);
    await peerClosed(refused);
    refused.destroy();
    await waitUntil(() => balancer.stats()[0].backends[0].health === 'down');
    expect(balancer.stats()[0].backends[0].failures).toBe(1);
  });
});

describe('client address on every access line', () => {
  for (const strategy of ['roundrobin', 'leastconn'] as const) {
    it(`${strategy}: a client that resets at once is logged with its address and port`, async () => {
      const server = await startServer((socket) => socket.on('end', () => socket.end())); // says nothing, closes after the client
      const log = captureLog();
      const balancer = await startBalancer(configOf(proxyService([backend('x', server.port)], { name: 'svc', balance: strategy })), { logger: log.logger });
      cleanups.push(async () => {
        await balancer.close(0);
        await server.close();
      });
      const ports: number[] = [];
      for (let i = 0; i < 5; i++) {
        const client = await connectClient(balancer.address('svc').port);
        ports.push(client.localPort ?? -1);
        if (i % 2 === 0) client.resetAndDestroy();
        else client.destroy();
        await closed(client);
      }
      const records = await log.waitForAccess(ports.length);
      expect(records.map((r) => r.client).sort()).toEqual(ports.map((p) => `127.0.0.1:${p}`).sort());
    });
  }
});

describe('cut flows reset the client', () => {
  it('the drain deadline passing resets a spliced client (ECONNRESET), logged as shutdown', async () => {
    const { balancer, log } = await setup();
    const client = await connectClient(balancer.address('svc').port);
    expect(await readLine(client)).toBe('x');
    const gone = closed(client);
    client.resume();
    await balancer.close(0);
    expect((await gone)?.code).toBe('ECONNRESET');
    expect((await log.waitForAccess(1))[0]).toMatchObject({ end: 'shutdown' });
  });

  it('close(0) resolves when a spliced connection\'s backend socket is already destroyed', async () => {
    const { balancer, log } = await setup();
    const client = await connectClient(balancer.address('svc').port);
    expect(await readLine(client)).toBe('x');
    // Reach l4lb's own backend socket of the connection (private state: this is the case under test).
    const services = (balancer as unknown as { services: Map<string, ProxyService> }).services;
    const open = ([...services.values()][0] as unknown as { open: Set<{ splice?: { backend: net.Socket } }> }).open;
    const [connection] = [...open];
    const splice = connection.splice;
    if (splice === undefined) throw new Error('connection not spliced');
    splice.backend.destroy();
    const gone = closed(client);
    client.resume();
    await balancer.close(0);
    await gone;
    expect(await log.waitForAccess(1)).toHaveLength(1);
  });
});
