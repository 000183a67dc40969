/**
 * What a proxy benchmark run writes besides its numbers (docs/benchmarks.md): the machine, the tool
 * versions, the l4lb commit, how busy the machine was (load average, and the CPU share other
 * processes took, from /proc/stat), the settings and the command that reproduces the run.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { parseMachineTicks, parseTreeTicks } from './parse.js';
import { markdownTables, markdownTargets, type PathName, type PathSamples, type Summary } from './report.js';

export interface RunSettings {
  readonly seconds: number;
  readonly runs: number;
  readonly connections: number;
  readonly threads: number;
  readonly idle: number;
  readonly note?: string;
}

export function haveCommand(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

function versionOf(command: string, args: string[], pattern: RegExp): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return pattern.exec(`${result.stdout ?? ''}${result.stderr ?? ''}`)?.[1] ?? 'unknown';
}

/** CPU ticks of the whole machine and of this benchmark's process tree (children once reaped). */
export function cpuSnapshot(): { machine: { busy: number; total: number }; ours: number } {
  return { machine: parseMachineTicks(readFileSync('/proc/stat', 'utf8')), ours: parseTreeTicks(readFileSync('/proc/self/stat', 'utf8')) };
}

/** Share of the machine's CPU time used by processes that are not this benchmark's, between two snapshots. */
export function othersShare(before: ReturnType<typeof cpuSnapshot>, after: ReturnType<typeof cpuSnapshot>): number {
  const total = after.machine.total - before.machine.total;
  const busy = after.machine.busy - before.machine.busy;
  const ours = after.ours - before.ours;
  return total > 0 ? Math.max(0, busy - ours) / total : 0;
}

function machineLine(): string {
  const cpu = cpus();
  return [
    `${cpu.length} CPUs (${cpu[0]?.model.trim() ?? 'unknown'})`,
    `Linux ${release()}`,
    `Node.js ${process.version}`,
    `HAProxy ${versionOf('haproxy', ['-v'], /HAProxy version (\S+)/)}`,
    `nginx ${versionOf('nginx', ['-v'], /nginx\/(\S+)/)}`,
    `iperf3 ${versionOf('iperf3', ['--version'], /iperf (\S+)/)}`,
    `wrk ${versionOf('wrk', ['--version'], /wrk (\S+)/)}`,
  ].join(', ');
}

/** The commit the measured l4lb was built from, and whether the working tree differed from it. */
export function l4lbRevision(repoDir: string): string {
  const head = spawnSync('git', ['-C', repoDir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  if (head.status !== 0) return 'not a git checkout';
  const dirty = spawnSync('git', ['-C', repoDir, 'status', '--porcelain', '--untracked-files=no', '--', 'src'], { encoding: 'utf8' });
  const changed = dirty.stdout.trim() === '' ? '' : ' (with uncommitted changes under src/)';
  return `commit ${head.stdout.trim()}${changed}`;
}

export interface LoadRecord {
  before: number[];
  after: number[];
  /** Share of all CPU time used by other processes during the run. */
  others: number;
}

export function resultSection(repoDir: string, summary: Summary, samples: ReadonlyMap<PathName, PathSamples>, options: RunSettings, argv: string[], load: LoadRecord, errors: string[]): string {
  const quoted = argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`));
  const command = `npm run bench:proxy${quoted.length > 0 ? ` -- ${quoted.join(' ')}` : ''}`;
  const targets = markdownTargets(summary, samples);
  const lines = [
    `## Latest run: ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}`,
    '',
    `- Command: \`${command}\``,
    `- l4lb: ${l4lbRevision(repoDir)}`,
    `- Machine: ${machineLine()}`,
    `- Settings: ${options.seconds} s per measurement, ${options.runs} run(s) per case interleaved across paths (medians), wrk ${options.threads} thread${options.threads === 1 ? '' : 's'} ${options.connections} connections, ${options.idle} idle connections.`,
    `- Load average (1, 5, 15 min) before: ${load.before.map((v) => v.toFixed(2)).join(', ')}; after: ${load.after.map((v) => v.toFixed(2)).join(', ')}. Other processes used ${(load.others * 100).toFixed(0)} % of the machine's CPU time during the run (user + system time from /proc/stat, minus this benchmark's process tree).`,
  ];
  if (options.note) lines.push(`- Note: ${options.note}`);
  for (const error of errors) lines.push(`- ${error}`);
  lines.push('', markdownTables(summary));
  if (targets) lines.push('', targets);
  return `${lines.join('\n')}\n`;
}

export const DOC_HEADER = `# Benchmarks

## Proxy data path (\`npm run bench:proxy\`)

What it measures, on loopback, with the client, the proxy and the backend all on this machine:
- **bulk**: iperf3 through each path, 1 stream and 4 streams (Gbit/s, receiver side); the proxy's CPU
  time (utime + stime from \`/proc/PID/stat\`) over the bytes moved gives CPU seconds per GB.
- wrk runs 2 threads over 64 connections (\`--threads\`, \`--connections\`), as the kernel path's
  targets were set: every core is busy, so a rate is what the whole machine (client, path, backend)
  does per second, and a path that costs less CPU per connection serves more. With one wrk thread
  the kernel path is bounded by wrk's own core instead: on loopback the kernel receives a packet in
  the context of the process that sent it, so the NAT work of every client packet lands on that
  core (measured in one run of 3 rounds each: the kernel path 21,932 new connections/s at 1 thread
  against 34,428 at 2, while HAProxy, whose work is on a core of its own, measured 21,766 and
  23,174).
- **new conn/s**: wrk with \`Connection: close\` against an nginx backend answering \`200 ok\`:
  each request is a new connection through the proxy. Proxy CPU µs per connection beside it.
- **keep-alive**: the same wrk over persistent connections: requests/s and latency p50/p99.
- **RSS/idle conn**: a separate client process holds 10,000 connections through the proxy, each greeted
  by the backend (so it is spliced end to end); the proxy's VmRSS growth divided by the count.
- Paths (\`--paths\`, default all that are installed):
  - \`direct\`: no proxy, the limit.
  - \`direct-ct\`: the same connections with conntrack on: a tiny nft table in its namespace with a
    \`ct state established,related accept\` rule, so every flow is tracked as the kernel NAT path's are.
  - \`l4lb\`: the splicer, \`node dist/cli.js run -c FILE\` as its own process; \`l4lb2\`: with
    \`workers: 2\` (its CPU time and RSS summed over the primary and both workers).
  - \`haproxy\`: HAProxy \`mode tcp\` with \`nbthread 1\`; \`haproxy-tuned\`: the same, tuned for bulk as
    operators run it (\`option splice-auto\`, \`tune.bufsize 65536\`, \`maxpipes 1024\`; it is left out
    of the memory case, since its pipes take the descriptors the idle connections need).
  - \`nginx\`: nginx \`stream\` with one worker (its worker process is the one sampled).
  - \`kernel\`, shown as **l4lb nat (kernel)**: \`l4lb run\` with one \`mode: nat\` service per backend,
    VIP \`127.0.0.1:PORT\`, local placement through the output hook ([kernel.md](kernel.md)). No
    process sits on the data path, so its proxy CPU and RSS columns read \`—\`, and the memory case
    does not apply.
- Configs are generated into a temp dir.
- Three network namespaces the benchmark creates, loopback only, because conntrack is per namespace:
  once a table that uses it is loaded in a namespace, every flow in that namespace is tracked.
  \`direct-ct\` and \`kernel\` load such tables, so they run in \`l4lb-bench-PID-ct\` and
  \`l4lb-bench-PID-nat\`; every other path runs in \`l4lb-bench-PID\`, which loads no nft table, so its
  flows are never tracked (the run reads conntrack's count there after each measurement and says in
  the results if it was ever above 0). \`direct-ct\` and \`kernel\` must not share a namespace: their
  clients reach the same backend port from the same source ports, one directly and one through the
  VIP, so each met the TIME_WAIT sockets the other left at the backend under another client tuple.
  This kernel gives every connection a timestamp offset of its own, so about half of those SYNs
  carried an older timestamp than the TIME_WAIT held, were refused by PAWS (\`TcpExtPAWSTimewait\`
  rose with \`TcpExtTCPSynRetrans\`) and waited for the one-second SYN retransmission: in one
  namespace the kernel path measured 225–6,116 new connections/s after \`direct-ct\` had run, 20,400
  alone. Each namespace has its own copy of the backends (iperf3 server, nginx HTTP and HTTPS
  backend, idle server), and a path's load generators (wrk, the iperf3 client, the idle client) run
  in the path's namespace, with \`ip netns exec\`: client, path and backend always share one. All are
  set up the same way and measured in the same run, interleaved, so ratios across them (the kernel
  path against \`direct-ct\` and HAProxy) are within one run. The namespaces, and the nft tables in
  them, are removed at the end, also on error and Ctrl-C; every process is stopped by PID. It needs
  root (CAP_SYS_ADMIN and CAP_NET_ADMIN).
- The kernel path's targets, as ratios in the same run: new connections/s, keep-alive requests/s and
  bulk throughput each ≥ 1.5× HAProxy at one thread, and new connections/s ≥ 0.8× \`direct-ct\`.
  They are printed as met or not met from the measured medians, beside the ratio within each run.
- Command, for the full table (quiet machine, writes the section between the markers below):
  \`npm run bench:proxy\`; only the kernel path against its references:
  \`npm run bench:proxy -- --paths direct,direct-ct,haproxy,haproxy-tuned,kernel\`.
- l4lb writes its access log (one JSON line per connection, to a file) as it would in production;
  HAProxy and nginx are run with logging off, as their defaults in a tuned setup would be.
- Idle connections: a proxy needs two descriptors per spliced connection. Where the hard
  \`RLIMIT_NOFILE\` is 20,000 and cannot be raised (no CAP_SYS_RESOURCE in a container), the count is
  lowered to 9,800 and the results say so.

Figures on a 2-core machine shared by client, proxy and backend move from run to run: compare the
ratios within one run, not absolute numbers across runs.
`;
