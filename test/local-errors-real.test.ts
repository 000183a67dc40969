/**
 * l4lb short of descriptors, for real: the built CLI runs under `prlimit --nofile=128` (it idles
 * at about 22), two backends with a TCP health check (fall 1: one failure marks a backend down;
 * rise 2 every 5 s: a backend marked down stays down for seconds), and 200 clients connect at once
 * and hold on; each sends a PROXY header first, so l4lb accepts many before it connects any. Many cannot be served. What must hold: the backends stay up (/stats), the local
 * errors are counted (/stats, /metrics) and logged once for the burst, and once the clients have
 * gone every new client is served: no `no-backend`, no `connect-failed`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCli, type CliChild } from './helpers/child.js';
import { readLine, startNamedServer, waitUntil, type TestServer } from './helpers/net.js';
import { requirement } from './helpers/skip.js';

const LIMIT = 128;
const CLIENTS = 200;
const TIMEOUT = 60_000;

function missingPrlimit(): string | undefined {
  if (process.platform !== 'linux') return 'Linux only (prlimit)';
  try {
    execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'the prlimit binary (util-linux)';
  }
}

const needs = requirement(`l4lb under prlimit --nofile=${LIMIT} with ${CLIENTS} clients`, missingPrlimit());

const dir = mkdtempSync(join(tmpdir(), 'l4lb-local-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type Outcome = 'served' | 'ended';

/** What every client sends first: the service takes a PROXY header from 127.0.0.1 (see below). */
const HEADER = 'PROXY TCP4 192.0.2.1 127.0.0.1 40000 5432\r\n';

interface Client {
  readonly socket: Socket;
  /** Connected (the kernel completed the handshake, accepted by l4lb or not yet), or closed already. */
  readonly ready: Promise<void>;
  /** Greeted by a backend (served), or closed or reset by l4lb (ended). */
  readonly outcome: Promise<Outcome>;
}

function client(port: number): Client {
  const socket = connect({ host: '127.0.0.1', port });
  socket.setEncoding('utf8');
  const ready = new Promise<void>((resolve) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => resolve());
  });
  const outcome = new Promise<Outcome>((resolve) => {
    socket.on('data', () => resolve('served'));
    socket.on('error', () => resolve('ended'));
    socket.on('end', () => resolve('ended'));
    socket.on('close', () => resolve('ended'));
  });
  return { socket, ready, outcome };
}

/** How many descriptors process `pid` holds now. */
function descriptorsOf(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

function records(run: CliChild, msg: string): Record<string, unknown>[] {
  const found: Record<string, unknown>[] = [];
  for (const line of run.lines) {
    try {
      const record = JSON.parse(line) as Record<string, unknown>;
      if (record.msg === msg) found.push(record);
    } catch {
      // not a log line
    }
  }
  return found;
}

interface Stats {
  services: { localErrors: Record<string, number>; rejected: Record<string, number>; backends: { name: string; health: string; failures: number }[] }[];
}

describe.skipIf(needs.skip)(needs.title, () => {
  let b1: TestServer;
  let b2: TestServer;
  beforeAll(() => {
    const missing = missingPrlimit();
    if (missing !== undefined) throw new Error(`missing: ${missing}`);
  });

  it('backends stay up, the shortage is counted and logged once, and nobody is refused no-backend once it has passed', async () => {
    b1 = await startNamedServer('b1');
    b2 = await startNamedServer('b2');
    cleanups.push(() => b1.close(), () => b2.close());
    const file = join(dir, 'l4lb.json');
    writeFileSync(
      file,
      JSON.stringify({
        admin: { listen: '127.0.0.1:0' },
        services: [
          {
            name: 'svc',
            listen: '127.0.0.1:0',
            balance: 'roundrobin',
            timeouts: { drain: '1s', proxyHeader: '30s' },
            proxyProtocol: { accept: ['127.0.0.1'] },
            healthCheck: { type: 'tcp', interval: '5s', rise: 2, fall: 1 },
            backends: [
              { name: 'b1', address: `127.0.0.1:${b1.port}` },
              { name: 'b2', address: `127.0.0.1:${b2.port}` },
            ],
          },
        ],
      }),
    );
    const run = startCli(['run', '-c', file], ['prlimit', `--nofile=${LIMIT}:${LIMIT}`]);
    cleanups.push(() => run.kill());
    const listening = await run.waitForRecord('listening');
    const port = Number(String(listening.listen).split(':').pop());
    const adminRecord = await run.waitForRecord('admin API listening');
    const admin = `http://${String(adminRecord.admin)}`;

    // The pressure: 200 clients at once, each held open. l4lb accepts until its descriptors run
    // out (libuv accepts and closes the rest), then each client's PROXY header arrives and its
    // backend connect needs a descriptor there is none of: EMFILE. About 50 can be spliced in the
    // 106 descriptors l4lb has left.
    const clients = Array.from({ length: CLIENTS }, () => client(port));
    cleanups.push(async () => clients.forEach(({ socket }) => socket.destroy()));
    await Promise.all(clients.map(({ ready }) => ready));
    for (const { socket } of clients) if (!socket.destroyed) socket.write(HEADER);
    const outcomes = await Promise.all(clients.map(({ outcome }) => outcome));
    const sockets = clients.map(({ socket }) => socket);
    // The pressure ends: every client leaves, and l4lb gives their descriptors back. (Until it
    // has, the admin API cannot accept either: libuv accepts and closes what it cannot hold.)
    for (const socket of sockets) socket.destroy();
    const pid = run.child.pid as number;
    await waitUntil(() => descriptorsOf(pid) < LIMIT / 2);

    // Not one backend was blamed for it.
    const stats = (await (await fetch(`${admin}/stats`)).json()) as Stats;
    const [service] = stats.services;
    expect(service.backends.map((backend) => [backend.name, backend.health, backend.failures])).toEqual([
      ['b1', 'up', 0],
      ['b2', 'up', 0],
    ]);
    const served = outcomes.filter((outcome) => outcome === 'served').length;
    expect(served).toBeGreaterThan(0);
    expect(served).toBeLessThan(CLIENTS); // the limit did bite
    // Counted, and logged once for the burst, which ends after a quiet second.
    const ended = await run.waitForRecord('local resource shortage ended');
    const localErrors = Object.values(service.localErrors).reduce((sum, count) => sum + count, 0);
    expect(service.localErrors.EMFILE).toBeGreaterThan(0);
    expect(ended).toMatchObject({ errors: { EMFILE: service.localErrors.EMFILE } });
    expect(records(run, 'local resource shortage: not counted against backends; accepting paused while it lasts')).toHaveLength(1);
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).toContain(`l4lb_local_errors_total{service="svc",code="EMFILE"} ${service.localErrors.EMFILE}`);

    // After the pressure: every client is served, by both backends.
    const names = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const socket = connect({ host: '127.0.0.1', port });
      sockets.push(socket);
      socket.write(HEADER);
      names.add(await readLine(socket));
      socket.destroy();
    }
    expect(names).toEqual(new Set(['b1', 'b2']));
    // Access lines are written in batches (at least once a second): wait for the last ones.
    // Lines are written in order, so once the last 20 are in, so are the earlier local-error ones.
    await run.waitForLine(() => records(run, 'connection').filter((record) => record.end === 'client-close').length >= 20);
    const access = records(run, 'connection');
    expect(access.filter((record) => record.end === 'no-backend' || record.end === 'connect-failed')).toEqual([]);
    // Each failed connect is one line (accept errors, if libuv reported any, are counted but have no line).
    const localLines = access.filter((record) => record.end === 'local-error');
    expect(localLines.length).toBeGreaterThan(0);
    expect(localLines.length).toBeLessThanOrEqual(localErrors);
    expect(localLines.every((record) => record.error === 'EMFILE' || record.error === 'ENFILE')).toBe(true);
    console.log(`under --nofile=${LIMIT}: ${served} of ${CLIENTS} clients served, ${localLines.length} local-error lines, local errors ${JSON.stringify(ended.errors)}, refused while paused ${String(ended.refusedWhilePaused)}`);
    expect(records(run, 'backend health changed')).toEqual([]);
    expect(run.stderr()).toBe('');
  }, TIMEOUT);
});
