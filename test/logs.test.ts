/**
 * Logs an operator can read and rotate: failed connections at warn, `log.timestamp: iso`,
 * `accessLog.path` (access lines in a file of their own) reopened on SIGUSR1 after logrotate
 * renamed it, by one process and by every worker of `workers: 2` (the primary forwards the signal).
 */
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/index.js';
import { createLogger, startBalancer } from '../src/proxy/index.js';
import { startCli, type CliChild } from './helpers/child.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog } from './helpers/log.js';
import { closed, connectClient, freePort, readAll, startNamedServer, type TestServer } from './helpers/net.js';

const dir = mkdtempSync(join(tmpdir(), 'l4lb-logs-'));
let servers: TestServer[] = [];
let runs: CliChild[] = [];

afterEach(async () => {
  for (const run of runs) await run.kill();
  runs = [];
  await Promise.all(servers.map((server) => server.close()));
  servers = [];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function lines(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function exchange(port: number, payload: string): Promise<string> {
  const socket = await connectClient(port);
  socket.end(payload);
  return (await readAll(socket)).toString();
}

describe('access line levels', () => {
  it('a failed connection is logged at warn (40), a served one at info (30)', async () => {
    const server = await startNamedServer('up');
    servers.push(server);
    const dead = await freePort();
    const log = captureLog();
    const balancer = await startBalancer(
      configOf(proxyService([backend('up', server.port)], { name: 'good' }), proxyService([backend('gone', dead)], { name: 'bad', retries: 0 })),
      { logger: log.logger },
    );
    try {
      await exchange(balancer.address('good').port, 'x');
      const refused = await connectClient(balancer.address('bad').port);
      refused.end();
      await closed(refused); // no backend took it

      const [first, second] = await log.waitForAccess(2);
      const byService = new Map([first, second].map((record) => [record.service, record]));
      expect(byService.get('good')).toMatchObject({ level: 30, end: 'client-close' });
      expect(byService.get('bad')).toMatchObject({ level: 40, end: 'connect-failed', backend: 'gone' });
    } finally {
      await balancer.close(0);
    }
  });
});

describe('log.timestamp', () => {
  function firstLine(options: Parameters<typeof createLogger>[1]): Record<string, unknown> {
    let text = '';
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        text += chunk.toString();
        done();
      },
    });
    const logger = createLogger(sink, options);
    logger.info('hello');
    return JSON.parse(text.split('\n')[0]) as Record<string, unknown>;
  }

  it('iso writes time as ISO 8601 UTC; the default stays epoch milliseconds', () => {
    expect(firstLine({ timestamp: 'iso' }).time).toMatch(ISO);
    expect(typeof firstLine({}).time).toBe('number');
    expect(typeof firstLine({ timestamp: 'epoch' }).time).toBe('number');
  });

  it('the file says which, and refuses anything else; accessLog.path must be absolute', () => {
    const head = 'services: [{ name: web, listen: 127.0.0.1:7000, backends: [{ name: a, address: 127.0.0.1:7001 }] }]\n';
    expect(parseConfig(`${head}log: { timestamp: iso, level: warn }\naccessLog: { path: /var/log/l4lb/access.log }\n`, 'l4lb.yaml')).toMatchObject({
      log: { timestamp: 'iso', level: 'warn' },
      accessLog: { path: '/var/log/l4lb/access.log' },
    });
    expect(() => parseConfig(`${head}log: { timestamp: rfc3339 }\n`, 'l4lb.yaml')).toThrow(/log\.timestamp/);
    expect(() => parseConfig(`${head}accessLog: { path: access.log }\n`, 'l4lb.yaml')).toThrow(/accessLog\.path.*absolute/);
  });
});

describe('accessLog.path and SIGUSR1', () => {
  for (const workers of [1, 2]) {
    it(`workers: ${workers}: access lines go to the file, not stdout; after a rename, SIGUSR1 starts a new file and the old one keeps its lines`, async () => {
      const server = await startNamedServer('b1');
      servers.push(server);
      const port = await freePort();
      const access = join(dir, `access-${workers}.log`);
      const file = join(dir, `l4lb-${workers}.json`);
      writeFileSync(file, JSON.stringify({ workers, log: { timestamp: 'iso' }, accessLog: { path: access }, services: [{ name: 'svc', listen: `127.0.0.1:${port}`, backends: [{ name: 'b1', address: `127.0.0.1:${server.port}` }] }] }));
      const run = startCli(['run', '-c', file]);
      runs.push(run);
      await run.waitForRecord('listening');
      if (workers > 1) for (const worker of [1, 2]) await run.waitForRecord('worker started', (record) => record.worker === worker);

      expect(await exchange(port, 'before')).toBe('b1\nbefore');
      // Logrotate renames the file, then signals: the line still buffered goes to the renamed file.
      renameSync(access, `${access}.1`);
      process.kill(run.child.pid!, 'SIGUSR1');
      await run.waitForRecord('log files reopened', (record) => record.worker === undefined);
      if (workers > 1) for (const worker of [1, 2]) await run.waitForRecord('log files reopened', (record) => record.worker === worker);
      expect(await exchange(port, 'after')).toBe('b1\nafter');

      process.kill(run.child.pid!, 'SIGTERM');
      expect(await run.exited).toBe(0);
      const rotated = lines(`${access}.1`);
      const fresh = lines(access);
      expect(rotated.map((record) => [record.msg, record.bytesUp])).toEqual([['connection', 6]]);
      expect(fresh.map((record) => [record.msg, record.bytesUp])).toEqual([['connection', 5]]);
      expect(fresh[0].time).toMatch(ISO);
      const stdout = run.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(stdout.filter((record) => record.msg === 'connection')).toEqual([]);
      expect(stdout.every((record) => typeof record.time === 'string' && ISO.test(record.time))).toBe(true);
    }, 30_000);
  }
});
