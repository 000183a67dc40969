/**
 * The protocol checkers against real servers: Redis (a child redis-server on a free loopback
 * port, stopped by its PID) and PostgreSQL (the server CI provides in L4LB_TEST_PG, see .ci/run).
 * With CI=true a missing server fails the test; elsewhere it is skipped with the reason printed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createChecker, type CheckResult } from '../src/health/index.js';

const IN_CI = process.env.CI === 'true';
const TIMEOUT_MS = 3000;

const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
const pgUrl = process.env.L4LB_TEST_PG;
const missing = [
  ...(hasRedis ? [] : ['redis-server is not installed']),
  ...(pgUrl ? [] : ['L4LB_TEST_PG is not set (CI sets it; see .ci/run)']),
];
if (!IN_CI) for (const what of missing) process.stderr.write(`[health-real] skipping: ${what}\n`);

// Outside CI a missing server skips its tests; with CI=true it is a failure of its own.
describe.runIf(IN_CI && missing.length > 0)('servers CI must provide', () => {
  it.each(missing)('%s', (what) => {
    expect.fail(`CI=true but ${what}`);
  });
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface RedisChild {
  readonly port: number;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

const children: RedisChild[] = [];

/** Starts redis-server on a free loopback port and resolves once it accepts connections. */
async function startRedis(extra: string[] = []): Promise<RedisChild> {
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

describe.runIf(hasRedis)('redis checker against redis-server', () => {
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

  it.skipIf(!process.env.L4LB_TEST_REDIS)('passes against the Redis of L4LB_TEST_REDIS', async () => {
    const url = new URL(process.env.L4LB_TEST_REDIS ?? '');
    const result = await createChecker({ type: 'redis' }).check({ host: url.hostname, port: Number(url.port || 6379) }, TIMEOUT_MS);
    expect(detail(result)).toBe('ok: PONG');
  });
});

describe.runIf(pgUrl !== undefined && pgUrl !== '')('pgsql checker against PostgreSQL', () => {
  const url = new URL(pgUrl ?? 'postgres://invalid');
  const target = { host: url.hostname, port: Number(url.port || 5432) };

  it('sees the server a real client can log into as healthy', async () => {
    // The premise: the server is really up and serving.
    const client = new pg.Client({ connectionString: pgUrl });
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
    const byDefault = await createChecker({ type: 'pgsql' }).check(target, TIMEOUT_MS);
    expect(detail(byDefault)).toMatch(/^ok: authentication request: /);
    const unknownRole = await createChecker({ type: 'pgsql', user: 'l4lb_no_such_role' }).check(target, TIMEOUT_MS);
    expect(detail(unknownRole)).toMatch(/^ok: authentication request: /);
  });

  it('fails the redis checker against PostgreSQL (wrong protocol)', async () => {
    const result = await createChecker({ type: 'redis' }).check(target, 1000);
    expect(result.ok).toBe(false);
  });
});
