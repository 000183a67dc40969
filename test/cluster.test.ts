/**
 * `workers: 2` end to end (issue 7): the built CLI as a node:cluster primary with two workers,
 * each test against its own process tree. To know which worker accepted a connection the tests
 * SIGSTOP every other worker (by PID, resumed right after): a stopped process cannot accept, so
 * the kernel's shared accept queue is served by the one left running — deterministic, unlike
 * counting on the kernel's spread. Everything waits on log lines and socket events.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig, type ProxyServiceConfig } from '../src/config/index.js';
import { createPicker, type Algorithm } from '../src/hashing/index.js';
import { flowKey } from '../src/hashing/keys.js';
import { slotHashOf } from '../src/services/index.js';
import { startBackendProcess, type BackendProcess } from './helpers/backend-process.js';
import { startCli, type CliChild } from './helpers/child.js';
import { connectClient, freePort, readAll, readLine, startEchoServer, startNamedServer, startServer, waitUntil, type TestServer } from './helpers/net.js';

const TIMEOUT = 60_000;
const dir = mkdtempSync(join(tmpdir(), 'l4lb-cluster-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type LogRecord = Record<string, unknown>;

function records(run: CliChild, msg: string, match: (record: LogRecord) => boolean = () => true): LogRecord[] {
  const found: LogRecord[] = [];
  for (const line of run.lines) {
    try {
      const record = JSON.parse(line) as LogRecord;
      if (record.msg === msg && match(record)) found.push(record);
    } catch {
      // not a log line
    }
  }
  return found;
}

/** The parent PID of `pid`, or undefined if it is gone (or a zombie). */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? undefined : Number(fields[1]);
  } catch {
    return undefined;
  }
}

/** PIDs of live processes whose command line mentions `file` (a config file unique to one test). */
function processesWith(file: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(file) && parentOf(Number(entry)) !== undefined) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

interface Cluster {
  readonly run: CliChild;
  readonly file: string;
  /** PID of each worker slot as last started. */
  readonly pids: Map<number, number>;
}

let files = 0;
function writeConfig(config: object, file = join(dir, `cluster-${++files}.json`)): string {
  writeFileSync(file, JSON.stringify(config));
  return file;
}

/** Starts `l4lb run` on `config` (workers: 2 added) and waits for both workers and 'listening'. */
async function startCluster(config: object): Promise<Cluster> {
  // Debug: the workers' 'backend … applied' lines say when each applied the primary's verdict.
  const file = writeConfig({ workers: 2, log: { level: 'debug' }, ...config });
  const run = startCli(['run', '-c', file]);
  cleanups.push(async () => {
    // Resume and end every worker this primary started (checked to be its children), then the primary.
    const primary = run.child.pid;
    const live = records(run, 'worker started')
      .map((record) => record.pid as number)
      .filter((pid) => primary !== undefined && parentOf(pid) === primary);
    for (const pid of live) process.kill(pid, 'SIGCONT');
    await run.kill();
    for (const pid of live) if (parentOf(pid) !== undefined) process.kill(pid, 'SIGKILL');
  });
  await run.waitForRecord('listening');
  const pids = new Map<number, number>();
  for (const id of [1, 2]) pids.set(id, (await run.waitForRecord('worker started', (record) => record.worker === id)).pid as number);
  return { run, file, pids };
}

/** Runs `body` with every worker but `id` stopped (SIGSTOP), so only worker `id` can accept. */
async function onlyWorker<T>(cluster: Cluster, id: number, body: () => Promise<T>): Promise<T> {
  const others = [...cluster.pids].filter(([other]) => other !== id).map(([, pid]) => pid);
  for (const pid of others) process.kill(pid, 'SIGSTOP');
  try {
    return await body();
  } finally {
    for (const pid of others) process.kill(pid, 'SIGCONT');
  }
}

async function named(name: string): Promise<TestServer> {
  const server = await startNamedServer(name);
  cleanups.push(() => server.close());
  return server;
}

async function backendProcess(name: string, port?: number): Promise<BackendProcess> {
  const backend = await startBackendProcess(name, port ?? (await freePort()));
  cleanups.push(() => backend.kill());
  return backend;
}

async function greeting(port: number, source?: string): Promise<{ name: string; localPort: number }> {
  const socket = await connectClient(port, source);
  const localPort = socket.localPort as number;
  const name = await readLine(socket);
  socket.destroy();
  return { name, localPort };
}

/** Sends `payload`, half-closes, and resolves with everything echoed back. */
async function echo(port: number, payload: Buffer): Promise<Buffer> {
  const socket = await connectClient(port);
  const back = readAll(socket);
  socket.end(payload);
  const bytes = await back;
  socket.destroy();
  return bytes;
}

const service = (name: string, port: number, backends: { name: string; port: number }[], extra: object = {}): object => ({
  name,
  listen: `127.0.0.1:${port}`,
  timeouts: { drain: '10s' },
  ...extra,
  backends: backends.map((backend) => ({ name: backend.name, address: `127.0.0.1:${backend.port}` })),
});

/** The picker's candidates for `key` in order (attempt 0, 1, …), as the proxy walks them. */
function candidates(config: ProxyServiceConfig): (key: Uint8Array) => string[] {
  const picker = createPicker(config.balance as Algorithm, config.backends, { tableSize: config.tableSize, slotHash: slotHashOf(config) });
  return (key) => {
    const names: string[] = [];
    for (let attempt = 0; ; attempt++) {
      const backend = picker.pick(key, attempt);
      if (backend === undefined) return names;
      names.push(backend.name);
    }
  };
}

/** A real first flight: `openssl s_client -servername db.example.com` (test/fixtures/tls). */
const OPENSSL_HELLO = Buffer.from(readFileSync(new URL('./fixtures/tls/openssl-s_client-db.example.com.hex', import.meta.url), 'utf8').trim(), 'hex');

const SOURCES = Array.from({ length: 30 }, (_, i) => `127.21.${1 + (i >> 4)}.${10 + (i & 15) * 7}`);
const WORKERS = [1, 2];

describe('workers: 2', () => {
  it('relays bytes exactly through both workers, and each accepts connections of its own', async () => {
    const backend = await startEchoServer();
    cleanups.push(() => backend.close());
    const port = await freePort();
    const cluster = await startCluster({ services: [service('svc', port, [{ name: 'echo', port: backend.port }])] });

    // Unforced: 24 concurrent connections, whichever worker the kernel hands them to.
    const payloads = Array.from({ length: 24 }, (_, i) => randomBytes(32_768 + i * 997));
    const echoed = await Promise.all(payloads.map((payload) => echo(port, payload)));
    echoed.forEach((bytes, i) => expect(bytes.equals(payloads[i])).toBe(true));

    // Forced: each worker alone serves 8 more.
    for (const id of WORKERS) {
      await onlyWorker(cluster, id, async () => {
        for (let i = 0; i < 8; i++) {
          const payload = randomBytes(65_536 + i);
          expect((await echo(port, payload)).equals(payload)).toBe(true);
        }
      });
    }
    await cluster.run.waitForLine(() => records(cluster.run, 'connection').length >= 24 + 16);
    const access = records(cluster.run, 'connection');
    expect(access).toHaveLength(40);
    for (const id of WORKERS) expect(access.filter((record) => record.worker === id).length).toBeGreaterThanOrEqual(8);
    expect(access.every((record) => record.end === 'client-close' && record.service === 'svc' && record.bytesUp === record.bytesDown)).toBe(true);
    expect(access.reduce((sum, record) => sum + (record.bytesUp as number), 0)).toBe(
      payloads.reduce((sum, payload) => sum + payload.length, 0) + 2 * (8 * 65_536 + 28),
    );
  }, TIMEOUT);

  it('affinity: source-ip and source-ip-port clients reach the backend the picker predicts, whichever worker accepts', async () => {
    const servers = [await named('b1'), await named('b2'), await named('b3')];
    const backends = servers.map((server, i) => ({ name: `b${i + 1}`, port: server.port }));
    const byIp = await freePort();
    const byIpPort = await freePort();
    const cluster = await startCluster({
      services: [service('by-ip', byIp, backends), service('by-ip-port', byIpPort, backends, { hashKey: 'source-ip-port', balance: 'rendezvous' })],
    });
    const loaded = await loadConfig(cluster.file);
    const [ipConfig, ipPortConfig] = loaded.services as ProxyServiceConfig[];
    const predictIp = candidates(ipConfig);
    const predictIpPort = candidates(ipPortConfig);
    const seen = new Set<string>();
    for (const id of WORKERS) {
      await onlyWorker(cluster, id, async () => {
        for (const source of SOURCES) {
          const placed = await greeting(byIp, source);
          expect({ id, source, name: placed.name }).toEqual({ id, source, name: predictIp(flowKey(source))[0] });
          const keyed = await greeting(byIpPort, source);
          expect({ id, source, name: keyed.name }).toEqual({ id, source, name: predictIpPort(flowKey(source, keyed.localPort))[0] });
          seen.add(placed.name);
        }
      });
    }
    expect(seen.size).toBe(3);
    await cluster.run.waitForLine(() => records(cluster.run, 'connection').length >= 4 * SOURCES.length);
    for (const id of WORKERS) expect(records(cluster.run, 'connection', (record) => record.worker === id)).toHaveLength(2 * SOURCES.length);
  }, TIMEOUT);

  it('a killed backend stops receiving new clients from every worker, and comes back', async () => {
    const b1 = await backendProcess('b1');
    const b2 = await backendProcess('b2');
    const b3 = await backendProcess('b3');
    const port = await freePort();
    const cluster = await startCluster({
      services: [service('svc', port, [b1, b2, b3], { healthCheck: { type: 'tcp', interval: '100ms', rise: 1, fall: 1 } })],
    });
    const walk = candidates((await loadConfig(cluster.file)).services[0] as ProxyServiceConfig);
    const onB2 = SOURCES.filter((source) => walk(flowKey(source))[0] === 'b2');
    expect(onB2.length).toBeGreaterThan(2);

    await b2.kill();
    // The primary decides (its check, or a worker's failed connect), then every worker applies it.
    await cluster.run.waitForRecord('backend health changed', (record) => record.worker === undefined && record.backend === 'b2' && record.health === 'down');
    for (const id of WORKERS) await cluster.run.waitForRecord('backend health applied', (record) => record.worker === id && record.backend === 'b2' && record.health === 'down');
    // One line per health change at info and above, the primary's: the workers only applied it (debug).
    expect(records(cluster.run, 'backend health changed').filter((record) => record.backend === 'b2').map((record) => [record.worker, record.health, record.level])).toEqual([[undefined, 'down', 40]]);
    for (const id of WORKERS) {
      await onlyWorker(cluster, id, async () => {
        for (const source of onB2) expect((await greeting(port, source)).name).toBe(walk(flowKey(source)).find((name) => name !== 'b2'));
      });
    }
    await cluster.run.waitForLine(() => records(cluster.run, 'connection').length >= 2 * onB2.length);
    const whileDown = records(cluster.run, 'connection');
    for (const id of WORKERS) expect(whileDown.filter((record) => record.worker === id)).toHaveLength(onB2.length);
    // No worker even tried b2: no retries, no connect to it.
    expect(whileDown.filter((record) => record.retries !== 0 || record.backend === 'b2')).toEqual([]);

    await backendProcess('b2', b2.port);
    for (const id of WORKERS) await cluster.run.waitForRecord('backend health applied', (record) => record.worker === id && record.backend === 'b2' && record.health === 'up');
    for (const id of WORKERS) {
      await onlyWorker(cluster, id, async () => {
        for (const source of onB2) expect((await greeting(port, source)).name).toBe('b2');
      });
    }
  }, TIMEOUT);

  it("one worker's failed connect reaches the primary's reducer, and every worker stops using that backend", async () => {
    const b1 = await backendProcess('b1');
    const b2 = await backendProcess('b2');
    const b3 = await backendProcess('b3');
    const port = await freePort();
    // Active checks 500 h apart: only a passive observation can mark b2 down within this test.
    const cluster = await startCluster({
      services: [service('svc', port, [b1, b2, b3], { retries: 2, healthCheck: { type: 'tcp', interval: '500h', rise: 1, fall: 1 } })],
    });
    const walk = candidates((await loadConfig(cluster.file)).services[0] as ProxyServiceConfig);
    const [source] = SOURCES.filter((each) => walk(flowKey(each))[0] === 'b2');
    const next = walk(flowKey(source))[1];
    await b2.kill();
    await onlyWorker(cluster, 1, async () => expect((await greeting(port, source)).name).toBe(next));
    const down = await cluster.run.waitForRecord('backend health changed', (record) => record.worker === undefined && record.backend === 'b2');
    expect(down).toMatchObject({ health: 'down', reason: expect.stringContaining('passive') });
    await cluster.run.waitForRecord('backend health applied', (record) => record.worker === 2 && record.backend === 'b2' && record.health === 'down');
    await onlyWorker(cluster, 2, async () => expect((await greeting(port, source)).name).toBe(next));
    await cluster.run.waitForLine(() => records(cluster.run, 'connection').length >= 2);
    const lines = records(cluster.run, 'connection').map((record) => [record.worker, record.backend, record.retries]);
    expect(lines.sort((a, b) => (a[0] as number) - (b[0] as number))).toEqual([
      [1, next, 1],
      [2, next, 0],
    ]);
  }, TIMEOUT);

  it('maintenance through the admin API reaches every worker; /stats and /metrics sum the workers', async () => {
    const servers = [await named('b1'), await named('b2'), await named('b3')];
    const port = await freePort();
    const adminPort = await freePort();
    const cluster = await startCluster({
      admin: { listen: `127.0.0.1:${adminPort}` },
      services: [service('svc', port, servers.map((server, i) => ({ name: `b${i + 1}`, port: server.port })))],
    });
    const admin = `http://127.0.0.1:${adminPort}`;
    const walk = candidates((await loadConfig(cluster.file)).services[0] as ProxyServiceConfig);
    const onB1 = SOURCES.filter((source) => walk(flowKey(source))[0] === 'b1');
    expect(onB1.length).toBeGreaterThan(2);
    const setState = async (state: string): Promise<unknown> => {
      const response = await fetch(`${admin}/services/svc/backends/b1/state`, { method: 'POST', body: JSON.stringify({ state }) });
      expect(response.status).toBe(200);
      return response.json();
    };

    expect(await setState('maintenance')).toEqual({ service: 'svc', backend: 'b1', previous: 'active', state: 'maintenance' });
    for (const id of WORKERS) await cluster.run.waitForRecord('backend state applied', (record) => record.worker === id && record.backend === 'b1' && record.state === 'maintenance');
    for (const id of WORKERS) {
      await onlyWorker(cluster, id, async () => {
        for (const source of onB1) expect((await greeting(port, source)).name).toBe(walk(flowKey(source))[1]);
      });
    }
    await setState('active');
    for (const id of WORKERS) await cluster.run.waitForRecord('backend state applied', (record) => record.worker === id && record.backend === 'b1' && record.state === 'active');
    for (const id of WORKERS) {
      await onlyWorker(cluster, id, async () => {
        for (const source of onB1) expect((await greeting(port, source)).name).toBe('b1');
      });
    }

    const made = 4 * onB1.length;
    await cluster.run.waitForLine(() => records(cluster.run, 'connection').length >= made);
    const stats = (await (await fetch(`${admin}/stats`)).json()) as { services: { total: number; current: number; listen: { port: number }; backends: { name: string; total: number; state: string }[] }[] };
    expect(stats.services).toHaveLength(1);
    expect(stats.services[0]).toMatchObject({ total: made, current: 0, listen: { port } });
    expect(stats.services[0].backends.find((row) => row.name === 'b1')).toMatchObject({ total: 2 * onB1.length, state: 'active' });
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).toContain(`l4lb_connections_total{service="svc"} ${made}`);
    expect(metrics).toContain(`l4lb_backend_connections_total{service="svc",backend="b1"} ${2 * onB1.length}`);
  }, TIMEOUT);

  it('a TLS passthrough listener in each worker: /stats and /metrics sum their inspections by listener, result and route', async () => {
    const db = await named('db');
    const port = await freePort();
    const adminPort = await freePort();
    const cluster = await startCluster({
      admin: { listen: `127.0.0.1:${adminPort}` },
      listeners: [{ listen: `127.0.0.1:${port}`, routes: [{ sni: 'db.example.com', service: 'db' }] }],
      services: [{ name: 'db', timeouts: { drain: '10s' }, backends: [{ name: 'db1', address: `127.0.0.1:${db.port}` }] }],
    });
    for (const id of WORKERS) {
      // One client through each worker: the sums are over both.
      await onlyWorker(cluster, id, async () => {
        const socket = await connectClient(port);
        socket.write(OPENSSL_HELLO);
        expect(await readLine(socket)).toBe('db');
        socket.destroy();
      });
    }
    const admin = `http://127.0.0.1:${adminPort}`;
    const stats = (await (await fetch(`${admin}/stats`)).json()) as { listeners: unknown[] };
    expect(stats.listeners).toEqual([
      { listener: `127.0.0.1:${port}`, owner: 'listeners[0]', listen: { host: '127.0.0.1', port }, inspecting: 0, inspections: [{ result: 'sni', route: 'name', count: 2 }] },
    ]);
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).toContain(`l4lb_sni_inspect_total{listener="127.0.0.1:${port}",result="sni",route="name"} 2`);
  }, TIMEOUT);

  it('SIGHUP: a bad file is refused once by the primary, one no worker can bind is refused as a whole, every worker keeps serving; a good one reloads every worker', async () => {
    const b1 = await named('b1');
    const b2 = await named('b2');
    const port = await freePort();
    const cluster = await startCluster({ services: [service('svc', port, [{ name: 'b1', port: b1.port }])] });

    writeConfig({ workers: 2, services: [{ name: 'svc', listen: `127.0.0.1:${port}`, tiemouts: {}, backends: [{ name: 'b1', address: '127.0.0.1' }] }] }, cluster.file);
    cluster.run.child.kill('SIGHUP');
    const refused = await cluster.run.waitForRecord('reload refused: still running the previous configuration');
    expect((refused.problems as string[]).some((line) => line.includes('tiemouts'))).toBe(true);
    expect(refused.code).toBe('LB_ERR_CONFIG');
    for (const id of WORKERS) await onlyWorker(cluster, id, async () => expect((await greeting(port)).name).toBe('b1'));

    // Valid, but no worker can bind it: refused as a whole, as a single process refuses it.
    const taken = await startServer();
    cleanups.push(() => taken.close());
    writeConfig({ workers: 2, services: [service('svc', taken.port, [{ name: 'b2', port: b2.port }])] }, cluster.file);
    cluster.run.child.kill('SIGHUP');
    const unbound = await cluster.run.waitForRecord('reload refused: still running the previous configuration', (record) => String(record.problems).includes('cannot listen'));
    expect(unbound.problems).toEqual([`services[0] (svc).listen: cannot listen on 127.0.0.1:${taken.port}: address already in use`]);
    // The workers' error crosses IPC with its code: a bind failure, not a configuration problem.
    expect(unbound.code).toBe('LB_ERR_LISTEN');
    for (const id of WORKERS) await onlyWorker(cluster, id, async () => expect((await greeting(port)).name).toBe('b1'));

    writeConfig({ workers: 2, services: [service('svc', port, [{ name: 'b2', port: b2.port }])] }, cluster.file);
    cluster.run.child.kill('SIGHUP');
    // Connections made while every worker reloads are all served, by one configuration or the other.
    const during = Promise.all(Array.from({ length: 20 }, () => greeting(port).then((placed) => placed.name)));
    await cluster.run.waitForRecord('reloaded', (record) => record.workers === 2);
    for (const name of await during) expect(['b1', 'b2']).toContain(name);
    for (const id of WORKERS) await onlyWorker(cluster, id, async () => expect((await greeting(port)).name).toBe('b2'));
    const refusals = records(cluster.run, 'reload refused: still running the previous configuration');
    expect(refusals).toHaveLength(2);
    expect(refusals.map((record) => record.worker)).toEqual([undefined, undefined]);
    expect(records(cluster.run, 'worker refused the reload: it still runs the previous configuration')).toEqual([]);
  }, TIMEOUT);

  it('SIGTERM: every worker stops accepting and drains, the primary exits 0 and no worker process is left', async () => {
    const b1 = await named('b1');
    const port = await freePort();
    const cluster = await startCluster({ services: [service('svc', port, [{ name: 'b1', port: b1.port }])] });
    const open = await connectClient(port);
    expect(await readLine(open)).toBe('b1');
    cluster.run.child.kill('SIGTERM');
    await cluster.run.waitForRecord('stopping: no new connections, draining open ones');
    await expect(connectClient(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    open.write('served while draining\n');
    expect(await readLine(open)).toBe('served while draining');
    open.end();
    expect(await cluster.run.exited).toBe(0);
    expect(await cluster.run.waitForRecord('connection')).toMatchObject({ service: 'svc', backend: 'b1', end: 'client-close' });
    expect(records(cluster.run, 'stopped')).toHaveLength(1);
    for (const pid of cluster.pids.values()) expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    expect(processesWith(cluster.file)).toEqual([]);
    expect(cluster.run.stderr()).toBe('');
  }, TIMEOUT);

  it("Ctrl-C or hang-up: SIGINT and SIGHUP to the whole group are the primary's to act on; workers keep serving until told to drain", async () => {
    const b1 = await named('b1');
    const port = await freePort();
    const cluster = await startCluster({ services: [service('svc', port, [{ name: 'b1', port: b1.port }])] });
    for (const pid of cluster.pids.values()) process.kill(pid, 'SIGINT');
    for (const pid of cluster.pids.values()) process.kill(pid, 'SIGHUP');
    for (const id of WORKERS) await onlyWorker(cluster, id, async () => expect((await greeting(port)).name).toBe('b1'));
    const open = await connectClient(port);
    expect(await readLine(open)).toBe('b1');
    cluster.run.child.kill('SIGINT');
    await cluster.run.waitForRecord('stopping: no new connections, draining open ones', (record) => record.signal === 'SIGINT');
    open.write('still served\n');
    expect(await readLine(open)).toBe('still served');
    open.end();
    expect(await cluster.run.exited).toBe(0);
    expect(records(cluster.run, 'worker exited unexpectedly: restarting it')).toEqual([]);
  }, TIMEOUT);

  it('a killed worker is logged and restarted, and the new one serves', async () => {
    const b1 = await named('b1');
    const port = await freePort();
    const cluster = await startCluster({ services: [service('svc', port, [{ name: 'b1', port: b1.port }])] });
    const old = cluster.pids.get(1) as number;
    process.kill(old, 'SIGKILL');
    expect(await cluster.run.waitForRecord('worker exited unexpectedly: restarting it')).toMatchObject({ worker: 1, pid: old, signal: 'SIGKILL' });
    const fresh = (await cluster.run.waitForRecord('worker started', (record) => record.worker === 1 && record.pid !== old)).pid as number;
    cluster.pids.set(1, fresh);
    await onlyWorker(cluster, 1, async () => expect((await greeting(port)).name).toBe('b1'));
    await cluster.run.waitForLine(() => records(cluster.run, 'connection', (record) => record.worker === 1).length === 1);
  }, TIMEOUT);

  it("the primary's death takes the workers with it", async () => {
    const b1 = await named('b1');
    const port = await freePort();
    const cluster = await startCluster({ services: [service('svc', port, [{ name: 'b1', port: b1.port }])] });
    expect((await greeting(port)).name).toBe('b1');
    expect(processesWith(cluster.file).sort()).toEqual([cluster.run.child.pid, ...cluster.pids.values()].sort());
    await cluster.run.kill();
    // No event tells this process when an orphan exits: poll /proc (bounded by the test timeout).
    await waitUntil(() => processesWith(cluster.file).length === 0);
  }, TIMEOUT);

  it('a taken port: one line on stderr, exit 1, no worker left', async () => {
    const taken = await startServer();
    cleanups.push(() => taken.close());
    const file = writeConfig({ workers: 2, services: [service('svc', taken.port, [{ name: 'b1', port: taken.port }])] });
    const run = startCli(['run', '-c', file]);
    cleanups.push(() => run.kill());
    expect(await run.exited).toBe(1);
    expect(run.stderr()).toBe(`l4lb: services[0] (svc).listen: cannot listen on 127.0.0.1:${taken.port}: address already in use\n`);
    // The primary SIGKILLed its workers before exiting; wait for the kernel to finish them.
    await waitUntil(() => processesWith(file).length === 0);
  }, TIMEOUT);
});

