/**
 * Real services through the balancer: PostgreSQL with the `pg` client and Redis with `ioredis`,
 * each behind `startBalancer` listening on 127.0.0.1:0, so every byte these clients exchange
 * crosses l4lb's splice (nothing else listens on the balancer's port).
 *
 * Servers come from the environment: L4LB_TEST_PG (postgres://user:password@host:port/db) and
 * L4LB_TEST_REDIS (redis://host:port), both set by .ci/run. Outside CI a missing variable skips its
 * block, named with the reason; with CI=true it fails.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config, Endpoint } from '../src/config/index.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import { requirement, type Requirement } from './helpers/skip.js';

/** A server from the environment: its URL, or the block skipped (outside CI) saying why. */
function server(title: string, variable: string): Requirement & { url?: URL } {
  const text = process.env[variable];
  if (text) return { ...requirement(title, undefined), url: new URL(text) };
  // With CI=true the block runs and its beforeAll fails, naming the variable.
  return requirement(title, `${variable} is not set; .ci/run sets it`);
}

function serverEndpoint(url: URL, defaultPort: number): Endpoint {
  return { host: url.hostname, port: url.port === '' ? defaultPort : Number(url.port) };
}

/** Access-log records the balancer writes, and a way to wait for them. */
interface AccessLog {
  records: Record<string, unknown>[];
  waitForCount(count: number): Promise<Record<string, unknown>[]>;
}

function captureAccessLog(): { logger: pino.Logger; log: AccessLog } {
  const records: Record<string, unknown>[] = [];
  const waiters: { count: number; resolve: (records: Record<string, unknown>[]) => void }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        const record = JSON.parse(line) as Record<string, unknown>;
        if (record.msg === 'connection') records.push(record);
      }
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (records.length >= waiters[i].count) waiters.splice(i, 1)[0].resolve(records);
      }
      done();
    },
  });
  const log: AccessLog = {
    records,
    waitForCount(count) {
      if (records.length >= count) return Promise.resolve(records);
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
  };
  return { logger: pino({ base: null }, sink), log };
}

function configFor(name: string, backend: Endpoint): Config {
  return {
    services: [
      {
        mode: 'proxy',
        name,
        listen: [{ host: '127.0.0.1', port: 0 }],
        balance: 'maglev',
        hashKey: 'source-ip-port',
        flowHash: 'murmur3',
        hashSeed: 0,
        tableSize: 65537,
        maxConnections: 1000,
        retries: 1,
        timeouts: { connect: 3000, idle: 60000, queue: 5000, drain: 2000 },
        backends: [{ name: `${name}1`, address: backend, weight: 1 }],
      },
    ],
  };
}

const md5 = (data: string | Buffer): string => createHash('md5').update(data).digest('hex');
const unique = `l4lb_rs_${process.pid}_${Date.now()}`;

const postgres = server('PostgreSQL through l4lb', 'L4LB_TEST_PG');
describe.skipIf(postgres.skip)(
  postgres.title,
  () => {
    let balancer: Balancer;
    let access: AccessLog;
    let client: () => pg.Client;

    beforeAll(async () => {
      if (!postgres.url) throw new Error('CI=true but L4LB_TEST_PG is not set: .ci/run must start PostgreSQL and export it');
      const url = postgres.url;
      const { logger, log } = captureAccessLog();
      access = log;
      balancer = await startBalancer(configFor('pg', serverEndpoint(url, 5432)), { logger });
      const via = balancer.address('pg');
      client = () =>
        new pg.Client({
          host: via.host, port: via.port, user: decodeURIComponent(url.username), password: decodeURIComponent(url.password),
          database: url.pathname.slice(1) || undefined,
        });
    });
    afterAll(async () => {
      await balancer?.close(0);
    });

    it('serves several clients at once, each in its own server session, and logs each connection', async () => {
      const clients = Array.from({ length: 8 }, () => client());
      await Promise.all(clients.map((c) => c.connect()));
      const before = access.records.length;
      const answers = await Promise.all(clients.map((c, i) => c.query('SELECT pg_backend_pid() AS pid, $1::int * 2 AS doubled', [i])));
      expect(answers.map((a) => a.rows[0].doubled)).toEqual([0, 2, 4, 6, 8, 10, 12, 14]);
      expect(new Set(answers.map((a) => a.rows[0].pid)).size).toBe(8);
      await Promise.all(clients.map((c) => c.end()));
      const records = (await access.waitForCount(before + 8)).slice(before);
      for (const record of records) {
        expect(record).toMatchObject({ service: 'pg', backend: 'pg1' });
        expect(record.bytesUp).toBeGreaterThan(0);
        expect(record.bytesDown).toBeGreaterThan(0);
      }
    }, 30000);

    it('keeps transaction semantics: uncommitted rows invisible, commit, rollback, an aborted transaction', async () => {
      const writer = client();
      const reader = client();
      await Promise.all([writer.connect(), reader.connect()]);
      const table = `${unique}_tx`;
      try {
        await writer.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text NOT NULL)`);
        await writer.query('BEGIN');
        await writer.query(`INSERT INTO ${table} SELECT i, md5(i::text) FROM generate_series(1, 1000) i`);
        expect((await reader.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(0);
        await writer.query('COMMIT');
        expect((await reader.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(1000);

        await writer.query('BEGIN');
        await writer.query(`DELETE FROM ${table} WHERE id <= 500`);
        await writer.query('ROLLBACK');
        expect((await reader.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(1000);

        await writer.query('BEGIN');
        await expect(writer.query(`INSERT INTO ${table} VALUES (1, 'duplicate')`)).rejects.toMatchObject({ code: '23505' });
        await expect(writer.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
        await writer.query('ROLLBACK');
        expect((await writer.query(`SELECT v FROM ${table} WHERE id = 1`)).rows[0].v).toBe(md5('1'));
      } finally {
        await writer.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
        await Promise.all([writer.end(), reader.end()]);
      }
    }, 30000);

    it('streams a large result set intact (200,000 rows)', async () => {
      const c = client();
      await c.connect();
      try {
        const result = await c.query('SELECT i, md5(i::text) AS digest FROM generate_series(1, 200000) i ORDER BY i');
        expect(result.rows.length).toBe(200000);
        result.rows.forEach((row: { i: number; digest: string }, index: number) => {
          if (row.i !== index + 1 || row.digest !== md5(String(index + 1))) {
            throw new Error(`row ${index}: got ${JSON.stringify(row)}`);
          }
        });
      } finally {
        await c.end();
      }
    }, 60000);

    it('carries a row of several MB both ways byte for byte', async () => {
      const c = client();
      await c.connect();
      try {
        const payload = randomBytes(3 * 1024 * 1024 + 17);
        const echoed = await c.query('SELECT md5($1::bytea) AS digest, length($1::bytea) AS size, $1::bytea AS echo', [payload]);
        expect(echoed.rows[0].size).toBe(payload.length);
        expect(echoed.rows[0].digest).toBe(md5(payload));
        expect(Buffer.compare(echoed.rows[0].echo as Buffer, payload)).toBe(0);
        const generated = await c.query("SELECT repeat('l4lb', 1048576) AS text");
        expect(generated.rows[0].text).toBe('l4lb'.repeat(1048576));
      } finally {
        await c.end();
      }
    }, 60000);
  },
);

const redis = server('Redis through l4lb', 'L4LB_TEST_REDIS');
describe.skipIf(redis.skip)(redis.title, () => {
  let balancer: Balancer;
  const clients: Redis[] = [];
  let connect: () => Promise<Redis>;

  beforeAll(async () => {
    if (!redis.url) throw new Error('CI=true but L4LB_TEST_REDIS is not set: .ci/run must start redis-server and export it');
    const { logger } = captureAccessLog();
    balancer = await startBalancer(configFor('redis', serverEndpoint(redis.url, 6379)), { logger });
    const via = balancer.address('redis');
    connect = async () => {
      // No reconnects and no offline queue: a broken path must fail the test, not be papered over.
      const c = new Redis({ host: via.host, port: via.port, lazyConnect: true, retryStrategy: () => null, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
      clients.push(c);
      await c.connect();
      return c;
    };
  });
  afterAll(async () => {
    const cleaner = clients[0];
    if (cleaner && cleaner.status === 'ready') {
      const keys = await cleaner.keys(`${unique}:*`);
      if (keys.length > 0) await cleaner.del(...keys);
    }
    await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
    await balancer?.close(0);
  });

  it('answers SET, GET, INCR and DEL', async () => {
    const c = await connect();
    expect(await c.set(`${unique}:greeting`, 'hello through l4lb')).toBe('OK');
    expect(await c.get(`${unique}:greeting`)).toBe('hello through l4lb');
    expect(await c.incrby(`${unique}:counter`, 41)).toBe(41);
    expect(await c.incr(`${unique}:counter`)).toBe(42);
    expect(await c.del(`${unique}:greeting`, `${unique}:counter`)).toBe(2);
    expect(await c.exists(`${unique}:greeting`)).toBe(0);
  });

  it('returns every reply of a 10,000-command pipeline in order', async () => {
    const c = await connect();
    const count = 5000;
    const writes = c.pipeline();
    for (let i = 0; i < count; i++) writes.set(`${unique}:p:${i}`, `value-${i}`);
    const reads = c.pipeline();
    for (let i = 0; i < count; i++) reads.get(`${unique}:p:${i}`);
    const [written, read] = await Promise.all([writes.exec(), reads.exec()]);
    expect(written?.every(([error, reply]) => error === null && reply === 'OK')).toBe(true);
    expect(read?.map(([error, reply]) => (error === null ? reply : error))).toEqual(Array.from({ length: count }, (_, i) => `value-${i}`));
  }, 30000);

  it('stores and returns a value of several MB byte for byte', async () => {
    const c = await connect();
    const value = randomBytes(4 * 1024 * 1024 + 3);
    expect(await c.set(`${unique}:big`, value)).toBe('OK');
    expect(await c.strlen(`${unique}:big`)).toBe(value.length);
    const back = await c.getBuffer(`${unique}:big`);
    expect(back && Buffer.compare(back, value)).toBe(0);
  }, 30000);

  it('delivers pub/sub messages between two connections through the balancer', async () => {
    const subscriber = await connect();
    const publisher = await connect();
    const channel = `${unique}:channel`;
    const received = new Promise<string>((resolve) => subscriber.once('message', (_channel: string, message: string) => resolve(message)));
    expect(await subscriber.subscribe(channel)).toBe(1);
    expect(await publisher.publish(channel, 'spliced')).toBe(1);
    expect(await received).toBe('spliced');
  });
});
