/**
 * Starting what the proxy benchmark measures: the loopback backends (iperf3 server, nginx HTTP and
 * HTTPS, idle holder) and each path in front of them (l4lb via its CLI `run`, HAProxy plain and tuned for
 * bulk, nginx `stream`, l4lb's kernel NAT), each in its own process under the run's ProcessGroup
 * (whose children all run in that group's namespace: src/bench/proxy/places.ts). A path is ready once its HTTP and idle listeners
 * accept (probing the bulk listener would hand iperf3 a bogus control connection).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BACKEND_KINDS, conntrackRuleset, haproxyConfig, l4lbConfig, l4lbNatConfig, nginxHttpBackendConfig, nginxStreamConfig, TLS_SERVER_NAME, type BackendPorts, type ListenPorts,
} from './configs.js';
import { BenchError, descriptorLimit, freePort, waitForPort, type ProcessGroup, type Started } from './procs.js';
import type { PathName } from './report.js';

export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

/** A path under test: where clients connect, and the process whose CPU and memory are sampled. */
export interface RunningPath {
  readonly name: PathName;
  readonly listen: ListenPorts;
  /** The processes whose CPU time and RSS are the path's (summed): none for direct and the kernel path. */
  readonly measuredPids: readonly number[];
  /** Why the memory case does not apply to this path (it is left out), or undefined. */
  readonly noMemory?: string;
  readonly processes: readonly Started[];
}

async function portsFor(taken: Set<number>): Promise<BackendPorts> {
  return { bulk: await freePort(taken), http: await freePort(taken), idle: await freePort(taken), tls: await freePort(taken) };
}

/** Resolves once `started` prints a line matching `pattern` on stdout (which it keeps draining). */
function waitForLine(group: ProcessGroup, started: Started, pattern: RegExp, timeoutMs = 10000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    let done = false;
    const finish = (error?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(() => finish(new BenchError(`${started.label} not ready within ${timeoutMs} ms:\n${group.tail(started)}`)), timeoutMs);
    started.child.stdout?.on('data', (chunk: Buffer) => {
      if (done) return;
      seen = (seen + chunk.toString('utf8')).slice(-4096);
      if (pattern.test(seen)) finish();
    });
    started.child.once('exit', (code) => finish(new BenchError(`${started.label} exited (${code}) before it was ready:\n${seen}\n${group.tail(started)}`)));
  });
}

export async function startBackends(group: ProcessGroup, taken: Set<number>, benchDir: string): Promise<BackendPorts> {
  const ports = await portsFor(taken);
  const iperf = group.start('iperf3-server', 'iperf3', ['-s', '-B', '127.0.0.1', '-p', String(ports.bulk), '--forceflush'], { pipeStdout: true });
  const iperfReady = waitForLine(group, iperf, /Server listening/);

  const httpDir = join(group.dir, 'nginx-backend');
  mkdirSync(httpDir);
  const tls = { certificate: join(httpDir, 'tls.crt'), key: join(httpDir, 'tls.key') };
  // A P-256 key (cheaper handshakes than RSA: the proxies' share of a connection shows more), self-signed; wrk does not verify.
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', `/CN=${TLS_SERVER_NAME}`, '-keyout', tls.key, '-out', tls.certificate], { stdio: 'ignore' });
  writeFileSync(join(httpDir, 'nginx.conf'), nginxHttpBackendConfig(ports.http, httpDir, ports.tls, tls));
  const http = group.start('nginx-backend', 'nginx', ['-p', httpDir, '-e', join(httpDir, 'error.log'), '-c', join(httpDir, 'nginx.conf')]);

  const idle = group.start('idle-server', process.execPath, [join(benchDir, 'proxy', 'idle.js'), 'server', String(ports.idle)], { pipeStdout: true });
  const idleReady = waitForLine(group, idle, /listening/);

  await Promise.all([iperfReady, waitForPort(group, http, ports.http), waitForPort(group, http, ports.tls), idleReady]);
  adoptChildren(group, http.pid);
  return ports;
}

/** nginx's master forks its worker; stop that PID too, whatever happens to the master. */
function adoptChildren(group: ProcessGroup, pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    children = [];
  }
  for (const child of children) group.adopt(child);
  return children;
}

export interface PathOptions {
  /** Arguments appended to `node dist/cli.js run -c FILE`. */
  readonly l4lbArgs: readonly string[];
  readonly maxConnections: number;
  readonly distDir: string;
  /** Loads an nft ruleset in the namespace the path runs in. */
  readonly nft: (ruleset: string) => void;
}

/** Splice pipes HAProxy tuned for bulk may hold (two descriptors each, beside two per connection). */
const TUNED_MAX_PIPES = 1024;

export async function startPath(
  name: PathName, group: ProcessGroup, taken: Set<number>, backends: BackendPorts, options: PathOptions,
): Promise<RunningPath> {
  if (name === 'direct') return { name, listen: backends, measuredPids: [], processes: [] };
  if (name === 'direct-ct') {
    // The backends of its namespace; the table makes conntrack track every flow there from now on.
    options.nft(conntrackRuleset());
    return { name, listen: backends, measuredPids: [], processes: [] };
  }
  const listen = await portsFor(taken);
  const dir = join(group.dir, `${name}-${listen.http}`);
  mkdirSync(dir);
  let started: Started;
  let noMemory: string | undefined;
  switch (name) {
    case 'l4lb':
    case 'l4lb-sni':
    case 'l4lb2': {
      const file = join(dir, 'l4lb.yaml');
      const workers = name === 'l4lb2' ? 2 : undefined;
      writeFileSync(file, l4lbConfig(listen, backends, { balance: 'maglev', maxConnections: options.maxConnections, workers, sni: name === 'l4lb-sni' }));
      started = group.start('l4lb', process.execPath, [join(options.distDir, 'cli.js'), 'run', '-c', file, ...options.l4lbArgs]);
      break;
    }
    case 'haproxy': {
      const file = join(dir, 'haproxy.cfg');
      writeFileSync(file, haproxyConfig(listen, backends, options.maxConnections));
      started = group.start('haproxy', 'haproxy', ['-db', '-f', file]);
      break;
    }
    case 'haproxy-tuned': {
      // Its pipes count against the descriptor limit the idle case already fills: fewer connections,
      // and the memory case is left to plain HAProxy.
      const maxConnections = Math.min(options.maxConnections, Math.floor((descriptorLimit() - 200) / 2) - TUNED_MAX_PIPES);
      const file = join(dir, 'haproxy.cfg');
      writeFileSync(file, haproxyConfig(listen, backends, maxConnections, { maxPipes: TUNED_MAX_PIPES }));
      started = group.start('haproxy-tuned', 'haproxy', ['-db', '-f', file]);
      noMemory = 'its splice pipes take descriptors the idle connections need';
      break;
    }
    case 'kernel': {
      // No process on the data path: l4lb writes the nat table and runs health checks only.
      const file = join(dir, 'l4lb-nat.yaml');
      writeFileSync(file, l4lbNatConfig(listen, backends));
      started = group.start('l4lb-nat', process.execPath, [join(options.distDir, 'cli.js'), 'run', '-c', file, '--cleanup-on-exit']);
      noMemory = 'the kernel holds a flow as a conntrack entry, not in a process';
      break;
    }
    case 'nginx': {
      const file = join(dir, 'nginx.conf');
      writeFileSync(file, nginxStreamConfig(listen, backends, options.maxConnections, { dir, streamModule: NGINX_STREAM_MODULE }, descriptorLimit()));
      started = group.start('nginx-stream', 'nginx', ['-p', dir, '-e', join(dir, 'error.log'), '-c', file]);
      break;
    }
  }
  // The kernel path listens once its table is in: three 65537-slot maps in one nft transaction,
  // which takes seconds on a busy machine (1.7 s for one map at load 10), so it gets longer.
  const readyMs = name === 'kernel' ? 60000 : 10000;
  for (const kind of BACKEND_KINDS) {
    if (kind !== 'bulk') await waitForPort(group, started, listen[kind], readyMs);
  }
  let measuredPids = [started.pid];
  if (name === 'nginx') {
    const workers = adoptChildren(group, started.pid);
    if (workers.length !== 1) throw new BenchError(`nginx stream: expected 1 worker process, found ${workers.length}`);
    measuredPids = workers;
  } else if (name === 'l4lb2') {
    // The primary (health checks, no listeners of its own) and its two workers: all of l4lb's cost.
    const workers = adoptChildren(group, started.pid);
    if (workers.length !== 2) throw new BenchError(`l4lb workers: 2: expected 2 worker processes, found ${workers.length}`);
    measuredPids = [started.pid, ...workers];
  } else if (name === 'kernel') {
    measuredPids = [];
  }
  return { name, listen, measuredPids, processes: [started], noMemory };
}

export async function stopPath(group: ProcessGroup, path: RunningPath): Promise<void> {
  for (const started of path.processes) await group.stop(started);
}

/** Why a path cannot run on this machine, or undefined when it can. */
export function missingFor(name: PathName, haveCommand: (command: string) => boolean, distDir: string): string | undefined {
  switch (name) {
    case 'direct':
      return undefined;
    case 'direct-ct':
      return haveCommand('nft') ? undefined : 'nft not installed';
    case 'l4lb':
    case 'l4lb-sni':
    case 'l4lb2':
      return existsSync(join(distDir, 'cli.js')) ? undefined : `${join(distDir, 'cli.js')} not built`;
    case 'kernel':
      if (!haveCommand('nft')) return 'nft not installed';
      return existsSync(join(distDir, 'cli.js')) ? undefined : `${join(distDir, 'cli.js')} not built`;
    case 'haproxy':
    case 'haproxy-tuned':
      return haveCommand('haproxy') ? undefined : 'haproxy not installed';
    case 'nginx':
      if (!haveCommand('nginx')) return 'nginx not installed';
      return existsSync(NGINX_STREAM_MODULE) ? undefined : `${NGINX_STREAM_MODULE} missing (apt-get install libnginx-mod-stream)`;
  }
}
