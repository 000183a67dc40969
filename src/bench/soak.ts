/**
 * `npm run soak [-- --minutes N]`: l4lb under hours-long mixed load, to show that memory and
 * descriptors stay flat (a program, not a test; default 10 minutes, documented for 60).
 *
 * It starts three echo backends and `l4lb run` with `workers: 2` and an admin API, then, until the
 * time is up: short connections (a line echoed, then closed) at a steady rate, long-lived flows that
 * send a line every second, and a bulk transfer every 30 s; a reload (SIGHUP, weights alternating)
 * every minute; one backend flapping (killed, back 15 s later) every 45 s; a worker killed with
 * SIGKILL every 150 s. Every 5 s it samples, over the primary and its workers, resident memory and
 * open descriptors (/proc), and from /metrics the primary's heap and event-loop delay and the open
 * connections. It writes docs/soak.md (settings, events, a table) and docs/soak.svg (Vega-Lite).
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { BenchError, ProcessGroup, freePort, waitForPort, type Started } from './proxy/procs.js';

const REPO = new URL('../../', import.meta.url).pathname;
const CLI = join(REPO, 'dist/cli.js');
const SAMPLE_MS = 5_000;
const SHORT_PER_SECOND = 40;
const LONG_FLOWS = 200;
const BULK_BYTES = 16 * 1024 * 1024;
const TOKEN = 'soak-token-0123456789abcdef';

const BACKEND_SCRIPT = `
const net = require('node:net');
net.createServer((socket) => { socket.on('error', () => {}); socket.pipe(socket); }).listen(Number(process.argv[1]), '127.0.0.1');
`;

interface Sample {
  readonly minute: number;
  readonly rssMiB: number;
  readonly fds: number;
  readonly heapMiB: number;
  readonly loopP99Ms: number;
  readonly connections: number;
  readonly processes: number;
}

interface Counts {
  short: number;
  shortFailed: number;
  longBroken: number;
  bulk: number;
  bulkFailed: number;
  reloads: number;
  workerKills: number;
  flaps: number;
}

function minutesArgument(): number {
  const index = process.argv.indexOf('--minutes');
  if (index === -1) return 10;
  const value = Number(process.argv[index + 1]);
  if (!(value > 0 && value <= 24 * 60)) throw new BenchError(`--minutes: expected a number of minutes 0–1440, got ${process.argv[index + 1] ?? 'nothing'}`);
  return value;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Resident memory of `pids`, summed; a process that has ended (or is a zombie, without VmRSS) counts 0. */
function residentKib(pids: readonly number[]): number {
  let kib = 0;
  for (const pid of pids) {
    try {
      const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      kib += match === null ? 0 : Number(match[1]);
    } catch {
      // ended between the listing and now
    }
  }
  return kib;
}

function descriptors(pids: readonly number[]): number {
  let count = 0;
  for (const pid of pids) {
    try {
      count += readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      // the process ended between the listing and now
    }
  }
  return count;
}

function metricValue(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

function configText(backends: readonly number[], listen: number, admin: number, round: number): string {
  const weight = round % 2 === 0 ? 1 : 2;
  return [
    `admin: { listen: 127.0.0.1:${admin}, token: ${TOKEN} }`,
    'workers: 2',
    `accessLog: { path: ${join('/dev', 'null')} }`,
    'services:',
    '  - name: soak',
    `    listen: 127.0.0.1:${listen}`,
    '    hashKey: source-ip-port',
    '    healthCheck: { interval: 1s, rise: 2, fall: 2 }',
    '    timeouts: { connect: 1s, idle: 5m, drain: 5s }',
    '    backends:',
    ...backends.map((port, index) => `      - { name: b${index + 1}, address: 127.0.0.1:${port}, weight: ${index === 0 ? weight : 1} }`),
    '',
  ].join('\n');
}

/**
 * One connection to the echo backends through l4lb: `send` writes once connected; true when
 * `expected` bytes came back before `timeoutMs`, false on an error or the timeout. Closed either way.
 */
function echoed(port: number, expected: number, timeoutMs: number, send: (socket: Socket) => void): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = 0;
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= expected) done(true);
    });
    socket.once('connect', () => send(socket));
  });
}

/** One short connection: a line out, the same line back, closed. */
function shortConnection(port: number): Promise<boolean> {
  const line = 'ping\n';
  return echoed(port, Buffer.byteLength(line), 5_000, (socket) => socket.write(line));
}

/** A flow that sends a line every second for the whole run; reopened (and counted) when it breaks. */
function longFlow(port: number, counts: Counts, stopped: () => boolean): void {
  const open = (): void => {
    if (stopped()) return;
    const socket: Socket = connect({ host: '127.0.0.1', port });
    const timer = setInterval(() => socket.write('tick\n'), 1_000);
    socket.on('data', () => {});
    socket.once('close', () => {
      clearInterval(timer);
      if (stopped()) return;
      counts.longBroken++;
      setTimeout(open, 500);
    });
    socket.on('error', () => {});
    flows.push(socket);
  };
  open();
}
const flows: Socket[] = [];

/** BULK_BYTES written and the same read back through the echo backend. */
function bulkTransfer(port: number): Promise<boolean> {
  return echoed(port, BULK_BYTES, 30_000, (socket) => {
    const block = Buffer.alloc(64 * 1024, 1);
    let sent = 0;
    const pump = (): void => {
      while (sent < BULK_BYTES) {
        sent += block.length;
        if (!socket.write(block)) {
          socket.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

async function renderSvg(samples: readonly Sample[]): Promise<string> {
  const rows = samples.flatMap((sample) => [
    { minute: sample.minute, series: 'RSS, MiB (primary + workers)', value: sample.rssMiB },
    { minute: sample.minute, series: 'open descriptors', value: sample.fds },
    { minute: sample.minute, series: 'heap used, MiB (primary)', value: sample.heapMiB },
    { minute: sample.minute, series: 'event-loop delay p99, ms (primary)', value: sample.loopP99Ms },
    { minute: sample.minute, series: 'open connections', value: sample.connections },
  ]);
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values: rows },
    facet: { row: { field: 'series', type: 'nominal', title: null, header: { labelAngle: 0, labelAlign: 'left', labelAnchor: 'start', labelOrient: 'top' } } },
    spec: {
      width: 640,
      height: 90,
      mark: { type: 'line', interpolate: 'monotone' },
      encoding: {
        x: { field: 'minute', type: 'quantitative', title: 'minutes' },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: true } },
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}

function table(samples: readonly Sample[]): string {
  const every = Math.max(1, Math.round(60_000 / SAMPLE_MS)); // one row a minute
  const rows = samples.filter((_, index) => index % every === 0 || index === samples.length - 1);
  return [
    '| minute | RSS MiB | descriptors | heap MiB | loop p99 ms | connections | processes |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((s) => `| ${s.minute.toFixed(1)} | ${s.rssMiB.toFixed(1)} | ${s.fds} | ${s.heapMiB.toFixed(1)} | ${s.loopP99Ms.toFixed(1)} | ${s.connections} | ${s.processes} |`),
  ].join('\n');
}

async function main(): Promise<void> {
  const minutes = minutesArgument();
  const group = new ProcessGroup();
  const taken = new Set<number>();
  const stopAll = async (): Promise<void> => {
    for (const flow of flows) flow.destroy();
    await group.stopAll();
    group.dispose();
  };
  try {
    const backendPorts = [await freePort(taken), await freePort(taken), await freePort(taken)];
    const backends: Started[] = [];
    for (const [index, port] of backendPorts.entries()) {
      backends[index] = group.start(`backend${index + 1}`, process.execPath, ['-e', BACKEND_SCRIPT, String(port)]);
      await waitForPort(group, backends[index], port);
    }
    const listen = await freePort(taken);
    const admin = await freePort(taken);
    const configFile = join(group.dir, 'soak.yaml');
    let round = 0;
    writeFileSync(configFile, configText(backendPorts, listen, admin, round));
    const l4lb = group.start('l4lb', process.execPath, [CLI, 'run', '-c', configFile]);
    // A minute: on a busy machine two workers take seconds to start.
    await waitForPort(group, l4lb, listen, 60_000);
    await waitForPort(group, l4lb, admin, 60_000);

    const counts: Counts = { short: 0, shortFailed: 0, longBroken: 0, bulk: 0, bulkFailed: 0, reloads: 0, workerKills: 0, flaps: 0 };
    const events: string[] = [];
    const started = Date.now();
    const end = started + minutes * 60_000;
    const at = (): string => ((Date.now() - started) / 60_000).toFixed(2);
    let stopped = false;
    for (let i = 0; i < LONG_FLOWS; i++) longFlow(listen, counts, () => stopped);

    const shortLoad = setInterval(() => {
      counts.short++;
      void shortConnection(listen).then((ok) => {
        if (!ok) counts.shortFailed++;
      });
    }, 1000 / SHORT_PER_SECOND);
    const bulkLoad = setInterval(() => {
      counts.bulk++;
      void bulkTransfer(listen).then((ok) => {
        if (!ok) counts.bulkFailed++;
      });
    }, 30_000);
    const reloads = setInterval(() => {
      round++;
      writeFileSync(configFile, configText(backendPorts, listen, admin, round));
      process.kill(l4lb.pid, 'SIGHUP');
      counts.reloads++;
    }, 60_000);
    const flapping = setInterval(() => {
      const flapped = backends[2] as Started;
      counts.flaps++;
      events.push(`${at()} min: backend b3 killed, back 15 s later`);
      void group.stop(flapped, 0).then(async () => {
        await delay(15_000);
        if (stopped) return;
        backends[2] = group.start('backend3', process.execPath, ['-e', BACKEND_SCRIPT, String(backendPorts[2])]);
      });
    }, 45_000);
    const workerKills = setInterval(() => {
      const workers = childrenOf(l4lb.pid);
      const victim = workers[counts.workerKills % Math.max(1, workers.length)];
      if (victim === undefined) return;
      process.kill(victim, 'SIGKILL');
      counts.workerKills++;
      events.push(`${at()} min: worker PID ${victim} killed (SIGKILL)`);
    }, 150_000);

    const samples: Sample[] = [];
    while (Date.now() < end) {
      await delay(Math.min(SAMPLE_MS, Math.max(0, end - Date.now())));
      const pids = [l4lb.pid, ...childrenOf(l4lb.pid)];
      let metrics = '';
      try {
        const response = await fetch(`http://127.0.0.1:${admin}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
        metrics = await response.text();
      } catch {
        // a sample without metrics: the table shows zeros for them
      }
      const sample: Sample = {
        minute: (Date.now() - started) / 60_000,
        rssMiB: residentKib(pids) / 1024,
        fds: descriptors(pids),
        heapMiB: metricValue(metrics, 'nodejs_heap_size_used_bytes') / 2 ** 20,
        loopP99Ms: metricValue(metrics, 'nodejs_eventloop_lag_p99_seconds') * 1000,
        connections: metricValue(metrics, 'l4lb_connections_current'),
        processes: pids.length,
      };
      samples.push(sample);
      process.stdout.write(`${sample.minute.toFixed(1)} min: RSS ${sample.rssMiB.toFixed(1)} MiB, ${sample.fds} fds, heap ${sample.heapMiB.toFixed(1)} MiB, loop p99 ${sample.loopP99Ms.toFixed(1)} ms, ${sample.connections} connections\n`);
    }
    stopped = true;
    for (const timer of [shortLoad, bulkLoad, reloads, flapping, workerKills]) clearInterval(timer);

    const settled = samples.filter((sample) => sample.minute >= Math.min(2, minutes / 4));
    const first = settled[0];
    const last = settled[settled.length - 1];
    const summary =
      first === undefined || last === undefined
        ? 'Too short a run to compare.'
        : `From minute ${first.minute.toFixed(1)} to ${last.minute.toFixed(1)}: RSS ${first.rssMiB.toFixed(1)} → ${last.rssMiB.toFixed(1)} MiB, descriptors ${first.fds} → ${last.fds}, primary heap ${first.heapMiB.toFixed(1)} → ${last.heapMiB.toFixed(1)} MiB.`;
    const svg = await renderSvg(samples);
    writeFileSync(join(REPO, 'docs/soak.svg'), svg);
    const doc = [
      '# Soak',
      '',
      '<!-- Written by `npm run soak`; the explanation below the markers is kept by hand. -->',
      '<!-- soak results begin -->',
      `Run: ${new Date(started).toISOString()}, ${minutes} minutes, \`npm run soak -- --minutes ${minutes}\`; Node.js ${process.version}.`,
      '',
      `Load: ${SHORT_PER_SECOND} short connections/s (${counts.short} in all, ${counts.shortFailed} failed), ${LONG_FLOWS} long flows sending a line a second (${counts.longBroken} broken and reopened), a ${BULK_BYTES / 2 ** 20} MiB echo every 30 s (${counts.bulk}, ${counts.bulkFailed} failed); ${counts.reloads} reloads, ${counts.flaps} flaps of backend b3, ${counts.workerKills} workers killed.`,
      '',
      summary,
      '',
      '![RSS, descriptors, heap, event-loop delay and connections over the run](soak.svg)',
      '',
      table(samples),
      '',
      'Events:',
      '',
      ...events.map((event) => `- ${event}`),
      '<!-- soak results end -->',
      '',
    ];
    const path = join(REPO, 'docs/soak.md');
    let kept = '';
    try {
      const current = readFileSync(path, 'utf8');
      const marker = current.indexOf('<!-- soak results end -->');
      if (marker !== -1) kept = current.slice(marker + '<!-- soak results end -->'.length).replace(/^\n+/, '');
    } catch {
      // first run
    }
    writeFileSync(path, `${doc.join('\n')}${kept === '' ? '' : `\n${kept}`}`);
    process.stdout.write(`\n${summary}\nwrote docs/soak.md and docs/soak.svg\n`);
  } finally {
    await stopAll();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`soak: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
