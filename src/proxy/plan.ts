/**
 * A service's plan: the immutable snapshot new connections are placed with — its configuration,
 * its backends with addresses resolved once, and the strategy built over them. A reload builds a
 * new plan and swaps one reference (Katran's build-then-program habit); connections already placed
 * keep the plan they started with.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Endpoint, ProxyServiceConfig } from '../config/index.js';
import { LbError } from '../errors.js';
import { hashKey, type SlotHash } from '../hashing/index.js';
import { jhashSlotHash } from '../hashing/jhash.js';
import { formatAddress } from './access-log.js';
import { BackendCounters } from './limits.js';
import { createChooser, type Chooser } from './strategy.js';

/** Resolves a host name to one address; injectable so tests never ask a real resolver. */
export type Lookup = (host: string) => Promise<string>;

export const systemLookup: Lookup = async (host) => (await dnsLookup(host)).address;

export interface ResolvedBackend {
  readonly name: string;
  readonly weight: number;
  /** Where connections go: the configured host resolved to an address. */
  readonly address: Endpoint;
  /** As configured, for logs: `db1.example:5432`. */
  readonly configured: string;
  /** Infinity when unlimited. */
  readonly maxConnections: number;
  /** Shared by every plan of the service that has a backend of this name. */
  readonly counters: BackendCounters;
}

export interface ServicePlan {
  readonly config: ProxyServiceConfig;
  readonly backends: readonly ResolvedBackend[];
  readonly chooser: Chooser<ResolvedBackend>;
  /** Whether the strategy hashes the flow (the proxy skips building a key otherwise). */
  readonly hashes: boolean;
  /** Passive health (issue 4, src/proxy/health.ts): told of each connect's outcome and of backend resets. */
  readonly observe?: (backend: string, passed: boolean) => void;
}

/** The key → Maglev slot mapping the service asked for, seeded. */
export function slotHashOf(config: ProxyServiceConfig): SlotHash {
  switch (config.flowHash) {
    case 'murmur3': {
      const seed = config.hashSeed >>> 0;
      return (key, tableSize) => hashKey(key, seed) % tableSize;
    }
    case 'jhash':
      return jhashSlotHash(config.hashSeed);
    default: {
      const never: never = config.flowHash;
      throw new LbError('LB_ERR_CONFIG', `unknown flowHash "${String(never)}"`);
    }
  }
}

async function resolveHost(host: string, where: string, lookup: Lookup): Promise<string> {
  if (isIP(host) !== 0) return host;
  try {
    return await lookup(host);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new LbError('LB_ERR_RESOLVE', `${where}: cannot resolve "${host}" (${code})`);
  }
}

/**
 * Pre: `config` validated by the config layer. `counters` holds the service's backend counters by
 * name and gains entries for new names. Throws LbError (LB_ERR_RESOLVE) naming the backend whose
 * host resolves nowhere; resolution happens here only, never per connection.
 */
export async function buildPlan(
  config: ProxyServiceConfig,
  where: string,
  counters: Map<string, BackendCounters>,
  lookup: Lookup = systemLookup,
): Promise<ServicePlan> {
  const backends = await Promise.all(
    config.backends.map(async (backend, i): Promise<ResolvedBackend> => {
      const host = await resolveHost(backend.address.host, `${where}.backends[${i}] (${backend.name})`, lookup);
      let shared = counters.get(backend.name);
      if (shared === undefined) {
        shared = new BackendCounters();
        counters.set(backend.name, shared);
      }
      return {
        name: backend.name,
        weight: backend.weight,
        address: { host, port: backend.address.port },
        configured: formatAddress(backend.address.host, backend.address.port),
        maxConnections: backend.maxConnections ?? Infinity,
        counters: shared,
      };
    }),
  );
  const loads = { loadOf: (name: string) => counters.get(name)?.current ?? 0 };
  const chooser = createChooser(config.balance, backends, {
    tableSize: config.tableSize,
    slotHash: config.balance === 'maglev' ? slotHashOf(config) : undefined,
    balanceFactor: config.balanceFactor,
    loads,
  });
  return { config, backends, chooser, hashes: chooser.balance !== 'roundrobin' && chooser.balance !== 'leastconn' };
}
