/**
 * The typed configuration every other part of l4lb codes against (docs/configuration.md; `mode: dsr`
 * in docs/dsr.md). Values here are already validated and normalised: durations in milliseconds,
 * addresses parsed into host and port, every default filled in. Nothing downstream re-checks them.
 *
 * A leaf: this module imports nothing, so any module (the schema, the proxy, the cluster, the health
 * module's callers) can use these types without an import cycle. Unions that mirror another module's
 * (the health check types) are checked against it where both meet, in health-fields.ts.
 */

/** A parsed `host:port` or `[v6]:port`; `host` is kept without brackets. */
export interface Endpoint {
  host: string;
  port: number;
}

export interface BackendConfig {
  name: string;
  address: Endpoint;
  weight: number;
  maxConnections?: number;
  /** Takes traffic only when no primary backend is usable. */
  backup?: boolean;
  /** ms over which a recovered backend's share ramps from 0 to full. */
  slowStart?: number;
  /** The administrative state at start (absent: active). */
  state?: AdminState;
}

/**
 * A backend entry that stands for every server a DNS name lists (HAProxy's `server-template` with
 * `resolvers`, nginx's `server … resolve`, Envoy's STRICT_DNS): `dns` takes every A and AAAA
 * record of `name` at `port`; `srv` every SRV record of `name` (RFC 2782: target, port, weight,
 * priority). Each discovered server becomes a backend named by its identity (src/services
 * discovery.ts): `ADDRESS:PORT` for `dns`, `TARGET:PORT` for `srv`.
 */
export interface DnsBackendConfig {
  type: DnsBackendType;
  /** The name queried: `pg.service.consul`, `_postgresql._tcp.db.example`. */
  name: string;
  /** `dns` only: the port every address is reached on. */
  port?: number;
  /** ms: the longest time between two queries (a shorter TTL re-queries sooner, never under DNS_LIMITS.minTtl). */
  refresh: number;
  /** `dns` only: the weight of every discovered backend (`srv` takes each record's weight). */
  weight: number;
  maxConnections?: number;
  /** `dns` only: every discovered backend is a backup (`srv`: records of a higher priority number are). */
  backup?: boolean;
  slowStart?: number;
}

export type DnsBackendType = 'dns' | 'srv';

/** All in milliseconds. */
export interface Timeouts {
  connect: number;
  idle: number;
  queue: number;
  drain: number;
  /** Set exactly when `proxyProtocol.accept` is: how long a trusted peer has to send its header. */
  proxyHeader?: number;
}

/** PROXY protocol versions (HAProxy doc/proxy-protocol.txt §2.1 text, §2.2 binary). */
export type ProxyVersion = 'v1' | 'v2';
export const PROXY_VERSIONS: readonly ProxyVersion[] = ['v1', 'v2'];

/** `proxyProtocol` of a proxy service: at least one of the two is set. */
export interface ProxyProtocolConfig {
  /** Every backend connection starts with a header carrying the client and destination. */
  send?: ProxyVersion;
  /** Peers (CIDR blocks) that must start with a header (v1 or v2); its source is then the client. */
  accept?: string[];
}

/** Per-source limits of a proxy service (src/rules/limits.ts); at least one limit is set. */
export interface SourceLimitsConfig {
  perSourceConnections?: number;
  /** "N/s" or "N/m". */
  perSourceRate?: string;
  maxSources?: number;
}

export type Balance = 'maglev' | 'ring' | 'rendezvous' | 'roundrobin' | 'leastconn';
export const BALANCES: readonly Balance[] = ['maglev', 'ring', 'rendezvous', 'roundrobin', 'leastconn'];

export type HashKeyKind = 'source-ip' | 'source-ip-port';
export const HASH_KEY_KINDS: readonly HashKeyKind[] = ['source-ip', 'source-ip-port'];
/**
 * What a proxy service hashes: the client's address (and port), or `sni`, the server name the
 * ClientHello named when the connection came through a `listeners` route (every client of one
 * tenant on one backend); a connection without one is keyed on its source address.
 */
export type ProxyHashKey = HashKeyKind | 'sni';
export const PROXY_HASH_KEYS: readonly ProxyHashKey[] = [...HASH_KEY_KINDS, 'sni'];

/** `jhash` is the kernel's nft jhash mapping used by the DSR director; `murmur3` the hashing core's default. */
export type FlowHash = 'murmur3' | 'jhash';
export const FLOW_HASHES: readonly FlowHash[] = ['murmur3', 'jhash'];

/** Administrative state of a backend, kept apart from its health. */
export type AdminState = 'active' | 'draining' | 'maintenance';
export const ADMIN_STATES: readonly AdminState[] = ['active', 'draining', 'maintenance'];

/** What happens to a backend's established connections when it goes down. */
export type OnDown = 'keep' | 'close';
export const ON_DOWN: readonly OnDown[] = ['keep', 'close'];

/** The checker types (src/health CheckType). */
export type HealthCheckType = 'tcp' | 'redis' | 'pgsql' | 'mysql' | 'http';
/** How a backend starts before its first probe, HAProxy's `init-state` (src/health InitialHealth). */
export type InitialHealthSetting = 'fully-up' | 'up' | 'down' | 'fully-down';
/** Accepted HTTP statuses: 200, "2xx", "200-399", or a list of these (src/health ExpectedStatus). */
export type ExpectedStatusSetting = number | string | readonly (number | string)[];

/** A service's health check, defaults filled in; durations in ms. */
export interface HealthCheckConfig {
  type: HealthCheckType;
  interval: number;
  timeout: number;
  rise: number;
  fall: number;
  initial: InitialHealthSetting;
  /** http only */
  path?: string;
  host?: string;
  expect?: ExpectedStatusSetting;
  /** pgsql only */
  user?: string;
  database?: string;
}

export interface ProxyServiceConfig {
  mode: 'proxy';
  name: string;
  /** Where it accepts connections of its own (IPv4 and IPv6 alike); empty when only `listeners` routes reach it. */
  listen: Endpoint[];
  balance: Balance;
  hashKey: ProxyHashKey;
  flowHash: FlowHash;
  hashSeed: number;
  tableSize: number;
  balanceFactor?: number;
  /** Absent when not configured (then every backend counts as up). */
  healthCheck?: HealthCheckConfig;
  /** Absent means keep. */
  onDown?: OnDown;
  maxConnections: number;
  retries: number;
  timeouts: Timeouts;
  /** The backends named in the file (empty when every entry is a `dns:`/`srv:` one). */
  backends: BackendConfig[];
  /** `dns:`/`srv:` entries of `backends`, in file order; absent when there are none. */
  dnsBackends?: DnsBackendConfig[];
  /** Absent when not configured. */
  proxyProtocol?: ProxyProtocolConfig;
  /** CIDR blocks matched on the effective client (after a PROXY header); deny wins. */
  allow?: string[];
  deny?: string[];
  limits?: SourceLimitsConfig;
}

/** DSR backends: `address.host` is an IPv4 literal; `address.port` is the VIP's port (DSR does not rewrite ports). */
export interface DsrServiceConfig {
  mode: 'dsr';
  name: string;
  vip: Endpoint;
  dscp: number;
  hashKey: HashKeyKind;
  hashSeed: number;
  tableSize: number;
  /** Absent when not configured (then every backend counts as up). */
  healthCheck?: HealthCheckConfig;
  /** What a down backend's established flows get: close (the default of kernel modes) or keep. */
  onDown: OnDown;
  /** The backends named in the file (empty when every entry is a `dns:`/`srv:` one). */
  backends: BackendConfig[];
  /** `dns:`/`srv:` entries of `backends`, in file order; absent when there are none. A `dns:` entry's port is the VIP's. */
  dnsBackends?: DnsBackendConfig[];
}

/**
 * Full NAT in the kernel (nftables DNAT to the Maglev slot's backend, SNAT or masquerade on the way
 * out: docs/kernel.md). `vip` is an IPv4 or IPv6 literal; every backend address is of the VIP's
 * family; a backend's port may differ from the VIP's.
 */
export interface NatServiceConfig {
  mode: 'nat';
  name: string;
  vip: Endpoint;
  hashKey: HashKeyKind;
  hashSeed: number;
  tableSize: number;
  /** The source address replies come back to; absent: masquerade (the outgoing interface's address). */
  snat?: string;
  healthCheck?: HealthCheckConfig;
  onDown: OnDown;
  /** The backends named in the file (empty when every entry is a `dns:`/`srv:` one). */
  backends: BackendConfig[];
  /** `dns:`/`srv:` entries of `backends`, in file order; absent when there are none. */
  dnsBackends?: DnsBackendConfig[];
}

/** The services whose data plane is the kernel, driven by `l4lb run` (src/kernel). */
export type KernelServiceConfig = DsrServiceConfig | NatServiceConfig;

export type ServiceConfig = ProxyServiceConfig | DsrServiceConfig | NatServiceConfig;
export type ServiceMode = ServiceConfig['mode'];

export interface AdminConfig {
  listen: Endpoint;
  /** Every admin request must carry `Authorization: Bearer <token>` (RFC 6750 §2.1). */
  token?: string;
  /** GET /metrics (read-only) answers without the token, so a Prometheus scraper holds no write credential. */
  metricsPublic?: boolean;
  /** Where `token` was read from (an absolute path), when the file gave `tokenFile`. */
  tokenFile?: string;
}

/** Processes that share the listeners (src/cluster); `auto` is os.availableParallelism(). */
export type WorkersSetting = number | 'auto';

/**
 * A route of a TLS passthrough listener: an exact server name (`db.example.com`), a leading
 * wildcard (`*.example.org`: one label, as nginx's map and HAProxy's `-m dom`-less matches treat
 * it; `a.example.org` yes, `a.b.example.org` and `example.org` no), or the default, taken for a
 * name no route matches, a ClientHello without a name and a first flight that is not TLS.
 * Names are kept lower case without a trailing dot.
 */
export type RouteConfig = { readonly sni: string; readonly service: string } | { readonly default: string };

/** A listener that routes by the ClientHello's server name without terminating TLS (nginx `ssl_preread`). */
export interface ListenerConfig {
  listen: Endpoint;
  routes: RouteConfig[];
  /** ms: how long the first flight may take to hold a whole ClientHello (HAProxy's `tcp-request inspect-delay`). */
  timeouts: { inspect: number };
}

export interface Config {
  admin?: AdminConfig;
  /** Absent when not given (then 1: one process, no cluster); see `workerCount`. */
  workers?: WorkersSetting;
  /** `timestamp`: `time` as epoch ms (default) or ISO 8601; `level`: the least level written (default info). Read at start. */
  log?: { timestamp?: 'epoch' | 'iso'; level?: 'debug' | 'info' | 'warn' | 'error' };
  /** Access lines to this file instead of stdout, reopened on SIGUSR1. Read at start. */
  accessLog?: { path: string };
  /** DNS servers `dns:`/`srv:` backends are resolved through (port 53 unless given); absent: the system's (/etc/resolv.conf). */
  resolvers?: Endpoint[];
  /** TLS passthrough listeners; absent when there are none. */
  listeners?: ListenerConfig[];
  services: ServiceConfig[];
}
