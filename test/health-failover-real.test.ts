/**
 * Protocol health checks against real servers, through the balancer's own `healthCheck` config:
 * Redis (`redis`, PING → +PONG) and PostgreSQL (`pgsql`, StartupMessage → an authentication
 * request). A real server is up; a stopped one (nothing on its port) and a plain TCP server that
 * answers garbage are down — and clients through the balancer reach only the real one. Servers:
 * L4LB_TEST_REDIS and L4LB_TEST_PG (.ci/run starts both); with CI=true a missing one FAILS,
 * elsewhere its block is skipped, the reason in its title (test/helpers/skip.ts).
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { HealthCheckConfig } from '../src/config/index.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import type { HealthChange } from '../src/services/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog } from './helpers/log.js';
import { freePort, startServer, type TestServer } from './helpers/net.js';
import { requirement } from './helpers/skip.js';

/** Skips a block outside CI when `variable` is unset. */
const needsServer = (title: string, variable: string) =>
  requirement(title, process.env[variable] ? undefined : `${variable} is not set; .ci/run sets it`);

/** The URL in `variable`; throws naming it when it is unset (with CI=true the tests run regardless). */
function serverUrl(variable: string): URL {
  const text = process.env[variable];
  if (!text) throw new Error(`CI=true but ${variable} is not set: .ci/run must start the server and export it`);
  return new URL(text);
}

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** Balancer over [real, garbage, stopped] with `check`; resolves once real is up (a passing probe) and the others are down. */
async function balancerFor(url: URL, check: HealthCheckConfig): Promise<{ balancer: Balancer; events: HealthChange[] }> {
  const garbage: TestServer = await startServer((socket) => socket.end('HTTP/1.0 200 OK\r\n\r\nnot the protocol\r\n'));
  const stoppedPort = await freePort();
  const realPort = Number(url.port);
  const balancer = await startBalancer(
    configOf(
      proxyService([backend('real', realPort, { address: { host: url.hostname, port: realPort } }), backend('garbage', garbage.port), backend('stopped', stoppedPort)], {
        name: check.type,
        healthCheck: check,
      }),
    ),
    { logger: captureLog().logger },
  );
  cleanups.push(async () => {
    await balancer.close(0);
    await garbage.close();
  });
  const events: HealthChange[] = [];
  await new Promise<void>((resolve) => {
    const done = (): boolean => {
      const rows = balancer.stats()[0].backends;
      const realPassed = rows[0].lastCheck?.ok === true && rows[0].lastCheck.source === 'active';
      return realPassed && rows[1].health === 'down' && rows[2].health === 'down';
    };
    balancer.events.on('health', (change) => events.push(change));
    balancer.events.on('check', () => done() && resolve());
  });
  return { balancer, events };
}

const CHECK = { interval: 100, timeout: 1000, rise: 1, fall: 1, initial: 'up' } as const;

const redis = needsServer('redis health check through the balancer', 'L4LB_TEST_REDIS');
describe.skipIf(redis.skip)(redis.title, () => {
  it('real Redis up; garbage and stopped down; clients reach only Redis', async () => {
    const url = serverUrl('L4LB_TEST_REDIS');
    const { balancer, events } = await balancerFor(url, { type: 'redis', ...CHECK });
    const [real, garbage, stopped] = balancer.stats()[0].backends;
    expect(real).toMatchObject({ health: 'up', lastCheck: { ok: true, detail: expect.stringContaining('PONG') } });
    expect(garbage).toMatchObject({ health: 'down', lastCheck: { ok: false, detail: expect.stringMatching(/^invalid: /) } });
    expect(stopped).toMatchObject({ health: 'down', lastCheck: { ok: false, detail: expect.stringMatching(/^connect: ECONNREFUSED/) } });
    expect(events.map((event) => `${event.backend} ${event.health}`).sort()).toEqual(['garbage down', 'stopped down']);
    for (let i = 0; i < 5; i++) {
      const client = new Redis({ host: '127.0.0.1', port: balancer.address('redis').port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      await client.connect();
      expect(await client.ping()).toBe('PONG');
      await client.quit();
    }
    expect(balancer.stats()[0].backends.map((row) => row.total)).toEqual([5, 0, 0]);
  });
});

const postgres = needsServer('pgsql health check through the balancer', 'L4LB_TEST_PG');
describe.skipIf(postgres.skip)(postgres.title, () => {
  it('real PostgreSQL up; garbage and stopped down; clients reach only PostgreSQL', async () => {
    const url = serverUrl('L4LB_TEST_PG');
    const { balancer } = await balancerFor(url, { type: 'pgsql', ...CHECK });
    const [real, garbage, stopped] = balancer.stats()[0].backends;
    expect(real).toMatchObject({ health: 'up', lastCheck: { ok: true, detail: expect.stringMatching(/authentication|ok/i) } });
    expect(garbage).toMatchObject({ health: 'down', lastCheck: { ok: false, detail: expect.stringMatching(/^invalid: /) } });
    expect(stopped.health).toBe('down');
    const client = new pg.Client({
      host: '127.0.0.1',
      port: balancer.address('pgsql').port,
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      database: url.pathname.slice(1),
    });
    await client.connect();
    expect((await client.query('SELECT 41 + 1 AS answer')).rows).toEqual([{ answer: 42 }]);
    await client.end();
    expect(balancer.stats()[0].backends.map((row) => row.total)).toEqual([1, 0, 0]);
  });
});
