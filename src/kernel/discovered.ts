/**
 * The backends a kernel service (`mode: nat`, `mode: dsr`) runs with: the ones its file names, then
 * the ones its `dns:`/`srv:` entries found (src/services/dns.ts, sorted by name), under the rules
 * the kernel's tables impose on an address (docs/kernel.md "Backends from DNS"):
 *
 * - nat: one slot map holds one address family, the VIP's: an address of the other family is dropped.
 * - dsr: the director rewrites IPv4 destinations and never ports: an IPv6 address is dropped, and
 *   so is an SRV record whose port is not the VIP's (a `dns:` entry's port is checked in the file).
 * - Both: a discovered backend at an address a named backend (or an earlier discovered one) has
 *   already is dropped (two slots values that are one backend could not be told apart), and one
 *   with the name of a named backend is that backend. Past `tableSize` backends the first by name
 *   are kept, as the proxy's Maglev plans do (src/services backends.ts).
 *
 * Pure: the caller logs what was dropped.
 */
import { isIP, isIPv4 } from 'node:net';
import type { BackendConfig, KernelServiceConfig } from '../config/index.js';

/** Why a discovered backend is not used. */
export type DropReason = 'family' | 'port' | 'address';

export interface DroppedBackend {
  readonly backend: string;
  readonly reason: DropReason;
  /** What the operator reads: the rule it broke. */
  readonly detail: string;
}

export interface KernelBackendSet<S extends KernelServiceConfig> {
  /** The service with `backends` = the named ones, then the discovered ones that are used. */
  readonly service: S;
  /** Names of the used backends that were discovered. */
  readonly discovered: ReadonlySet<string>;
  readonly dropped: readonly DroppedBackend[];
  /** Discovered backends left out because the table has no more room. */
  readonly truncated: number;
}

/** The effective backends of `service` with `discovered` (the DNS watcher's set, sorted by name). Pure. */
export function kernelBackendSet<S extends KernelServiceConfig>(service: S, discovered: readonly BackendConfig[]): KernelBackendSet<S> {
  const names = new Set(service.backends.map((backend) => backend.name));
  const addresses = new Set(service.backends.map((backend) => `${backend.address.host}:${backend.address.port}`));
  const used: BackendConfig[] = [];
  const dropped: DroppedBackend[] = [];
  for (const backend of discovered) {
    if (names.has(backend.name)) continue;
    const reason = kernelRule(service, backend);
    if (reason !== undefined) {
      dropped.push({ backend: backend.name, ...reason });
      continue;
    }
    const where = `${backend.address.host}:${backend.address.port}`;
    if (addresses.has(where)) {
      dropped.push({ backend: backend.name, reason: 'address', detail: `another backend of the service is already at ${where}` });
      continue;
    }
    names.add(backend.name);
    addresses.add(where);
    // The kernel counts no connections and ramps no shares: only what a slot needs is kept.
    used.push({ name: backend.name, address: backend.address, weight: backend.weight, ...(backend.backup === true ? { backup: true } : {}) });
  }
  const room = Math.max(0, service.tableSize - service.backends.length);
  const truncated = Math.max(0, used.length - room);
  used.length = Math.min(used.length, room);
  return { service: { ...service, backends: [...service.backends, ...used] }, discovered: new Set(used.map((backend) => backend.name)), dropped, truncated };
}

function kernelRule(service: KernelServiceConfig, backend: BackendConfig): Omit<DroppedBackend, 'backend'> | undefined {
  const { host, port } = backend.address;
  switch (service.mode) {
    case 'nat': {
      const family = isIP(service.vip.host);
      if (isIP(host) !== family) return { reason: 'family', detail: `${host} is not an IPv${family} address like the VIP ${service.vip.host} (one slot map holds one address family)` };
      return undefined;
    }
    case 'dsr':
      if (!isIPv4(host)) return { reason: 'family', detail: `${host} is not an IPv4 address (the DSR director is IPv4 only)` };
      if (port !== service.vip.port) return { reason: 'port', detail: `port ${port} differs from the VIP port ${service.vip.port}: DSR does not rewrite ports` };
      return undefined;
    default: {
      const never: never = service;
      return never;
    }
  }
}
