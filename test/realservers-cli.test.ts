/**
 * Real services through the `l4lb run -c FILE` process: Redis and PostgreSQL clients talk through
 * the CLI as an operator would run it, across a SIGHUP reload and a SIGTERM drain, and the access
 * log on stdout accounts for every connection.
 *
 * Needs dist/ built (`npm test` builds it first) and the servers of L4LB_TEST_REDIS / L4LB_TEST_PG,
 * as test/realservers.test.ts: outside CI an unset variable skips, named with the reason; with
 * CI=true it fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { requirement } from './helpers/skip.js';

const CLI = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', 'dist', 'cli.js');

/** Skips a block outside CI when `variable` is unset; with CI=true it runs and serverUrl fails. */
function needsServer(title: string, variable: string) {
  return requirement(title, process.env[variable] ? undefined : `${variable} is not set; .ci/run sets it`);
}

function serverUrl(variable: string): URL {
  const text = process.env[variable];
  if (!text) throw new Error(`CI=true but ${variable} is not set: .ci/run must start the server and export it`);
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
  return new URL(text);
}

type LogRecord = Record<string, unknown> & { msg?: string };

/** A running `l4lb run` and the JSON lines it has written to stdout. */
class RunningCli {
  readonly records: LogRecord[] = [];
  private readonly waiters: { match: (record: LogRecord) => boolean; resolve: (record: LogRecord) => void }[] = [];
  readonly exited: Promise<number | null>;
  stderr = '';

  constructor(readonly child: ChildProcess) {
    let partial = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      partial += chunk.toString('utf8');
      let newline: number;
      while ((newline = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, newline);
        partial = partial.slice(newline + 1);
        if (line.trim() === '') continue;
        const record = JSON.parse(line) as LogRecord;
        this.records.push(record);
        for (let i = this.waiters.length - 1; i >= 0; i--) {
          if (this.waiters[i].match(record)) this.waiters.splice(i, 1)[0].resolve(record);
        }
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => (this.stderr += chunk.toString('utf8')));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** The first record (written already or to come) with this message, or a rejection if the process exits first. */
  waitFor(msg: string, extra: (record: LogRecord) => boolean = () => true): Promise<LogRecord> {
    const match = (record: LogRecord): boolean => record.msg === msg && extra(record);
    const found = this.records.find(match);
    if (found) return Promise.resolve(found);
    return Promise.race([
      new Promise<LogRecord>((resolve) => this.waiters.push({ match, resolve })),
      this.exited.then((code) => {
        throw new Error(`l4lb run exited (${code}) before logging "${msg}": ${this.stderr}`);
      }),
    ]);
  }

  access(): LogRecord[] {
    return this.records.filter((record) => record.msg === 'connection');
  }
}

const running: RunningCli[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const cli of running.splice(0)) {
    if (cli.child.exitCode === null && cli.child.signalCode === null && cli.child.pid !== undefined) {
      process.kill(cli.child.pid, 'SIGKILL');
      await cli.exited;
    }
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function configText(name: string, backend: URL, defaultPort: number, weight: number): string {
  const port = backend.port === '' ? defaultPort : Number(backend.port);
  return [
    'services:',
    `  - name: ${name}`,
    '    listen: 127.0.0.1:0',
    '    balance: maglev',
    '    timeouts: { connect: 3s, idle: 5m, queue: 5s, drain: 5m }',
    '    backends:',
    `      - { name: ${name}1, address: ${backend.hostname}:${port}, weight: ${weight} }`,
    '',
  ].join('\n');
}

/** Starts `l4lb run` on a fresh config file; resolves with the process and the port it listens on. */
async function startCli(name: string, backend: URL, defaultPort: number): Promise<{ cli: RunningCli; port: number; file: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-realservers-'));
  dirs.push(dir);
  const file = join(dir, 'l4lb.yaml');
  writeFileSync(file, configText(name, backend, defaultPort, 1));
  const cli = new RunningCli(spawn(process.execPath, [CLI, 'run', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
  running.push(cli);
  const listening = await cli.waitFor('listening', (record) => record.service === name);
  const port = Number(String(listening.listen).split(':').pop());
  expect(port).toBeGreaterThan(0);
  return { cli, port, file };
}

/** Resolves with the error code of a plain TCP connect to 127.0.0.1:port, or 'connected'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/**
 * Resolves with the first connect result that is not 'connected' (at most 100 attempts, each
 * waiting on its own outcome). `l4lb run` logs "stopping" just before it closes the listener, so
 * the kernel may still complete a handshake or two after the line arrives.
 */
async function refusedAfterStop(port: number): Promise<string> {
  let result = 'connected';
  for (let attempt = 0; attempt < 100 && result === 'connected'; attempt++) result = await tryConnect(port);
  return result;
}

const redis = needsServer('Redis through `l4lb run`', 'L4LB_TEST_REDIS');
describe.skipIf(redis.skip)(redis.title, () => {
  it('serves across a SIGHUP reload, drains on SIGTERM, exits 0 once the last client leaves, and logs every connection', async () => {
    const url = serverUrl('L4LB_TEST_REDIS');
    const { cli, port, file } = await startCli('redis', url, 6379);
    const key = `l4lb_rs_cli_${process.pid}_${Date.now()}`;
    const options = { host: '127.0.0.1', port, lazyConnect: true, retryStrategy: () => null, enableOfflineQueue: false, maxRetriesPerRequest: 0 };
    const first = new Redis(options);
    await first.connect();
    const value = randomBytes(2 * 1024 * 1024);
    expect(await first.set(key, value)).toBe('OK');
    const pipeline = first.pipeline();
    for (let i = 0; i < 2000; i++) pipeline.incr(`${key}:n`);
    const replies = await pipeline.exec();
    expect(replies?.map(([, reply]) => reply)).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));

    // SIGHUP with a changed file: the open connection is untouched, new ones use the new plan.
    writeFileSync(file, configText('redis', url, 6379, 2));
    cli.child.kill('SIGHUP');
    await cli.waitFor('reloaded');
    expect(Buffer.compare((await first.getBuffer(key)) ?? Buffer.alloc(0), value)).toBe(0);
    const second = new Redis(options);
    await second.connect();
    expect(await second.get(`${key}:n`)).toBe('2000');
    await second.quit();

    // SIGTERM: no new connections, the open one keeps working until it leaves, then exit 0.
    cli.child.kill('SIGTERM');
    await cli.waitFor('stopping: no new connections, draining open ones');
    expect(await refusedAfterStop(port)).toBe('ECONNREFUSED');
    expect(await first.del(key, `${key}:n`)).toBe(2);
    await first.quit();
    expect(await cli.exited).toBe(0);

    // Probes that the kernel completed before the listener closed carry no bytes.
    const access = cli.access().filter((record) => Number(record.bytesUp) > 0);
    expect(access).toHaveLength(2);
    for (const record of access) {
      expect(record).toMatchObject({ service: 'redis', backend: 'redis1' });
      expect(record.bytesUp).toBeGreaterThan(0);
      expect(record.bytesDown).toBeGreaterThan(0);
    }
    expect(Math.max(...access.map((record) => Number(record.bytesUp)))).toBeGreaterThan(value.length);
    expect(Math.max(...access.map((record) => Number(record.bytesDown)))).toBeGreaterThan(value.length);
  }, 60000);
});

const postgres = needsServer('PostgreSQL through `l4lb run`', 'L4LB_TEST_PG');
describe.skipIf(postgres.skip)(postgres.title, () => {
  it('keeps a session with an open transaction working through the SIGTERM drain', async () => {
    const url = serverUrl('L4LB_TEST_PG');
    const { cli, port } = await startCli('pg', url, 5432);
    const client = new pg.Client({
      host: '127.0.0.1', port, user: decodeURIComponent(url.username), password: decodeURIComponent(url.password),
      database: url.pathname.slice(1) || undefined,
    });
    await client.connect();
    await client.query('BEGIN');
    await client.query('CREATE TEMP TABLE drained (n int) ON COMMIT DROP');
    await client.query('INSERT INTO drained SELECT generate_series(1, 10000)');

    cli.child.kill('SIGTERM');
    await cli.waitFor('stopping: no new connections, draining open ones');
    expect(await refusedAfterStop(port)).toBe('ECONNREFUSED');
    expect((await client.query('SELECT sum(n)::bigint AS total FROM drained')).rows[0].total).toBe('50005000');
    await client.query('COMMIT');
    await client.end();
    expect(await cli.exited).toBe(0);
    const sessions = cli.access().filter((record) => Number(record.bytesUp) > 0);
    expect(sessions).toHaveLength(1);
    expect(sessions[0]).toMatchObject({ service: 'pg', backend: 'pg1' });
  }, 60000);
});
