/**
 * Backends from a real DNS server under continuous load: Debian's dnsmasq on a loopback port
 * answers A records from a hosts file (re-read on SIGHUP) and SRV records from a conf file
 * (read at start: dnsmasq is restarted by PID to change them). Clients connect without pause from
 * fixed source addresses (the hash key), so which backend a client reaches is deterministic;
 * each change of the records is followed by a full round of every client, and the clients whose
 * backend changed are counted: with rendezvous hashing exactly the changed address's clients move,
 * with Maglev those plus the few its near-minimal disruption moves. No connection fails, and when
 * the DNS server stops the last good set is kept (and /stats and /metrics say so).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin } from '../src/admin/index.js';
import type { Balance, Config, DnsBackendConfig, HealthCheckConfig } from '../src/config/index.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import type { ResolutionEvent } from '../src/services/index.js';
import { proxyService } from './helpers/config.js';
import { captureLog, type CapturedLog } from './helpers/log.js';
import { connectClient, freePort, readAll, readLine } from './helpers/net.js';
import { requirement } from './helpers/skip.js';

const dnsmasqMissing = spawnSync('dnsmasq', ['--version']).error === undefined ? undefined : 'dnsmasq is not installed (apt-get install dnsmasq)';
const needs = requirement('backends from DNS against dnsmasq', dnsmasqMissing);

/** A dnsmasq answering for *.test from files the test rewrites; stopped by PID. */
class Dnsmasq {
  private child: ChildProcess | undefined;
  private stderr = '';
  private readonly waiters: { text: string; from: number; resolve: () => void }[] = [];

  constructor(
    readonly port: number,
    private readonly hostsFile: string,
    private readonly confFile: string,
  ) {}

  /** Starts it and resolves once it has read its hosts file. */
  async start(): Promise<void> {
    const reads = this.count(`read ${this.hostsFile}`);
    const child = spawn('dnsmasq', [
      '--keep-in-foreground',
      `--port=${this.port}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--no-resolv',
      '--no-hosts',
      '--local=/test/',
      `--addn-hosts=${this.hostsFile}`,
      `--conf-file=${this.confFile}`,
      '--pid-file=',
      `--user=${userInfo().username}`,
      '--log-facility=-',
    ]);
    this.child = child;
    child.stderr.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString('utf8');
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        const waiter = this.waiters[i];
        if (this.stderr.indexOf(waiter.text, waiter.from) >= 0) {
          this.waiters.splice(i, 1);
          waiter.resolve();
        }
      }
    });
    const exited = once(child, 'exit').then(([code]) => {
      throw new Error(`dnsmasq exited (${String(code)}): ${this.stderr}`);
    });
    await Promise.race([this.after(reads, `read ${this.hostsFile}`), exited]);
  }

  private count(text: string): number {
    return this.stderr.split(text).length - 1;
  }

  /** Resolves once `text` has been logged more than `seen` times. */
  private after(seen: number, text: string): Promise<void> {
    let from = 0;
    for (let i = 0; i <= seen; i++) {
      const at = this.stderr.indexOf(text, from);
      if (at < 0) return new Promise((resolve) => this.waiters.push({ text, from, resolve }));
      from = at + text.length;
    }
    return Promise.resolve();
  }

  /** Rewrites the hosts file and has dnsmasq re-read it (SIGHUP); resolves once it has. */
  async hosts(lines: readonly string[]): Promise<void> {
    const reads = this.count(`read ${this.hostsFile}`);
    writeFileSync(this.hostsFile, `${lines.join('\n')}\n`);
    this.child?.kill('SIGHUP');
    await this.after(reads, `read ${this.hostsFile}`);
  }

  /** SRV records are read at start only: rewrite the conf file and restart dnsmasq by PID. */
  async services(lines: readonly string[]): Promise<void> {
    await this.stop();
    writeFileSync(this.confFile, `${lines.join('\n')}\n`);
    await this.start();
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  }
}

const BACKEND_HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
/** Fixed client sources: the hash key (source-ip), so each one's backend is deterministic. */
const SOURCES = Array.from({ length: 96 }, (_, i) => `127.88.${1 + (i >> 5)}.${10 + (i & 31) * 7}`);

let directory = '';
let dns: Dnsmasq;
let backendPort = 0;
const backends: Server[] = [];

beforeAll(async () => {
  if (needs.skip) return;
  if (dnsmasqMissing !== undefined) throw new Error(dnsmasqMissing);
  directory = mkdtempSync(join(tmpdir(), 'l4lb-dns-'));
  writeFileSync(join(directory, 'hosts'), '');
  writeFileSync(join(directory, 'conf'), '');
  dns = new Dnsmasq(await freePort(), join(directory, 'hosts'), join(directory, 'conf'));
  await dns.start();
  // One backend per loopback address, all on one port: each answers its own address, then echoes.
  backendPort = await freePort();
  for (const host of BACKEND_HOSTS) {
    const server = createServer((socket) => {
      socket.on('error', () => {});
      socket.end(`${host}\n`);
    });
    server.listen(backendPort, host);
    await once(server, 'listening');
    backends.push(server);
  }
});

afterAll(async () => {
  await dns?.stop();
  await Promise.all(backends.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  if (directory !== '') rmSync(directory, { recursive: true, force: true });
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A client: connect from `source`, read the backend's greeting (its address). */
async function visit(port: number, source: string): Promise<string> {
  const socket = await connectClient(port, source);
  try {
    return await readLine(socket);
  } finally {
    socket.destroy();
  }
}

/** Clients connecting without pause (round after round of every source) until stopped; every failure counted. */
class Load {
  connections = 0;
  failures: string[] = [];
  private running = true;
  private readonly done: Promise<void>;

  constructor(private readonly port: number) {
    this.done = Promise.all(Array.from({ length: 4 }, (_, lane) => this.lane(lane))).then(() => undefined);
  }

  private async lane(lane: number): Promise<void> {
    for (let i = lane; this.running; i += 4) {
      const source = SOURCES[i % SOURCES.length];
      await this.one(source);
    }
  }

  async one(source: string): Promise<string | undefined> {
    try {
      const name = await visit(this.port, source);
      this.connections++;
      return name;
    } catch (error) {
      this.failures.push(`${source}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      return undefined;
    }
  }

  /** Every source once: its backend now. */
  async round(): Promise<Map<string, string | undefined>> {
    const result = new Map<string, string | undefined>();
    for (let i = 0; i < SOURCES.length; i += 8) {
      const batch = SOURCES.slice(i, i + 8);
      const names = await Promise.all(batch.map((source) => this.one(source)));
      batch.forEach((source, j) => result.set(source, names[j]));
    }
    return result;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

/** Clients whose backend changed between two rounds: those of `changed` (to or from it) and the others. */
function moved(before: ReadonlyMap<string, string | undefined>, after: ReadonlyMap<string, string | undefined>, changed: string): { ofChanged: number; others: number } {
  let ofChanged = 0;
  let others = 0;
  for (const [source, was] of before) {
    const now = after.get(source);
    if (now === was) continue;
    if (now === changed || was === changed) ofChanged++;
    else others++;
  }
  return { ofChanged, others };
}

const CHECK: HealthCheckConfig = { type: 'tcp', interval: 200, timeout: 1000, rise: 1, fall: 3, initial: 'down' };

interface Running {
  readonly balancer: Balancer;
  readonly port: number;
  readonly log: CapturedLog;
  /** Resolves when a query of the entry has ended as `match` says. */
  resolution(match: (event: ResolutionEvent) => boolean): Promise<ResolutionEvent>;
  /** Resolves when the service runs with exactly `names` and each is healthy. */
  serving(names: readonly string[]): Promise<void>;
}

async function run(entry: DnsBackendConfig, balance: Balance): Promise<Running> {
  const log = captureLog();
  const config: Config = {
    resolvers: [{ host: '127.0.0.1', port: dns.port }],
    services: [proxyService([], { balance, dnsBackends: [entry], healthCheck: CHECK, retries: 3, tableSize: 65537 })],
  };
  const balancer = await startBalancer(config, { logger: log.logger });
  cleanups.push(() => balancer.close(0));
  const port = balancer.address('svc').port;
  const resolution = (match: (event: ResolutionEvent) => boolean): Promise<ResolutionEvent> =>
    new Promise((resolve) => {
      const listener = (event: ResolutionEvent): void => {
        if (!match(event)) return;
        balancer.dns.off('resolution', listener);
        resolve(event);
      };
      balancer.dns.on('resolution', listener);
    });
  const serving = (names: readonly string[]): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => {
        const rows = balancer.stats()[0]?.backends ?? [];
        const now = rows.map((row) => row.name).sort();
        if (JSON.stringify(now) !== JSON.stringify([...names].sort()) || rows.some((row) => row.health !== 'up')) return;
        balancer.events.off('health', check);
        balancer.dns.off('backends', onBackends);
        resolve();
      };
      // A DNS change is applied on the balancer's queue, after the watcher's event: look again then.
      const onBackends = (): void => void balancer.settled().then(check);
      balancer.events.on('health', check);
      balancer.dns.on('backends', onBackends);
      check();
    });
  return { balancer, port, log, resolution, serving };
}

const at = (host: string): string => `${host}:${backendPort}`;

describe.skipIf(needs.skip)(needs.title, () => {
  for (const balance of ['rendezvous', 'maglev'] as const) {
    it(`${balance}: A records added, reordered, removed under load; the DNS server stopped keeps the last good set`, async () => {
      await dns.hosts(['127.0.0.2 db.test', '127.0.0.3 db.test', '127.0.0.4 db.test']);
      const running = await run({ type: 'dns', name: 'db.test', port: backendPort, refresh: 200, weight: 1 }, balance);
      await running.serving([at('127.0.0.2'), at('127.0.0.3'), at('127.0.0.4')]);
      const load = new Load(running.port);
      cleanups.push(() => load.stop());
      const figures: Record<string, { ofChanged: number; others: number }> = {};

      // Add an address: only clients that now reach it move.
      const start = await load.round();
      await dns.hosts(['127.0.0.2 db.test', '127.0.0.3 db.test', '127.0.0.4 db.test', '127.0.0.5 db.test']);
      await running.serving([at('127.0.0.2'), at('127.0.0.3'), at('127.0.0.4'), at('127.0.0.5')]);
      const added = await load.round();
      figures.add = moved(start, added, '127.0.0.5');

      // Reorder the file (dnsmasq also rotates its answers): three more answers, no client moves.
      await dns.hosts(['127.0.0.5 db.test', '127.0.0.3 db.test', '127.0.0.2 db.test', '127.0.0.4 db.test']);
      for (let i = 0; i < 3; i++) expect(await running.resolution(() => true)).toMatchObject({ result: 'ok', changed: false });
      const reordered = await load.round();
      figures.reorder = moved(added, reordered, '');

      // Remove an address: only its clients move.
      await dns.hosts(['127.0.0.5 db.test', '127.0.0.2 db.test', '127.0.0.4 db.test']);
      await running.serving([at('127.0.0.2'), at('127.0.0.4'), at('127.0.0.5')]);
      const removed = await load.round();
      figures.remove = moved(reordered, removed, '127.0.0.3');

      // The DNS server goes away: the last good set is kept, said once, and shown.
      await dns.stop();
      await running.resolution((event) => event.result === 'failed');
      await running.resolution((event) => event.result === 'failed');
      const kept = await load.round();
      figures.dnsDown = moved(removed, kept, '');
      const [stats] = running.balancer.stats();
      expect(stats?.backends.map((row) => row.name).sort()).toEqual([at('127.0.0.2'), at('127.0.0.4'), at('127.0.0.5')]);
      expect(stats?.dns?.[0]).toMatchObject({ entry: `dns db.test:${backendPort}`, state: 'failed', lastError: 'ECONNREFUSED', backends: [at('127.0.0.2'), at('127.0.0.4'), at('127.0.0.5')] });
      expect(running.log.records.filter((record) => record.msg === 'dns: no answer: keeping the last good backends')).toHaveLength(1);
      const admin = await startAdmin(running.balancer, { listen: { host: '127.0.0.1', port: 0 } });
      cleanups.push(() => admin.close());
      const metrics = await (await fetch(`http://127.0.0.1:${admin.address().port}/metrics`)).text();
      expect(metrics).toContain(`l4lb_dns_backends{service="svc",entry="dns db.test:${backendPort}"} 3`);
      expect(metrics).toContain(`l4lb_dns_answer_ok{service="svc",entry="dns db.test:${backendPort}"} 0`);
      expect(metrics).toMatch(new RegExp(`l4lb_dns_resolutions_total\\{service="svc",entry="dns db\\.test:${backendPort}",result="failed"\\} [1-9]`));
      expect(metrics).toMatch(new RegExp(`l4lb_dns_last_success_age_seconds\\{service="svc",entry="dns db\\.test:${backendPort}"\\} \\d`));
      await dns.start();

      await load.stop();
      console.log(`${balance}: ${load.connections} connections, ${load.failures.length} failed; moved clients of ${SOURCES.length}: ${JSON.stringify(figures)}`);
      expect(load.failures).toEqual([]);
      expect(figures.add.ofChanged).toBeGreaterThan(0);
      expect(figures.remove.ofChanged).toBeGreaterThan(0);
      expect(figures.reorder).toEqual({ ofChanged: 0, others: 0 });
      expect(figures.dnsDown).toEqual({ ofChanged: 0, others: 0 });
      if (balance === 'rendezvous') {
        // Highest random weight moves exactly the changed backend's clients.
        expect(figures.add.others).toBe(0);
        expect(figures.remove.others).toBe(0);
      } else {
        // Maglev's near-minimal disruption: a few more at most.
        expect(figures.add.others).toBeLessThanOrEqual(Math.ceil(SOURCES.length * 0.05));
        expect(figures.remove.others).toBeLessThanOrEqual(Math.ceil(SOURCES.length * 0.05));
      }
    }, 120_000);
  }

  it('SRV records: targets, ports and priorities; a record added moves only its clients; a new backend starts down until its check passes', async () => {
    await dns.hosts(['127.0.0.2 a.db.test', '127.0.0.3 b.db.test', '127.0.0.4 c.db.test', '127.0.0.5 d.db.test']);
    await dns.services([`srv-host=_pg._tcp.db.test,a.db.test,${backendPort},0,10`, `srv-host=_pg._tcp.db.test,b.db.test,${backendPort},0,10`, `srv-host=_pg._tcp.db.test,d.db.test,${backendPort},5,10`]);
    const running = await run({ type: 'srv', name: '_pg._tcp.db.test', refresh: 200, weight: 1 }, 'rendezvous');
    await running.serving([`a.db.test:${backendPort}`, `b.db.test:${backendPort}`, `d.db.test:${backendPort}`]);
    const rows = running.balancer.stats()[0].backends;
    expect(rows.find((row) => row.name === `d.db.test:${backendPort}`)?.backup).toBe(true);
    const load = new Load(running.port);
    cleanups.push(() => load.stop());
    const before = await load.round();
    expect(new Set(before.values())).toEqual(new Set(['127.0.0.2', '127.0.0.3'])); // the backup serves no one

    const started = new Promise<string>((resolve) => running.balancer.events.once('health', (change) => resolve(`${change.backend} ${change.previous}->${change.health}`)));
    await dns.services([...[`a`, `b`, `c`].map((target) => `srv-host=_pg._tcp.db.test,${target}.db.test,${backendPort},0,10`), `srv-host=_pg._tcp.db.test,d.db.test,${backendPort},5,10`]);
    await running.serving([`a.db.test:${backendPort}`, `b.db.test:${backendPort}`, `c.db.test:${backendPort}`, `d.db.test:${backendPort}`]);
    expect(await started).toBe(`c.db.test:${backendPort} down->up`);
    const after = await load.round();
    const figures = moved(before, after, '127.0.0.4');
    await load.stop();
    console.log(`srv: ${load.connections} connections, ${load.failures.length} failed; moved clients of ${SOURCES.length}: ${JSON.stringify(figures)}`);
    expect(load.failures).toEqual([]);
    expect(figures.ofChanged).toBeGreaterThan(0);
    expect(figures.others).toBe(0);
  }, 120_000);

  it('a name that does not resolve at start: the service starts, refuses clients, says so, and serves once the name resolves', async () => {
    await dns.hosts(['127.0.0.2 other.test']);
    const running = await run({ type: 'dns', name: 'later.test', port: backendPort, refresh: 200, weight: 1 }, 'maglev');
    expect(running.log.records.some((record) => record.msg === "dns: no records yet: the service runs without this entry's backends and adds them when it resolves")).toBe(true);
    expect(running.balancer.stats()[0]?.backends).toEqual([]);
    // No backend at all: the client is closed without a byte (or reset), as when none is usable.
    const refused = await connectClient(running.port, SOURCES[0]);
    expect(await readAll(refused).then((bytes) => bytes.length, () => 0)).toBe(0);
    refused.destroy();
    await dns.hosts(['127.0.0.2 other.test', '127.0.0.3 later.test']);
    await running.serving([at('127.0.0.3')]);
    expect(await visit(running.port, SOURCES[0])).toBe('127.0.0.3');
  }, 60_000);
});
