/**
 * Reloads and drains an operator can see, against a real `l4lb run -c FILE --pidfile PIDFILE`:
 *
 * - `l4lb reload -c FILE` (POST /reload): a good file exits 0 and /stats shows its sha256; a move
 *   of the listener logs the new 'listening' line; a refused file exits 1 with every problem on
 *   stderr while the previous configuration still serves; /metrics counts both.
 * - SIGTERM with a connection open: the admin API keeps answering for the whole drain (/stats
 *   with `drain`, `l4lb status` saying so, /metrics' l4lb_draining), refuses changes and reloads
 *   with 503, and the process exits 0, its pidfile removed, once the connection ends.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli, type CliChild, type CliResult } from './helpers/child.js';
import { metricValue } from './helpers/metrics.js';
import { connectClient, freePort, readLine, startNamedServer, type TestServer } from './helpers/net.js';

const TOKEN = 'reload-test-token-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'l4lb-reload-'));
let servers: TestServer[] = [];
const children: CliChild[] = [];

beforeAll(async () => {
  servers = await Promise.all(['left', 'right'].map((name) => startNamedServer(name)));
});

afterEach(async () => {
  for (const child of children.splice(0)) await child.kill();
});

afterAll(async () => {
  await Promise.all(servers.map((server) => server.close()));
  rmSync(dir, { recursive: true, force: true });
});

function cli(...args: string[]): Promise<CliResult> {
  return runCli(args);
}

function configText(adminPort: number, listenPort: number, drain = '30s'): string {
  return JSON.stringify({
    admin: { listen: `127.0.0.1:${adminPort}`, token: TOKEN },
    services: [
      {
        name: 'db',
        listen: `127.0.0.1:${listenPort}`,
        timeouts: { drain },
        backends: [{ name: 'left', address: `127.0.0.1:${servers[0].port}` }],
      },
    ],
  });
}

async function api(adminPort: number, path: string, init: RequestInit = {}): Promise<{ status: number; body: unknown; text: string }> {
  const response = await fetch(`http://127.0.0.1:${adminPort}${path}`, { ...init, headers: { authorization: `Bearer ${TOKEN}` } });
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, body, text };
}

async function metrics(adminPort: number) {
  return parsePrometheusTextFormat((await api(adminPort, '/metrics')).text);
}

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Starts `l4lb run` on a fresh file; resolves once it listens, with its ports and files. */
async function startRun(name: string, drain?: string) {
  const adminPort = await freePort();
  const listenPort = await freePort();
  const file = join(dir, `${name}.json`);
  const pidfile = join(dir, `${name}.pid`);
  writeFileSync(file, configText(adminPort, listenPort, drain));
  const run = startCli(['run', '-c', file, '--pidfile', pidfile]);
  children.push(run);
  await run.waitForRecord('admin API listening');
  return { run, adminPort, listenPort, file, pidfile };
}

describe('l4lb reload -c FILE', () => {
  it('reloads a good file (exit 0, the new hash in /stats, the moved listener logged); refuses a bad one (exit 1, every problem, the old one serves); counts both', async () => {
    const { run, adminPort, file, pidfile } = await startRun('reload');
    expect(readFileSync(pidfile, 'utf8').trim()).toBe(String(run.child.pid));
    const startHash = sha256(file);
    const before = (await api(adminPort, '/stats')).body as { config: { hash: string }; lastReload: unknown };
    expect(before.config.hash).toBe(startHash);
    expect(before.lastReload).toBeNull();

    const movedTo = await freePort();
    writeFileSync(file, configText(adminPort, movedTo));
    const startedAt = Date.now();
    const good = await cli('reload', '-c', file);
    expect(good.stderr).toBe('');
    expect(good.code).toBe(0);
    expect(good.stdout).toBe(`reloaded ${file} (sha256 ${sha256(file)})\n`);
    expect(await run.waitForRecord('listening', (record) => record.listen === `127.0.0.1:${movedTo}`)).toMatchObject({ service: 'db' });
    const after = (await api(adminPort, '/stats')).body as { config: { hash: string }; lastReload: { result: string; hash: string; trigger: string } };
    expect(after.config.hash).toBe(sha256(file));
    expect(after.lastReload).toMatchObject({ result: 'success', hash: sha256(file), trigger: 'admin API' });

    const goodText = readFileSync(file, 'utf8');
    const bad = JSON.parse(goodText) as { services: Record<string, unknown>[] };
    bad.services[0].balance = 'fastest';
    bad.services[0].retries = -1;
    writeFileSync(file, JSON.stringify(bad));
    const refused = await cli('reload', '-c', file);
    expect(refused.code).toBe(1);
    const lines = refused.stderr.trim().split('\n');
    expect(lines[0]).toBe('l4lb: reload refused: still running the previous configuration');
    expect(lines.filter((line) => line.includes('services[0].balance'))).toHaveLength(1);
    expect(lines.filter((line) => line.includes('services[0].retries'))).toHaveLength(1);
    // The previous configuration still serves, on the port the good reload moved it to.
    const client = await connectClient(movedTo);
    expect(await readLine(client)).toBe('left');
    client.destroy();
    const stats = (await api(adminPort, '/stats')).body as { config: { hash: string }; lastReload: { result: string; problems: string[] } };
    expect(stats.config.hash).toBe(createHash('sha256').update(goodText).digest('hex'));
    expect(stats.lastReload.result).toBe('failure');
    expect(stats.lastReload.problems.length).toBe(lines.length - 1);

    // Another file naming the same admin API: refused, since l4lb only re-reads its own.
    const other = join(dir, 'other.json');
    writeFileSync(other, goodText);
    const elsewhere = await cli('reload', '-c', other);
    expect(elsewhere.code).toBe(2);
    expect(elsewhere.stderr).toBe(`l4lb: the l4lb at http://127.0.0.1:${adminPort} runs ${file}, not ${other}: it re-reads its own file (edit that one, or restart l4lb with -c ${other}); nothing was reloaded\n`);

    const families = await metrics(adminPort);
    expect(metricValue(families, 'l4lb_config_reloads_total', { result: 'success' })).toBe(1);
    expect(metricValue(families, 'l4lb_config_reloads_total', { result: 'failure' })).toBe(1);
    expect(metricValue(families, 'l4lb_config_last_reload_successful', {})).toBe(0);
    const lastSuccess = metricValue(families, 'l4lb_config_last_reload_success_timestamp_seconds', {});
    expect(lastSuccess).toBeGreaterThanOrEqual(Math.floor(startedAt / 1000));
    expect(lastSuccess).toBeLessThanOrEqual(Date.now() / 1000);
    expect(metricValue(families, 'l4lb_config_info', { sha256: stats.config.hash })).toBe(1);
  }, 60_000);

  it('without an admin API: checks the file, then signals the PID of --pidfile', async () => {
    const { run, file, pidfile } = await startRun('pidfile');
    const plain = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    delete plain.admin;
    const noAdmin = join(dir, 'no-admin.json');
    writeFileSync(noAdmin, JSON.stringify(plain));
    const sent = await cli('reload', '-c', noAdmin, '--pidfile', pidfile);
    expect(sent.code).toBe(0);
    expect(sent.stdout).toContain(`sent SIGHUP to l4lb (PID ${run.child.pid})`);
    await run.waitForRecord('SIGHUP: re-reading the configuration');

    writeFileSync(noAdmin, JSON.stringify({ ...plain, services: [{ name: 'db' }] }));
    const invalid = await cli('reload', '-c', noAdmin, '--pidfile', pidfile);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/^l4lb: reload not sent: .* is invalid/);

    const lost = await cli('reload', '-c', noAdmin);
    expect(lost.code).toBe(1);
  }, 60_000);
});

describe('the admin API during a drain', () => {
  it('answers /stats, status and /metrics with the drain, refuses changes, and goes when the last connection ends', async () => {
    const { run, adminPort, listenPort, file, pidfile } = await startRun('drain', '60s');
    const client = await connectClient(listenPort);
    expect(await readLine(client)).toBe('left');

    process.kill(run.child.pid as number, 'SIGTERM');
    const stopping = await run.waitForRecord('stopping: no new connections, draining open ones');

    const stats = await api(adminPort, '/stats');
    expect(stats.status).toBe(200);
    const drain = (stats.body as { drain: { signal: string; connections: number; deadline: string; remainingMs: number } }).drain;
    expect(drain).toMatchObject({ signal: 'SIGTERM', connections: 1, deadline: stopping.deadline });
    expect(drain.remainingMs).toBeGreaterThan(0);
    expect(drain.remainingMs).toBeLessThanOrEqual(60_000);

    const status = await cli('status', '-c', file);
    expect(status.code).toBe(0);
    expect(status.stdout.split('\n')[0]).toMatch(/^STOPPING \(SIGTERM at .*\): no new connections; draining 1 open connection, ended at /);

    const families = await metrics(adminPort);
    expect(metricValue(families, 'l4lb_draining', {})).toBe(1);
    expect(metricValue(families, 'l4lb_drain_connections', {})).toBe(1);

    const change = await api(adminPort, '/services/db/backends/left/state', { method: 'POST', body: '{"state":"draining"}' });
    expect(change.status).toBe(503);
    expect(change.body).toMatchObject({ error: { code: 'stopping' } });
    const reload = await cli('reload', '-c', file);
    expect(reload.code).toBe(1);
    expect(reload.stderr).toMatch(/^l4lb: l4lb is stopping \(SIGTERM\): draining 1 connection\(s\) until /);

    // The open connection still works; when it ends, l4lb exits 0 and removes its pidfile.
    client.write('bye\n');
    expect(await readLine(client)).toBe('bye');
    client.end();
    expect(await run.exited).toBe(0);
    expect(existsSync(pidfile)).toBe(false);
    await expect(fetch(`http://127.0.0.1:${adminPort}/stats`)).rejects.toThrow();
  }, 60_000);
});
