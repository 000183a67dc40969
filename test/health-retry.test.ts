/**
 * Retries through the health gate (src/services/gate.ts, src/proxy/connection.ts): the connect
 * failure that marks a backend down must not make the same connection lose its retry or skip a
 * candidate. A retry asks for the first usable candidate in the key's own order that this
 * connection has not tried (HAProxy's `chash_get_server_hash(…, avoid)`), whatever the failure
 * did to the usable set. Oracle: the hashing core's `pick(key, 1)`.
 */
import { afterEach, expect, it } from 'vitest';
import { createPicker } from '../src/hashing/index.js';
import { flowKey } from '../src/hashing/keys.js';
import { slotHashOf } from '../src/services/index.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import type { HealthCheckConfig } from '../src/config/index.js';
import type { ProxyServiceConfig } from '../src/config/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog, type CapturedLog } from './helpers/log.js';
import { connectClient, freePort, readAll, startNamedServer, type TestServer } from './helpers/net.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Probes never run during the test (one-hour interval): only the passive observations count. */
function passiveOnly(fall: number): HealthCheckConfig {
  return { type: 'tcp', interval: 3_600_000, timeout: 1000, rise: 2, fall, initial: 'up' };
}

async function setup(live: string[], fall: number): Promise<{ balancer: Balancer; service: ProxyServiceConfig; log: CapturedLog; sources: string[] }> {
  const servers: TestServer[] = await Promise.all(live.map((name) => startNamedServer(name)));
  const deadPort = await freePort();
  const service = proxyService([backend('dead', deadPort), ...live.map((name, i) => backend(name, servers[i].port))], {
    tableSize: 251,
    retries: 2,
    healthCheck: passiveOnly(fall),
  });
  const picker = createPicker('maglev', service.backends, { tableSize: 251, slotHash: slotHashOf(service) });
  const sources: string[] = [];
  for (let i = 1; sources.length < 4 && i < 255; i++) {
    const source = `127.9.0.${i}`;
    if (picker.pick(flowKey(source), 0)?.name === 'dead') sources.push(source);
  }
  expect(sources).toHaveLength(4);
  const log = captureLog();
  const balancer = await startBalancer(configOf(service), { logger: log.logger });
  cleanups.push(async () => {
    await balancer.close(0);
    await Promise.all(servers.map((server) => server.close()));
  });
  return { balancer, service, log, sources };
}

/** The first line the backend reached from `source` says (its name), or 'CLOSED' if the proxy gave up. */
async function ask(balancer: Balancer, source: string): Promise<string> {
  const socket = await connectClient(balancer.address('svc').port, source);
  socket.end();
  const reply = (await readAll(socket).catch(() => Buffer.alloc(0))).toString();
  socket.destroy();
  return reply.length === 0 ? 'CLOSED' : reply.split('\n')[0];
}

it('2 backends: the connection whose failure marks the dead one down still retries onto the live one', async () => {
  const { balancer, log, sources } = await setup(['live'], 3);
  const results: string[] = [];
  for (const source of sources) results.push(await ask(balancer, source));
  expect(results).toEqual(['live', 'live', 'live', 'live']);
  const ends = log.records.filter((record) => record.end !== undefined);
  expect(ends).toHaveLength(4);
  for (const record of ends) {
    expect(record.backend).toBe('live');
    expect(record.end).not.toMatch(/^connect-|^no-backend/);
  }
  // Each tried dead at most once before live; once fall was reached, the rest went straight to live.
  expect(ends.every((record) => record.retries === 0 || record.retries === 1)).toBe(true);
  expect(ends[ends.length - 1].retries).toBe(0);
});

it('≥3 backends: the retry goes to pick(key, 1) of the hashing core, not past it, when the failure marks the first candidate down', async () => {
  const { balancer, service, sources } = await setup(['b', 'c', 'd'], 1);
  const picker = createPicker('maglev', service.backends, { tableSize: 251, slotHash: slotHashOf(service) });
  for (const source of sources) expect(await ask(balancer, source)).toBe(picker.pick(flowKey(source), 1)?.name);
});
