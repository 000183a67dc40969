/**
 * The typed configuration every other part of l4lb codes against (issue 3 "Configuration", issue 6
 * for `mode: dsr`). Values here are already validated and normalised: durations in milliseconds,
 * addresses parsed into host and port, every default filled in. Nothing downstream re-checks them.
 */
import type { AdminState, HealthCheckConfig, OnDown } from './health.js';

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
  /** Issue 4: takes traffic only when no primary backend is usable. */
  backup?: boolean;
  /** Issue 4: ms over which a recovered backend's share ramps from 0 to full. */
  slowStart?: number;
  /** Issue 4: the administrative state at start (absent: active). */
  state?: AdminState;
}

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

/** `jhash` is the kernel's nft jhash mapping used by the DSR director; `murmur3` the hashing core's default. */
export type FlowHash = 'murmur3' | 'jhash';
export const FLOW_HASHES: readonly FlowHash[] = ['murmur3', 'jhash'];

export type ServiceMode = 'proxy' | 'dsr';
export const SERVICE_MODES: readonly ServiceMode[] = ['proxy', 'dsr'];

export interface ProxyServiceConfig {
  mode: 'proxy';
  name: string;
  listen: Endpoint;
  balance: Balance;
  hashKey: HashKeyKind;
  flowHash: FlowHash;
  hashSeed: number;
  tableSize: number;
  balanceFactor?: number;
  /** Issue 4: absent when not configured (then every backend counts as up). */
  healthCheck?: HealthCheckConfig;
  /** Issue 4: absent means keep. */
  onDown?: OnDown;
  maxConnections: number;
  retries: number;
  timeouts: Timeouts;
  backends: BackendConfig[];
  /** Issue 5: absent when not configured. */
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
  backends: BackendConfig[];
}

export type ServiceConfig = ProxyServiceConfig | DsrServiceConfig;

export interface AdminConfig {
  listen: Endpoint;
  /** Issue 4: every admin request must carry `Authorization: Bearer <token>`. */
  token?: string;
}

/** Issue 7: processes that share the listeners (src/cluster); `auto` is os.availableParallelism(). */
export type WorkersSetting = number | 'auto';

export interface Config {
  admin?: AdminConfig;
  /** Absent when not given (then 1: one process, no cluster); see `workerCount`. */
  workers?: WorkersSetting;
  services: ServiceConfig[];
}
