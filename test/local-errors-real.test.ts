/**
 * The real thing: l4lb (dist/cli.js run) under `prlimit --nofile=256:256`, 1,000 clients at once
 * against a real backend. Its connects fail with EMFILE; none of that may mark the backend down
 * (passive or active), and once the clients are gone new connections reach the backend again,
 * with the EMFILEs counted in l4lb_local_errors_total.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { CLI } from './helpers/child.js';
import { freePort, readLine, startNamedServer } from './helpers/net.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface StatsBackend {
  name: string;
  health: string;
}
interface StatsService {
  name: string;
  current: number;
  backends: StatsBackend[];
}

async function services(admin: number): Promise<StatsService[]> {
  const body = (await (await fetch(`http://127.0.0.1:${admin}/stats`)).json()) as StatsService[] | { services: StatsService[] };
  return Array.isArray(body) ? body : body.services;
}

/** A client that settles once connected and then closed, or failed: never rejects. */
function client(port: number): { socket: Socket; settled: Promise<void> } {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  const settled = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.resume();
  return { socket, settled };
}

it('EMFILE under 1,000 clients: no backend goes down, the metric counts it, and new clients get through afterwards', { timeout: 60_000 }, async () => {
  // Each phase names itself, so a run that stalls says where, with l4lb's last stats and log lines.
  let phase = 'start';
  let lastStats = '';
  let out = '';
  let stalled: NodeJS.Timeout | undefined;
  const stall = new Promise<never>((_, reject) => {
    stalled = setTimeout(() => reject(new Error(`stalled in phase "${phase}"; last /stats: ${lastStats}; l4lb log tail: ${out.slice(-2000)}`)), 50_000);
  });
  cleanups.push(() => clearTimeout(stalled));
  await Promise.race([stall, scenario()]);

  async function scenario(): Promise<void> {
  const server = await startNamedServer('b1');
  cleanups.push(() => server.close());
  const listen = await freePort();
  const admin = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-local-errors-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'l4lb.json');
  writeFileSync(
    file,
    JSON.stringify({
      admin: { listen: `127.0.0.1:${admin}` },
      services: [
        {
          name: 'svc',
          listen: `127.0.0.1:${listen}`,
          maxConnections: 5000,
          // Active checks far apart: before the fix, a backend that passive health marked down stayed down.
          healthCheck: { type: 'tcp', interval: '600s', timeout: '1s', rise: 1, fall: 2, initial: 'fully-up' },
          backends: [{ name: 'b1', address: `127.0.0.1:${server.port}` }],
        },
      ],
    }),
  );
  const child: ChildProcess = spawn('prlimit', ['--nofile=256:256', process.execPath, CLI, 'run', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  cleanups.push(async () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
    await exited;
  });
  phase = 'l4lb starting';
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      if (out.includes('"msg":"admin API listening"')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`l4lb exited ${String(code)}: ${out}`)));
  });

  phase = '1,000 clients';
  const clients = Array.from({ length: 1000 }, () => client(listen));
  // Let every client reach an outcome at l4lb (ended, reset, or spliced and held open), then go.
  await new Promise((resolve) => setImmediate(resolve));
  for (const { socket } of clients) socket.destroy();
  await Promise.all(clients.map(({ settled }) => settled));

  // Pressure over: the connections drain from l4lb (polled until the count is 0).
  phase = 'waiting for current = 0';
  for (;;) {
    const [svc] = await services(admin);
    lastStats = JSON.stringify(svc);
    if (svc.current === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const [svc] = await services(admin);
  expect(svc.backends.map((backend) => [backend.name, backend.health])).toEqual([['b1', 'up']]);

  const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  const counted = /l4lb_local_errors_total\{service="svc",code="EMFILE"\} (\d+)/.exec(metrics);
  expect(Number(counted?.[1] ?? 0)).toBeGreaterThan(0);

  // New clients get through (the listener pause is 100 ms: retried until it is over).
  phase = 'new clients after the pressure';
  let name = '';
  while (name !== 'b1') {
    const next = connect({ host: '127.0.0.1', port: listen });
    next.on('error', () => {});
    name = await readLine(next).catch(() => '');
    next.destroy();
  }
  expect(name).toBe('b1');
  }
});
