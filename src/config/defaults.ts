/**
 * What an omitted key means, and the bounds of numeric keys: one place for docs/configuration.md
 * and the schema to agree on. Values another module owns (the Maglev table size, the health
 * module's HAProxy defaults) are imported from it, never written twice.
 */
import { DEFAULT_MAGLEV_TABLE_SIZE, MAX_MAGLEV_TABLE_SIZE } from '../hashing/index.js';
import { DEFAULT_FALL, DEFAULT_INTERVAL_MS, DEFAULT_RISE } from '../health/index.js';

export const DEFAULTS = {
  mode: 'proxy',
  balance: 'maglev',
  hashKey: 'source-ip',
  flowHash: 'murmur3',
  hashSeed: 0,
  tableSize: DEFAULT_MAGLEV_TABLE_SIZE,
  maxConnections: 10_000,
  retries: 2,
  weight: 1,
  timeouts: { connect: 3_000, idle: 30 * 60_000, queue: 5_000, drain: 30_000 },
  /** timeouts.proxyHeader, filled in only for services with proxyProtocol.accept. */
  proxyHeaderTimeout: 3_000,
  /** listeners[].timeouts.inspect: how long a client has to send its whole ClientHello. */
  inspectTimeout: 5_000,
  /** Top-level `workers`: one process, no cluster. */
  workers: 1,
  /** `onDown` of kernel services (mode: nat, dsr): a down backend's flows are reset, as no proxy retries them. */
  kernelOnDown: 'close',
} as const;

export const LIMITS = {
  maxRetries: 10,
  maxWeight: 1000,
  maxTableSize: MAX_MAGLEV_TABLE_SIZE,
  /**
   * The nft director's Maglev table (mode: dsr): nft loads 65,537 elements in under a second here;
   * 2^18 take seconds and tens of MB of kernel memory, and more buys nothing (the Maglev paper's
   * M ≥ 100·N rule needs M ≈ 2^17 only for about a thousand backends).
   */
  maxDsrTableSize: 262_144,
  maxHashSeed: 2 ** 32 - 1,
  minDscp: 1,
  maxDscp: 63,
  /** `workers`: processes sharing the listeners (node:cluster); far above any core count we target. */
  maxWorkers: 256,
} as const;

/**
 * `dns:`/`srv:` backends (src/services/dns.ts): how often a name is asked again, and the bounds
 * a TTL is held to. A name is re-queried after its answer's TTL, but never sooner than `minTtl`
 * (a TTL of 0, as dnsmasq gives its hosts files, must not mean a query per tick) and never later
 * than the entry's `refresh`. Each query waits `queryTimeout` per try, `queryTries` tries (c-ares).
 */
export const DNS_DEFAULTS = { refresh: 10_000, port: 53, queryTimeout: 1_000, queryTries: 2 } as const;
export const DNS_LIMITS = { minRefresh: 100, maxRefresh: 3_600_000, minTtl: 1_000 } as const;

/**
 * `healthCheck` keys left out, and a backend's `state` and a service's `onDown`: HAProxy's defaults
 * (`inter 2s`, `rise 2`, `fall 3`, timeout = inter, `init-state up`), the ones src/health uses.
 */
export const HEALTH_DEFAULTS = {
  type: 'tcp',
  interval: DEFAULT_INTERVAL_MS,
  rise: DEFAULT_RISE,
  fall: DEFAULT_FALL,
  initial: 'up',
  onDown: 'keep',
  state: 'active',
} as const;

/** `rise`/`fall` at most maxThreshold; `admin.token` at least minTokenLength characters. */
export const HEALTH_LIMITS = { maxThreshold: 100, minTokenLength: 16 } as const;
