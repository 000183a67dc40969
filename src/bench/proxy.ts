/**
 * `npm run bench:proxy`: l4lb's data path against a direct connection (the limit, also with
 * conntrack on), HAProxy `mode tcp` at one thread (plain, and tuned for bulk with splice(2)) and
 * nginx `stream` at one worker, and l4lb's kernel full NAT (`mode: nat`, no process on the data
 * path), in the same run, on loopback backends inside network namespaces it creates and removes: the
 * paths that turn conntrack on (direct-ct, kernel) in one, the others in another, each namespace with
 * its own backends and clients (src/bench/proxy/places.ts); l4lb's data-path targets and the kernel
 * path's (ratios, src/bench/proxy/report.ts) are checked. A program that prints a table, never a
 * test. Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN).
 *
 * Cases: bulk throughput with iperf3 (1 and 4 streams) and the proxy's CPU seconds per GB; new
 * connections per second with wrk and `Connection: close` against an nginx backend; keep-alive request
 * rate and p50/p99 latency with wrk; new TLS connections per second with wrk over https (a full
 * handshake each, against nginx with a P-256 certificate) and the proxy's CPU per TLS connection,
 * where `l4lb-sni` (l4lb whose TLS listener reads each ClientHello and routes by its server name)
 * against `l4lb` is what SNI routing costs; resident memory per idle spliced connection at 10,000
 * held connections. Runs are interleaved across paths (order rotated each run) and medians reported.
 * Every process it starts it stops by PID, and both namespaces it removes, also on error and Ctrl-C.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuTicks, holdIdle, runBulk, runWrk, settledRssKib } from './proxy/cases.js';
import { cpuSnapshot, DOC_HEADER, haveCommand, othersShare, resultSection, type LoadRecord } from './proxy/doc.js';
import { BenchPlaces, PLACE_ORDER, placeOf, type BenchPlace } from './proxy/places.js';
import { BenchError, descriptorLimit, runBenchMain, type ProcessGroup } from './proxy/procs.js';
import {
  emptySamples, markdownTables, markdownTargets, PATH_NAMES, spliceSection, summarize, textTable, type PathName, type PathSamples, type Summary,
} from './proxy/report.js';
import { missingFor, startPath, type RunningPath } from './proxy/setup.js';

type CaseName = 'bulk1' | 'bulk4' | 'conn' | 'keepalive' | 'tls' | 'memory';
const CASE_NAMES: readonly CaseName[] = ['bulk1', 'bulk4', 'conn', 'keepalive', 'tls', 'memory'];


/** A running path and the place (namespace, processes, backends) it runs in. */
interface Placed {
  readonly path: RunningPath;
  readonly place: BenchPlace;
}

const benchDir = dirname(fileURLToPath(import.meta.url));
const distDir = resolve(benchDir, '..');
const repoDir = resolve(distDir, '..');

const USAGE = `usage: npm run bench:proxy -- [options]
  --duration S        seconds per measurement (default 4)
  --runs N            runs per case, medians reported (default 3)
  --cases LIST        of ${CASE_NAMES.join(',')} (default all)
  --paths LIST        of ${PATH_NAMES.join(',')} (default all that are installed)
  --idle N            idle connections for the memory case (default 10000, or fewer when the
                      descriptor hard limit cannot fit 2 per connection in the proxy)
  --connections N     wrk connections (default 64)
  --threads N         wrk threads (default 2)
  --l4lb-arg ARG      extra argument for \`l4lb run\` (repeatable)
  --note TEXT         a note written with the results (e.g. "machine busy with other tests")
  --out FILE          where to write the results (default docs/benchmarks.md)
  --no-write          print only`;

interface Options {
  seconds: number;
  runs: number;
  cases: CaseName[];
  paths: PathName[];
  idle: number;
  connections: number;
  threads: number;
  l4lbArgs: string[];
  note?: string;
  out: string;
  write: boolean;
}

function positiveInteger(text: string | undefined, fallback: number, name: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new BenchError(`--${name} "${text}": expected a positive integer`);
  return value;
}

function list<T extends string>(text: string | undefined, allowed: readonly T[], name: string): T[] {
  if (text === undefined) return [...allowed];
  const items = text.split(',').map((item) => item.trim()).filter(Boolean);
  for (const item of items) {
    if (!(allowed as readonly string[]).includes(item)) throw new BenchError(`--${name}: "${item}" is not one of ${allowed.join(', ')}`);
  }
  return items as T[];
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' }, runs: { type: 'string' }, cases: { type: 'string' }, paths: { type: 'string' },
      idle: { type: 'string' }, connections: { type: 'string' }, threads: { type: 'string' }, 'l4lb-arg': { type: 'string', multiple: true },
      note: { type: 'string' }, out: { type: 'string' }, 'no-write': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return undefined;
  return {
    seconds: positiveInteger(values.duration, 4, 'duration'),
    runs: positiveInteger(values.runs, 3, 'runs'),
    cases: list(values.cases, CASE_NAMES, 'cases'),
    paths: list(values.paths, PATH_NAMES, 'paths'),
    idle: positiveInteger(values.idle, 10000, 'idle'),
    connections: positiveInteger(values.connections, 64, 'connections'),
    threads: positiveInteger(values.threads, 2, 'threads'),
    l4lbArgs: values['l4lb-arg'] ?? [],
    note: values.note,
    out: resolve(repoDir, values.out ?? 'docs/benchmarks.md'),
    write: !values['no-write'],
  };
}

/** l4lb-sni is l4lb with its TLS listener routing by SNI: it differs in, and runs, the TLS case alone. */
function runsCase(path: PathName, name: CaseName): boolean {
  return path !== 'l4lb-sni' || name === 'tls';
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function measureMemory(group: ProcessGroup, path: RunningPath, idle: number, samples: PathSamples): Promise<void> {
  const pids = path.measuredPids;
  if (pids.length === 0) return;
  if (path.noMemory !== undefined) {
    progress(`  memory ${path.name}: left out (${path.noMemory})`);
    return;
  }
  const warm = await holdIdle(group, benchDir, path.listen.idle, Math.min(64, idle));
  await warm.close();
  const before = await settledRssKib(pids);
  const held = await holdIdle(group, benchDir, path.listen.idle, idle);
  const after = await settledRssKib(pids);
  await held.close();
  const perConnection = (after - before) / idle;
  samples.rssPerConnKib.push(perConnection);
  progress(`  memory ${path.name}: RSS ${before} KiB -> ${after} KiB with ${idle} idle connections = ${perConnection.toFixed(2)} KiB each`);
}

async function measureOnce(group: ProcessGroup, path: RunningPath, name: Exclude<CaseName, 'memory'>, options: Options, samples: PathSamples): Promise<void> {
  const pids = path.measuredPids;
  const measured = pids.length > 0;
  const ticksBefore = cpuTicks(pids);
  const ticksSince = (): number => cpuTicks(pids) - ticksBefore;
  switch (name) {
    case 'bulk1':
    case 'bulk4': {
      const result = await runBulk(group, path.listen.bulk, options.seconds, name === 'bulk1' ? 1 : 4);
      const gbps = result.bitsPerSecond / 1e9;
      (name === 'bulk1' ? samples.bulk1Gbps : samples.bulk4Gbps).push(gbps);
      if (measured) {
        samples.bulkCpuTicks += ticksSince();
        samples.bulkBytes += result.bytes;
      }
      progress(`  ${name} ${path.name}: ${gbps.toFixed(2)} Gbit/s`);
      return;
    }
    case 'conn':
    case 'keepalive': {
      const result = await runWrk(group, path.listen.http, { seconds: options.seconds, connections: options.connections, threads: options.threads, close: name === 'conn' });
      samples.errors += result.errors;
      if (name === 'conn') {
        samples.connPerSecond.push(result.requestsPerSecond);
        if (measured) {
          samples.connCpuTicks += ticksSince();
          samples.connCount += result.requests;
        }
      } else {
        samples.keepAlivePerSecond.push(result.requestsPerSecond);
        samples.p50Ms.push(result.p50Ms);
        samples.p99Ms.push(result.p99Ms);
      }
      const errors = result.errors > 0 ? ` (${result.errors} errors)` : '';
      progress(`  ${name} ${path.name}: ${Math.round(result.requestsPerSecond)} req/s, p50 ${result.p50Ms.toFixed(3)} ms, p99 ${result.p99Ms.toFixed(3)} ms${errors}`);
      return;
    }
    case 'tls': {
      // A full handshake per request (the backend resumes no session): what a TLS passthrough costs per connection.
      const result = await runWrk(group, path.listen.tls, { seconds: options.seconds, connections: options.connections, threads: options.threads, close: true, tls: true });
      samples.errors += result.errors;
      samples.tlsPerSecond.push(result.requestsPerSecond);
      if (measured) {
        samples.tlsCpuTicks += ticksSince();
        samples.tlsCount += result.requests;
      }
      const errors = result.errors > 0 ? ` (${result.errors} errors)` : '';
      progress(`  tls ${path.name}: ${Math.round(result.requestsPerSecond)} conn/s${errors}`);
      return;
    }
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const options = parseOptions(argv);
  if (!options) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const needed: string[] = ['prlimit', 'ip', 'bash'];
  if (options.cases.includes('bulk1') || options.cases.includes('bulk4')) needed.push('iperf3');
  if (options.cases.includes('conn') || options.cases.includes('keepalive') || options.cases.includes('tls')) needed.push('wrk', 'nginx');
  needed.push('openssl'); // the HTTPS backend's certificate, made at start
  const missingTools = needed.filter((tool) => !haveCommand(tool));
  if (missingTools.length > 0) throw new BenchError(`not installed: ${missingTools.join(', ')} (apt-get install ${missingTools.join(' ')})`);

  const notes: string[] = [];
  // A proxy holds two descriptors per spliced connection, plus listeners, logs and its event loop;
  // the proxies are configured for 100 connections more than are held (HAProxy refuses to start
  // when its maxconn needs more descriptors than the limit).
  const fits = Math.floor((descriptorLimit() - 200) / 2) - 100;
  if (options.cases.includes('memory') && options.idle > fits) {
    notes.push(`Idle connections lowered from ${options.idle} to ${fits}: the descriptor hard limit here is ${descriptorLimit()} (raising it needs CAP_SYS_RESOURCE).`);
    options.idle = fits;
  }
  const paths = options.paths.filter((name) => {
    const missing = missingFor(name, haveCommand, distDir);
    if (missing) notes.push(`Skipped ${name}: ${missing}.`);
    return missing === undefined;
  });
  for (const note of notes) progress(note);

  const load: LoadRecord = { before: loadavg(), after: [], others: 0 };
  const cpuBefore = cpuSnapshot();
  // Namespaces (src/bench/proxy/places.ts): each path that turns conntrack on runs apart from the
  // others, with its own backends and load generators. Whatever the paths load vanishes with them.
  const places = new BenchPlaces();
  const onSignal = (signal: NodeJS.Signals): void => {
    progress(`\n${signal}: stopping every process this benchmark started`);
    void places.closeAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const samples = new Map<PathName, PathSamples>(paths.map((name) => [name, emptySamples()]));
  /** Flows conntrack held in the plain namespace after any measurement there: must stay 0. */
  let plainTracked = 0;
  try {
    const taken = new Set<number>();
    for (const name of PLACE_ORDER) {
      if (paths.some((path) => placeOf(path) === name)) await places.open(name, taken, benchDir);
    }
    const running: Placed[] = [];
    for (const name of paths) {
      const place = places.get(placeOf(name));
      const path = await startPath(name, place.group, taken, place.backends, {
        l4lbArgs: options.l4lbArgs, maxConnections: Math.min(options.idle, fits) + 100, distDir, nft: (ruleset) => place.namespace.nft(ruleset),
      });
      running.push({ path, place });
    }
    for (const place of places.all()) {
      // Now that conntrack may be on there (its sysctls exist once it is).
      if (place.name !== 'plain') place.namespace.trySysctl('net.netfilter.nf_conntrack_tcp_timeout_time_wait', '10');
      const here = running.filter((entry) => entry.place === place);
      progress(`namespace ${place.namespace.name} (${place.name === 'plain' ? 'no nft table' : 'conntrack on'}); backends: iperf3 :${place.backends.bulk}, nginx http :${place.backends.http}, idle :${place.backends.idle}; paths: ${here.map(({ path }) => `${path.name} :${path.listen.http} (pid ${path.measuredPids.join('+') || '-'})`).join(', ')}`);
    }
    const checkPlain = (place: BenchPlace): void => {
      if (place.name === 'plain') plainTracked = Math.max(plainTracked, place.namespace.conntrackCount() ?? 0);
    };

    if (options.cases.includes('memory')) {
      progress('memory (fresh processes):');
      for (const { path, place } of running) if (runsCase(path.name, 'memory')) await measureMemory(place.group, path, options.idle, samples.get(path.name) ?? emptySamples());
    }
    const timed = options.cases.filter((name): name is Exclude<CaseName, 'memory'> => name !== 'memory');
    if (timed.length > 0) {
      progress('warm-up:');
      for (const { path, place } of running) {
        await runWrk(place.group, path.listen.http, { seconds: 1, connections: options.connections, threads: options.threads, close: false });
        await runBulk(place.group, path.listen.bulk, 1, 1);
        checkPlain(place);
      }
    }
    for (let run = 0; run < options.runs && timed.length > 0; run++) {
      progress(`run ${run + 1}/${options.runs}:`);
      const turn = run % running.length; // rotate the order each run
      const order = [...running.slice(turn), ...running.slice(0, turn)];
      for (const name of timed) {
        for (const { path, place } of order) {
          if (!runsCase(path.name, name)) continue;
          await measureOnce(place.group, path, name, options, samples.get(path.name) ?? emptySamples());
          checkPlain(place);
        }
      }
    }
  } finally {
    await places.closeAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const tracked = paths.filter((name) => placeOf(name) !== 'plain');
  const plain = paths.filter((name) => placeOf(name) === 'plain');
  if (plainTracked > 0) {
    const note = `Conntrack tracked up to ${plainTracked} flows in the namespace of ${plain.join(', ')}, which loads no nft table: their figures include its cost.`;
    notes.push(note);
    progress(note);
  } else if (tracked.length > 0 && plain.length > 0) {
    notes.push(`${tracked.join(' and ')} each ran in a namespace of its own with its own backends and clients; conntrack's count in the namespace of ${plain.join(', ')} was 0 after every measurement.`);
  }
  load.after = loadavg();
  load.others = othersShare(cpuBefore, cpuSnapshot());
  progress(`other processes used ${(load.others * 100).toFixed(0)} % of the machine's CPU time during the run`);

  const summary: Summary = {};
  const clockTicks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  for (const [name, pathSamples] of samples) {
    summary[name] = summarize(pathSamples, clockTicks);
    if (pathSamples.errors > 0) notes.push(`${name}: wrk reported ${pathSamples.errors} socket errors or bad responses.`);
  }
  process.stdout.write(`\n${textTable(summary)}\n\n${markdownTables(summary)}\n`);
  const targets = markdownTargets(summary, samples);
  if (targets) process.stdout.write(`\n${targets}\n`);
  if (options.write) {
    const section = resultSection(repoDir, summary, samples, options, argv, load, notes);
    const document = existsSync(options.out) ? readFileSync(options.out, 'utf8') : DOC_HEADER;
    writeFileSync(options.out, spliceSection(document, section));
    progress(`\nwrote ${options.out}`);
  }
  return 0;
}

runBenchMain('bench:proxy', main);
