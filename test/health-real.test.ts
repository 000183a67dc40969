/**
 * The protocol checkers against real servers: Redis (a child redis-server on a free loopback
 * port, stopped by its PID) and PostgreSQL (the server CI provides in L4LB_TEST_PG, see .ci/run).
 * With CI=true a missing server fails the test; elsewhere its block is skipped, the reason in its
 * title (test/helpers/skip.ts).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createChecker, type CheckResult } from '../src/health/index.js';
import { freePort } from './helpers/net.js';
import { requirement } from './helpers/skip.js';

const TIMEOUT_MS = 3000;

const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
const unset = (variable: string): string | undefined => (process.env[variable] ? undefined : `${variable} is not set; .ci/run sets it`);

/** The URL in `variable`; throws naming it when it is unset (with CI=true the tests run regardless). */
function serverUrl(variable: string): URL {
  const text = process.env[variable];
  if (!text) throw new Error(`CI=true but ${variable} is not set: .ci/run must start the server and export it`);
  return new URL(text);
}

interface RedisChild {
  readonly port: number;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

const children: RedisChild[] = [];

/** Starts redis-server on a free loopback port and resolves once it accepts connections. */
async function startRedis(extra: string[] = []): Promise<RedisChild> {
  if (!hasRedis) throw new Error('CI=true but redis-server is not installed: .ci/run installs it');
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const handle = { port, child, stop };
  children.push(handle);
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`redis-server exited (${String(code)}) before ready:\n${output}`)));
    child.once('error', reject);
  });
  return handle;
}

afterAll(async () => {
  await Promise.all(children.map((c) => c.stop()));
});

function detail(result: CheckResult): string {
  return result.ok ? `ok: ${result.detail}` : `${result.kind}: ${result.reason}`;
}

const redisServer = requirement('redis checker against redis-server', hasRedis ? undefined : 'redis-server is not installed');
describe.skipIf(redisServer.skip)(redisServer.title, () => {
  it('passes while Redis is up, fails with connect once it is stopped', async () => {
    const redis = await startRedis();
    const checker = createChecker({ type: 'redis' });
    const target = { host: '127.0.0.1', port: redis.port };
    expect(detail(await checker.check(target, TIMEOUT_MS))).toBe('ok: PONG');
    await redis.stop();
    const after = await checker.check(target, TIMEOUT_MS);
    expect(after.ok).toBe(false);
    expect(!after.ok && after.kind).toBe('connect');
    expect(!after.ok && after.reason).toMatch(/^ECONNREFUSED/);
  });

  it('fails with the server message when Redis wants a password (-NOAUTH)', async () => {
    const redis = await startRedis(['--requirepass', 'l4lb-test-secret']);
    const result = await createChecker({ type: 'redis' }).check({ host: '127.0.0.1', port: redis.port }, TIMEOUT_MS);
    expect(detail(result)).toMatch(/^status: NOAUTH /);
  });

  it('fails the pgsql and http checkers against Redis (wrong protocol answers)', async () => {
    const redis = await startRedis();
    const target = { host: '127.0.0.1', port: redis.port };
    const pgsql = await createChecker({ type: 'pgsql' }).check(target, 500);
    expect(pgsql.ok).toBe(false);
    const httpResult = await createChecker({ type: 'http' }).check(target, 500);
    expect(httpResult.ok).toBe(false);
  });

  const ciRedis = requirement('passes against the Redis of L4LB_TEST_REDIS', unset('L4LB_TEST_REDIS'));
  it.skipIf(ciRedis.skip)(ciRedis.title, async () => {
    const url = serverUrl('L4LB_TEST_REDIS');
    const result = await createChecker({ type: 'redis' }).check({ host: url.hostname, port: Number(url.port || 6379) }, TIMEOUT_MS);
    expect(detail(result)).toBe('ok: PONG');
  });
});

const postgres = requirement('pgsql checker against PostgreSQL', unset('L4LB_TEST_PG'));
describe.skipIf(postgres.skip)(postgres.title, () => {
  const server = (): { url: URL; target: { host: string; port: number } } => {
    const url = serverUrl('L4LB_TEST_PG');
    return { url, target: { host: url.hostname, port: Number(url.port || 5432) } };
  };

  it('sees the server a real client can log into as healthy', async () => {
    const { url, target } = server();
    // The premise: the server is really up and serving.
    const client = new pg.Client({ connectionString: url.href });
    await client.connect();
    try {
      expect((await client.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    } finally {
      await client.end();
    }
    const result = await createChecker({ type: 'pgsql', user: decodeURIComponent(url.username) }).check(target, TIMEOUT_MS);
    expect(detail(result)).toMatch(/^ok: authentication request: /);
  });

  it('passes with the default user and with a role that does not exist (no login is attempted)', async () => {
    const { target } = server();
    const byDefault = await createChecker({ type: 'pgsql' }).check(target, TIMEOUT_MS);
    expect(detail(byDefault)).toMatch(/^ok: authentication request: /);
    const unknownRole = await createChecker({ type: 'pgsql', user: 'l4lb_no_such_role' }).check(target, TIMEOUT_MS);
    expect(detail(unknownRole)).toMatch(/^ok: authentication request: /);
  });

  it('fails the redis checker against PostgreSQL (wrong protocol)', async () => {
    const { target } = server();
    const result = await createChecker({ type: 'redis' }).check(target, 1000);
    expect(result.ok).toBe(false);
  });
});
