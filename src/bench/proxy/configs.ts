/**
 * Configuration files for the programs the proxy benchmark starts, generated as text (pure functions,
 * no I/O): the l4lb config (the YAML of `l4lb run -c`), HAProxy `mode tcp` at one thread, nginx
 * `stream` at one worker, and the nginx HTTP backend that answers wrk. Every path being measured
 * gets one listener per kind of backend, so the same proxy process serves every case.
 */

/** The loopback backends every path is measured against. */
export interface BackendPorts {
  /** iperf3 -s: bulk throughput. */
  readonly bulk: number;
  /** nginx http: a tiny `200 ok` for new-connection and keep-alive request rates. */
  readonly http: number;
  /** The idle holder: greets each connection with one byte, then keeps it open. */
  readonly idle: number;
  /** nginx https (the same `200 ok`, a P-256 certificate made per run): new TLS connections. */
  readonly tls: number;
}

export type BackendKind = keyof BackendPorts;
export const BACKEND_KINDS: readonly BackendKind[] = ['bulk', 'http', 'idle', 'tls'];

/**
 * The server name the TLS case's clients send: wrk sends the URL's host, here the address it
 * connects to, and the SNI listener routes that name (an exact route, not the default).
 */
export const TLS_SERVER_NAME = '127.0.0.1';

/** Ports a proxy listens on, one per backend kind. */
export type ListenPorts = BackendPorts;

const HOST = '127.0.0.1';

export interface L4lbConfigOptions {
  readonly balance: 'maglev' | 'ring' | 'rendezvous' | 'roundrobin' | 'leastconn';
  readonly maxConnections: number;
  /** `workers: N` (absent: the default, one process). */
  readonly workers?: number;
  /**
   * The TLS backend's clients come in through a `listeners:` entry that reads each ClientHello and
   * routes by its server name (TLS passthrough), instead of the service's own `listen`.
   */
  readonly sni?: boolean;
}

/** An l4lb configuration file (docs/configuration.md); timeouts long enough never to fire during a run. */
export function l4lbConfig(listen: ListenPorts, backends: BackendPorts, options: L4lbConfigOptions): string {
  const lines = options.workers === undefined ? ['services:'] : [`workers: ${options.workers}`, 'services:'];
  for (const kind of BACKEND_KINDS) {
    const routed = kind === 'tls' && options.sni === true;
    lines.push(
      `  - name: bench-${kind}`,
      ...(routed ? [] : [`    listen: ${HOST}:${listen[kind]}`]),
      `    balance: ${options.balance}`,
      `    hashKey: source-ip-port`,
      `    maxConnections: ${options.maxConnections}`,
      `    retries: 1`,
      `    timeouts: { connect: 3s, idle: 1h, queue: 5s, drain: 1s }`,
      `    backends:`,
      `      - { name: ${kind}1, address: ${HOST}:${backends[kind]}, weight: 1 }`,
    );
  }
  if (options.sni === true) {
    lines.push(
      'listeners:',
      `  - listen: ${HOST}:${listen.tls}`,
      '    routes:',
      `      - { sni: "${TLS_SERVER_NAME}", service: bench-tls }`,
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

/** Where the TLS backend's certificate and key are (made by `openssl req` at the start of a run). */
export interface TlsFiles {
  readonly certificate: string;
  readonly key: string;
}

/**
 * The HTTP backend wrk talks to: one worker, no access log, keep-alive without a request cap; the
 * same answer over TLS on `tlsPort` (sessions not resumed: every connection is a full handshake).
 */
export function nginxHttpBackendConfig(port: number, dir: string, tlsPort: number, tls: TlsFiles): string {
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
    '  server {',
    `    listen ${HOST}:${tlsPort} ssl backlog=4096;`,
    `    ssl_certificate ${tls.certificate};`,
    `    ssl_certificate_key ${tls.key};`,
    '    ssl_session_cache off;',
    '    ssl_session_tickets off;',
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
