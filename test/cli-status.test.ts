/**
 * `l4lb status` and `l4lb drain|enable|maintenance` against a real `l4lb run -c FILE` process with
 * an admin API: a drained backend's open connection continues and completes while new clients go
 * elsewhere; the status table; unknown names exit 2 listing the valid ones; an unreachable API is
 * one line and exit 1; the token comes from --token or the file.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminUrlOf, formatStatus } from '../src/cli/status.js';
import type { ServiceStatusStats } from '../src/proxy/index.js';
import { runCli, startCli, type CliChild, type CliResult } from './helpers/child.js';
import { connectClient, freePort, readLine, startNamedServer, type TestServer } from './helpers/net.js';

const TOKEN = 'cli-test-token-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'l4lb-status-'));
const file = join(dir, 'l4lb.json');
let servers: TestServer[] = [];
let run: CliChild | undefined;
let listenPort = 0;
let adminUrl = '';

beforeAll(async () => {
  servers = await Promise.all(['left', 'right'].map((name) => startNamedServer(name)));
  listenPort = await freePort();
  const adminPort = await freePort();
  adminUrl = `http://127.0.0.1:${adminPort}`;
  writeFileSync(
    file,
    JSON.stringify({
      admin: { listen: `127.0.0.1:${adminPort}`, token: TOKEN },
      services: [
        {
          name: 'db',
          listen: `127.0.0.1:${listenPort}`,
          balance: 'maglev',
          tableSize: 251,
          healthCheck: { type: 'tcp', interval: '200ms' },
          backends: servers.map((server, i) => ({ name: ['left', 'right'][i], address: `127.0.0.1:${server.port}` })),
        },
      ],
    }),
  );
  run = startCli(['run', '-c', file]);
  await run.waitForRecord('admin API listening');
});

afterAll(async () => {
  await run?.kill();
  await Promise.all(servers.map((server) => server.close()));
  rmSync(dir, { recursive: true, force: true });
});

function cli(...args: string[]): Promise<CliResult> {
  return runCli(args);
}

/** With `env` added to this process's environment (L4LB_TOKEN removed unless given). */
function cliWith(env: Record<string, string>, ...args: string[]): Promise<CliResult> {
  return runCli(args, env);
}

describe('drain via the CLI', () => {
  it('keeps the open connection going to the end; new clients go to the other backend', async () => {
    const open = await connectClient(listenPort, '127.5.0.1');
    const drained = await readLine(open);
    const other = drained === 'left' ? 'right' : 'left';

    const result = await cli('drain', 'db', drained, '-c', file);
    expect(result).toEqual({ code: 0, stdout: `db/${drained}: active -> draining\n`, stderr: '' });

    // New clients, from sources that hash anywhere, all go to the other backend.
    for (let i = 2; i < 12; i++) {
      const socket = await connectClient(listenPort, `127.5.0.${i}`);
      expect(await readLine(socket)).toBe(other);
      socket.destroy();
    }
    // The drained backend's open connection still works and completes normally.
    open.write('still here\n');
    expect(await readLine(open)).toBe('still here');
    const ended = new Promise<void>((resolve) => open.once('end', () => resolve()));
    open.resume();
    open.end();
    await ended;

    const status = await cli('status', '--admin', adminUrl, '--token', TOKEN);
    expect(status.code).toBe(0);
    const lines = status.stdout.split('\n');
    expect(lines[0]).toMatch(/^db {2}listen 127\.0\.0\.1:\d+ {2}check tcp every 200 ms, rise 2, fall 3 {2}connections \d+ now, \d+ total/);
    expect(lines[1].trim().split(/\s{2,}/).map((cell) => cell.trim())).toEqual(['BACKEND', 'ADDRESS', 'HEALTH', 'STATE', 'NOW', 'TOTAL', 'FAILED', 'UP', 'DOWN', 'LAST CHECK']);
    const row = lines.find((line) => line.trimStart().startsWith(`${drained} `)) ?? '';
    expect(row.trim().split(/\s{2,}/).slice(2, 4)).toEqual(['up', 'draining']);

    expect((await cli('maintenance', 'db', drained, '-c', file)).stdout).toBe(`db/${drained}: draining -> maintenance\n`);
    expect((await cli('enable', 'db', drained, '-c', file)).stdout).toBe(`db/${drained}: maintenance -> active\n`);
    const back = await connectClient(listenPort, '127.5.0.1');
    expect(await readLine(back)).toBe(drained); // its own clients return
    back.destroy();
  }, 30_000);
});

describe('errors', () => {
  it('unknown service or backend: exit 2 with the valid names', async () => {
    expect(await cli('drain', 'db', 'middle', '-c', file)).toEqual({ code: 2, stdout: '', stderr: 'l4lb: service "db" has no backend "middle" (backends: left, right)\n' });
    expect(await cli('drain', 'cache', 'left', '-c', file)).toEqual({ code: 2, stdout: '', stderr: 'l4lb: no service "cache" (services: db)\n' });
  }, 30_000);

  it('no or wrong token: exit 1 saying so', async () => {
    const none = await cli('status', '--admin', adminUrl);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe(`l4lb: the admin API at ${adminUrl} refused the request: this admin API needs "Authorization: Bearer <token>" (see --token)\n`);
    expect((await cli('status', '--admin', adminUrl, '--token', 'nope-nope-nope-nope')).stderr).toContain('refused the request: wrong token');
  }, 30_000);

  it('unreachable admin API: one line, exit 1; a bad URL: exit 2', async () => {
    const port = await freePort();
    expect(await cli('status', '--admin', `http://127.0.0.1:${port}`)).toEqual({
      code: 1,
      stdout: '',
      stderr: `l4lb: cannot reach the admin API at http://127.0.0.1:${port}: ECONNREFUSED (is l4lb running with admin.listen there? see --admin)\n`,
    });
    expect(await cli('status', '--admin', 'not a url')).toEqual({ code: 2, stdout: '', stderr: 'l4lb: --admin "not a url": expected an address such as 127.0.0.1:9900 or a URL such as http://127.0.0.1:9900\n' });
    const missing = await cli('drain', 'db');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("missing required argument 'backend'");
  }, 30_000);
});

describe('formatStatus', () => {
  it('prints kernel services: table, slots and nft counters per backend', () => {
    const text = formatStatus([], {
      kernel: [
        {
          service: 'web-nat', mode: 'nat', table: 'inet l4lb_nat', vip: '203.0.113.100:80', slots: 13, conntrack: 4,
          backends: [
            { name: 'b1', address: '192.0.2.11:80', state: 'active', health: 'up', slots: 13, packets: 120, bytes: 4096 },
            { name: 'b2', address: '192.0.2.12:80', state: 'active', health: 'down', slots: 0, packets: 7, bytes: 300 },
          ],
        },
      ],
    });
    expect(text).toContain('web-nat  nat table inet l4lb_nat  vip 203.0.113.100:80  13 slots  flows 4');
    expect(text).toMatch(/b1\s+192\.0\.2\.11:80\s+up\s+active\s+13\s+120\s+4\.0 KiB/);
    expect(text).toMatch(/b2\s+192\.0\.2\.12:80\s+down\s+active\s+0\s+7/);
  });

  it('prints passthrough listeners: clients being inspected, and inspections by result and route, most first', () => {
    const text = formatStatus([], {
      listeners: [
        {
          listener: '127.0.0.1:8443', owner: 'listeners[0]', listen: { host: '127.0.0.1', port: 8443 }, inspecting: 2,
          inspections: [
            { result: 'sni', route: 'name', count: 120 },
            { result: 'not-tls', route: 'default', count: 3 },
            { result: 'timeout', route: 'none', count: 1 },
            { result: 'malformed', route: 'none', count: 0 },
          ],
        },
      ],
    });
    const lines = text.split('\n');
    expect(lines[0]).toBe('listeners[0]  listen 127.0.0.1:8443  TLS passthrough by SNI  inspecting 2 now, 124 inspected');
    expect(lines[1]).toBe('  sni → name 120, not-tls → default 3, timeout → none 1');
  });

  it('prints dsr services: slots and pinned flows per backend, no packet counters (the director has none)', () => {
    const text = formatStatus([], {
      kernel: [
        {
          service: 'web', mode: 'dsr', table: 'ip l4lb_dsr', vip: '192.0.2.200:80', slots: 31, pins: 60,
          backends: [
            { name: 'b1', address: '203.0.113.11:80', state: 'active', health: 'up', slots: 20, pins: 41 },
            { name: 'b2', address: '203.0.113.12:80', state: 'draining', health: 'up', slots: 0, pins: 19 },
            { name: 'b3', address: '203.0.113.13:80', state: 'active', health: 'up', slots: 11 },
          ],
        },
      ],
    });
    expect(text.split('\n')).toEqual([
      'web  dsr table ip l4lb_dsr  vip 192.0.2.200:80  31 slots  pins 60',
      '  BACKEND  ADDRESS          HEALTH  STATE     SLOTS  PINS',
      '  b1       203.0.113.11:80  up      active    20     41',
      '  b2       203.0.113.12:80  up      draining  0      19',
      '  b3       203.0.113.13:80  up      active    11     -',
      '',
    ]);
  });

  it('marks backups, shows a slow-start ramp, passive checks and unchecked backends', () => {
    const row = { current: 0, total: 0, failures: 0, bytesUp: 0, bytesDown: 0, state: 'active' as const, since: '', backup: false, slowStart: 1 };
    const text = formatStatus([
      {
        name: 'db', listen: { host: '::1', port: 6432 }, current: 1, queued: 0, total: 2048, refused: 3, bytesUp: 1536, bytesDown: 5 * 1024 * 1024, buffered: 0,
        rejected: {} as ServiceStatusStats['rejected'],
        localErrors: {},
        pausedRefused: 0,
        healthCheck: { type: 'redis', interval: 2000, timeout: 2000, rise: 2, fall: 3, initial: 'up' },
        backends: [
          { ...row, name: 'r1', address: '10.0.0.1:6379', health: 'up', slowStart: 0.4, reason: 'PONG', lastCheck: { ok: true, source: 'active', durationMs: 0.7, detail: 'PONG', at: '' } },
          { ...row, name: 'r2', address: '10.0.0.2:6379', health: 'down', reason: 'x', lastCheck: { ok: false, source: 'passive', durationMs: 0, detail: 'connect: passive: 1 consecutive connection failure from live traffic', at: '' } },
          { ...row, name: 'r3', address: '10.0.0.3:6379', health: 'up', backup: true, state: 'maintenance', reason: 'not checked', lastCheck: null },
        ],
      },
    ]);
    expect(text.split('\n')).toEqual([
      'db  listen [::1]:6432  check redis every 2000 ms, rise 2, fall 3  connections 1 now, 2048 total, 0 queued, 3 refused  bytes up 1.5 KiB, down 5.0 MiB',
      '  BACKEND      ADDRESS        HEALTH               STATE        NOW  TOTAL  FAILED  UP   DOWN  LAST CHECK',
      '  r1           10.0.0.1:6379  up (slow start 40%)  active       0    0      0       0 B  0 B   ok PONG (0.7 ms)',
      '  r2           10.0.0.2:6379  down                 active       0    0      0       0 B  0 B   FAIL (passive) connect: passive: 1 consecutive connection failure from live traffic (0 ms)',
      '  r3 (backup)  10.0.0.3:6379  up                   maintenance  0    0      0       0 B  0 B   -',
      '',
    ]);
  }, 30_000);
});

describe('the token without a command line that ps shows, --admin without http://', () => {
  it('--token-file, $L4LB_TOKEN; --admin HOST:PORT', async () => {
    const address = adminUrl.replace('http://', '');
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    expect((await cli('status', '--admin', address, '--token-file', tokenFile)).code).toBe(0);
    expect((await cliWith({ L4LB_TOKEN: TOKEN }, 'status', '--admin', address)).code).toBe(0);
    expect((await cliWith({ L4LB_TOKEN: 'wrong-token-0123456789' }, 'status', '--admin', address)).stderr).toContain('refused the request: wrong token');
    const missing = await cli('status', '--admin', address, '--token-file', join(dir, 'no-such-token'));
    expect(missing).toEqual({ code: 2, stdout: '', stderr: `l4lb: --token-file "${join(dir, 'no-such-token')}": cannot read it (ENOENT)\n` });
  }, 30_000);

  it.each([
    ['127.0.0.1:9000', 'http://127.0.0.1:9000'],
    ['[::1]:9000', 'http://[::1]:9000'],
    [':9000', 'http://127.0.0.1:9000'],
    ['9000', 'http://127.0.0.1:9000'],
    ['http://10.0.0.1:9000', 'http://10.0.0.1:9000'],
  ])('--admin %s means %s', (given, url) => {
    expect(adminUrlOf(given)).toBe(url);
  });
});

describe('reload', () => {
  it('SIGHUP with a new admin.token: the old token is refused, the new one works', async () => {
    const config = JSON.parse(readFileSync(file, 'utf8')) as { admin: { token: string } };
    config.admin.token = 'rotated-token-9876543210';
    writeFileSync(file, JSON.stringify(config));
    (run as CliChild).child.kill('SIGHUP');
    await (run as CliChild).waitForRecord('reloaded');
    expect((await cli('status', '--admin', adminUrl, '--token', TOKEN)).stderr).toContain('refused the request: wrong token');
    expect((await cli('status', '-c', file)).code).toBe(0);
  }, 30_000);
});
