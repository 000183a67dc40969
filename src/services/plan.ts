/**
 * A service's plan: the immutable snapshot new connections are placed with — its configuration,
 * its resolved backends and the strategy built over them. Building it is pure (Katran's
 * build-then-program habit): a reload resolves addresses (src/services/resolve.ts), builds a new
 * plan and swaps one reference; connections already placed keep the plan they started with.
 */
import { formatEndpoint, type Endpoint, type ProxyServiceConfig } from '../config/index.js';
import { LbError } from '../errors.js';
import { hashKey, jhashSlotHash, type SlotHash } from '../hashing/index.js';
import type { BackendCounters, ServiceLoads } from './counters.js';
import { outOfStep, type ResolvedAddress } from './resolve.js';
import { createChooser, type Chooser } from './strategy.js';

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
  /** Passive health (src/services/state.ts): told of each connect's outcome and of backend resets. */
  readonly observe?: (backend: string, passed: boolean) => void;
}

/** The key → Maglev slot mapping the service asked for, seeded. */
export function slotHashOf(config: Pick<ProxyServiceConfig, 'flowHash' | 'hashSeed'>): SlotHash {
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

/**
 * Pre: `config` validated by the config layer; `resolved` is resolveBackends(config), in order
 * (else LB_ERR_INVALID_ARGUMENT).
 * Backends take their counters from `loads` by name (kept across plans). Pure apart from
 * creating counters for new names. The caller that puts the plan in service makes its backends
 * the members of `loads`' running total (setMembers), which bounded loads read. Cost: the
 * strategy's table build (Maglev: O(M log M)).
 */
export function buildPlan(config: ProxyServiceConfig, resolved: readonly ResolvedAddress[], loads: ServiceLoads): ServicePlan {
  const backends = config.backends.map((backend, i): ResolvedBackend => {
    const address = resolved[i]?.address;
    if (address === undefined) throw outOfStep(config, backend.name);
    return {
      name: backend.name,
      weight: backend.weight,
      address,
      configured: formatEndpoint(backend.address),
      maxConnections: backend.maxConnections ?? Infinity,
      counters: loads.of(backend.name),
    };
  });
  const chooser = createChooser(config.balance, backends, {
    tableSize: config.tableSize,
    slotHash: config.balance === 'maglev' ? slotHashOf(config) : undefined,
    balanceFactor: config.balanceFactor,
    loads,
  });
  return { config, backends, chooser, hashes: chooser.balance !== 'roundrobin' && chooser.balance !== 'leastconn' };
}
