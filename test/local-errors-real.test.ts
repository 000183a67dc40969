/**
 * The real thing: l4lb (dist/cli.js run) under `prlimit --nofile=256:256`, 1,000 clients at once
 * against a real backend. Its connects fail with EMFILE; none of that may mark the backend down
 * (passive or active), and once the clients are gone new connections reach the backend again,
 * with the EMFILEs counted in l4lb_local_errors_total.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

async function services(admin: number, signal?: AbortSignal): Promise<StatsService[]> {
  const body = (await (await fetch(`http://127.0.0.1:${admin}/stats`, { signal })).json()) as StatsService[] | { services: StatsService[] };
  return Array.isArray(body) ? body : body.services;
}

/**
 * What l4lb's process looks like from outside, for a stall report: its run state and CPU ticks
 * (a spinning event loop shows as R with utime growing), its descriptor count against the 256
 * limit, its TCP sockets by state, and what a plain connect to the admin port gets.
 */
async function postmortem(pid: number | undefined, admin: number): Promise<string> {
  if (pid === undefined) return 'no pid';
  const sample = (): string[] => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  try {
    const before = sample();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const after = sample();
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    const states = execFileSync('ss', ['-tanpH'], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => line.includes(`pid=${pid},`))
      .reduce<Record<string, number>>((count, line) => ({ ...count, [line.split(/\s+/)[0] ?? '?']: (count[line.split(/\s+/)[0] ?? '?'] ?? 0) + 1 }), {});
    const probe = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: admin });
      let got = '';
      socket.setTimeout(3000, () => {
        socket.destroy();
        resolve(`no answer in 3 s (${got.length} bytes)`);
      });
      socket.on('connect', () => socket.write('GET /stats HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'));
      socket.on('data', (chunk: Buffer) => (got += chunk.toString('utf8')));
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(`error ${error.code ?? error.message} after ${got.length} bytes`));
      socket.on('close', () => resolve(`closed after ${got.length} bytes: ${got.slice(0, 120)}`));
    });
    return `state ${after[0]}, utime ${before[11]}→${after[11]} stime ${before[12]}→${after[12]} ticks in 1 s, ${fds} fds, sockets ${JSON.stringify(states)}, admin connect: ${probe}`;
  } catch (error) {
    return `postmortem failed: ${(error as Error).message}`;
  }
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
  let pid: number | undefined;
  let admin = 0;
  let stalled: NodeJS.Timeout | undefined;
  const stall = new Promise<never>((_, reject) => {
    stalled = setTimeout(() => {
      void postmortem(pid, admin).then((state) => reject(new Error(`stalled in phase "${phase}"; l4lb: ${state}; last /stats: ${lastStats}; l4lb log tail: ${out.slice(-2000)}`)));
    }, 45_000);
  });
  cleanups.push(() => clearTimeout(stalled));
  await Promise.race([stall, scenario()]);

  async function scenario(): Promise<void> {
  const server = await startNamedServer('b1');
  cleanups.push(() => server.close());
  const listen = await freePort();
  admin = await freePort();
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
  pid = child.pid; // prlimit execs node in place: the same process
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
  for (let attempt = 1; ; attempt++) {
    // Each poll is bounded, so a stall report says whether l4lb answered and what it said.
    const answer = await services(admin, AbortSignal.timeout(5000)).catch((error: Error) => error);
    lastStats = `poll ${attempt}: ${answer instanceof Error ? `${answer.message} (${String((answer.cause as NodeJS.ErrnoException | undefined)?.code ?? answer.name)})` : JSON.stringify(answer[0])}`;
    if (!(answer instanceof Error) && answer[0]?.current === 0) break;
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
