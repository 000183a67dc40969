/**
 * Configuration files for the programs the proxy benchmark starts, generated as text (pure functions,
 * no I/O): the l4lb config (the YAML of `l4lb run -c`), HAProxy `mode tcp` at one thread, nginx
 * `stream` at one worker, and the nginx HTTP backend that answers wrk. Every path being measured
 * gets one listener per kind of backend, so the same proxy process serves every case.
 */

/** The three loopback backends every path is measured against. */
export interface BackendPorts {
  /** iperf3 -s: bulk throughput. */
  readonly bulk: number;
  /** nginx http: a tiny `200 ok` for new-connection and keep-alive request rates. */
  readonly http: number;
  /** The idle holder: greets each connection with one byte, then keeps it open. */
  readonly idle: number;
}

export type BackendKind = keyof BackendPorts;
export const BACKEND_KINDS: readonly BackendKind[] = ['bulk', 'http', 'idle'];

/** Ports a proxy listens on, one per backend kind. */
export type ListenPorts = BackendPorts;

const HOST = '127.0.0.1';

export interface L4lbConfigOptions {
  readonly balance: 'maglev' | 'ring' | 'rendezvous' | 'roundrobin' | 'leastconn';
  readonly maxConnections: number;
  /** `workers: N` (absent: the default, one process). */
  readonly workers?: number;
}

/** An l4lb configuration file (docs/configuration.md); timeouts long enough never to fire during a run. */
export function l4lbConfig(listen: ListenPorts, backends: BackendPorts, options: L4lbConfigOptions): string {
  const lines = options.workers === undefined ? ['services:'] : [`workers: ${options.workers}`, 'services:'];
  for (const kind of BACKEND_KINDS) {
    lines.push(
      `  - name: bench-${kind}`,
      `    listen: ${HOST}:${listen[kind]}`,
      `    balance: ${options.balance}`,
      `    hashKey: source-ip-port`,
      `    maxConnections: ${options.maxConnections}`,
      `    retries: 1`,
      `    timeouts: { connect: 3s, idle: 1h, queue: 5s, drain: 1s }`,
      `    backends:`,
      `      - { name: ${kind}1, address: ${HOST}:${backends[kind]}, weight: 1 }`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * `mode: nat` services of `l4lb run`, one per backend kind: the kernel DNATs 127.0.0.1:listen to the
 * backend in the output hook (local placement, docs/kernel.md); no process sits on the data path.
 */
export function l4lbNatConfig(listen: ListenPorts, backends: BackendPorts): string {
  const lines = ['services:'];
  for (const kind of BACKEND_KINDS) {
    lines.push(
      `  - name: bench-nat-${kind}`,
      `    mode: nat`,
      `    vip: ${HOST}:${listen[kind]}`,
      `    hashKey: source-ip-port`,
      `    backends:`,
      `      - { name: ${kind}1, address: ${HOST}:${backends[kind]}, weight: 1 }`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * A table that makes conntrack track every flow in the namespace (the cost a kernel NAT path pays
 * on top of a direct connection) and changes nothing else. Each closing brace on its own line
 * (nft 1.0.6 rejects `}` after a rule on the same line).
 */
export const CONNTRACK_TABLE = 'bench_conntrack';
export function conntrackRuleset(): string {
  return [
    `table inet ${CONNTRACK_TABLE} {`,
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    '    ct state established,related accept',
    '  }',
    '  chain output {',
    '    type filter hook output priority filter; policy accept;',
    '    ct state established,related accept',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** HAProxy as operators tune it for bulk: splice(2) between sockets, 64 KiB buffers. */
export interface HaproxyTuning {
  /** `maxpipes`: each pipe is two descriptors, counted against the same limit as connections. */
  readonly maxPipes: number;
}

/**
 * HAProxy in the foreground (`-db`), one thread, no logging, `mode tcp`; with `tuning`, also
 * `option splice-auto` and `tune.bufsize 65536`.
 */
export function haproxyConfig(listen: ListenPorts, backends: BackendPorts, maxConnections: number, tuning?: HaproxyTuning): string {
  const global = tuning === undefined ? [] : ['  tune.bufsize 65536', `  maxpipes ${tuning.maxPipes}`];
  const defaults = tuning === undefined ? [] : ['  option splice-auto'];
  const lines = [
    'global',
    '  nbthread 1',
    `  maxconn ${maxConnections}`,
    ...global,
    '',
    'defaults',
    '  mode tcp',
    ...defaults,
    `  maxconn ${maxConnections}`,
    '  timeout connect 3s',
    '  timeout client 1h',
    '  timeout server 1h',
    '',
  ];
  for (const kind of BACKEND_KINDS) {
    lines.push(`listen bench-${kind}`, `  bind ${HOST}:${listen[kind]}`, `  server ${kind}1 ${HOST}:${backends[kind]}`, '');
  }
  return lines.join('\n');
}

export interface NginxPaths {
  /** Directory for the pid file, error log and temp paths (a directory of the run's temp dir). */
  readonly dir: string;
  readonly streamModule: string;
}

/** nginx `stream` proxy: master plus one worker, in the foreground. */
export function nginxStreamConfig(listen: ListenPorts, backends: BackendPorts, maxConnections: number, paths: NginxPaths, descriptors: number): string {
  const servers = BACKEND_KINDS.map(
    (kind) => `  server { listen ${HOST}:${listen[kind]}; proxy_pass ${HOST}:${backends[kind]}; proxy_timeout 1h; proxy_connect_timeout 3s; }`,
  );
  return [
    `load_module ${paths.streamModule};`,
    ...nginxCommon(paths.dir, maxConnections, descriptors),
    'stream {',
    ...servers,
    '}',
    '',
  ].join('\n');
}

/** The HTTP backend wrk talks to: one worker, no access log, keep-alive without a request cap. */
export function nginxHttpBackendConfig(port: number, dir: string): string {
  return [
    ...nginxCommon(dir, 4096, 8192),
    'http {',
    '  access_log off;',
    `  client_body_temp_path ${dir}/client_body;`,
    `  proxy_temp_path ${dir}/proxy;`,
    `  fastcgi_temp_path ${dir}/fastcgi;`,
    `  uwsgi_temp_path ${dir}/uwsgi;`,
    `  scgi_temp_path ${dir}/scgi;`,
    '  keepalive_requests 10000000;',
    '  keepalive_timeout 300s;',
    '  server {',
    `    listen ${HOST}:${port} backlog=4096;`,
    '    location / { default_type text/plain; return 200 "ok\\n"; }',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** `descriptors`: the worker's RLIMIT_NOFILE, at most the hard limit it will run under. */
function nginxCommon(dir: string, maxConnections: number, descriptors: number): string[] {
  return [
    'daemon off;',
    'master_process on;',
    'worker_processes 1;',
    `worker_rlimit_nofile ${descriptors};`,
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log warn;`,
    `events { worker_connections ${Math.min(2 * maxConnections + 64, descriptors)}; }`,
  ];
}
