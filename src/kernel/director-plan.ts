/**
 * The DSR director's plan: what the nft renderers need from `mode: dsr` services, checked once.
 *
 * L3 DSR follows Yahoo's L3DSR (the DSCP of a packet names its VIP; the director rewrites only the
 * destination address, the backend restores it statelessly) and Kakao's take on it; L2 DSR is the
 * LVS-DR scheme (the director forwards the unchanged packet to the backend's MAC). Flows are spread by
 * a Maglev table (Eisenbud et al., NSDI'16 §3.4) whose slots the kernel indexes with
 * `jhash KEY mod M seed S` (net/netfilter/nft_hash.c), the same slot `jhashSlotHash` computes.
 */
import { isIPv4 } from 'node:net';
import { LIMITS, type DsrServiceConfig, type HashKeyKind } from '../config/index.js';
import { LbError } from '../errors.js';
import { buildMaglevTable, type Backend, type MaglevTable } from '../hashing/index.js';

/** How the director hands a packet to its backend: rewrite the destination (l3) or the MAC (l2). */
export type DsrMethod = 'l3' | 'l2';
export const DSR_METHODS: readonly DsrMethod[] = ['l3', 'l2'];

export function isDsrMethod(value: string): value is DsrMethod {
  return (DSR_METHODS as readonly string[]).includes(value);
}

/** Largest Maglev table the director accepts: the configuration's limit (src/config/defaults.ts), which `check` applies too. */
export const MAX_DSR_TABLE_SIZE = LIMITS.maxDsrTableSize;

/** Name of the nft table the director's ruleset owns; nothing else is touched. */
export const DIRECTOR_TABLE = 'l4lb_dsr';
export const BACKEND_TABLE = 'l4lb_dsr_backend';

export interface DsrBackend extends Backend {
  readonly address: string;
  /** The address as a u32: the L2 packet mark and routing table of this backend. */
  readonly mark: number;
}

export interface DirectorService {
  readonly name: string;
  /** `name` reduced to an nft identifier suffix (letters, digits, underscores). */
  readonly id: string;
  readonly vip: string;
  readonly port: number;
  readonly dscp: number;
  readonly hashKey: HashKeyKind;
  readonly seed: number;
  readonly table: MaglevTable<DsrBackend>;
}

/** The u32 of a dotted IPv4 address. Pre: `isIPv4(address)`. */
export function ipv4ToNumber(address: string): number {
  return address.split('.').reduce((value, part) => value * 256 + Number(part), 0);
}

/** The nft expression hashed for a flow key kind: fields concatenated as `flowKey()` orders them. */
export function nftKeyExpression(kind: HashKeyKind): string {
  switch (kind) {
    case 'source-ip':
      return 'ip saddr';
    case 'source-ip-port':
      return 'ip saddr . tcp sport';
    default: {
      const never: never = kind;
      throw new LbError('LB_ERR_CONFIG', `unknown hash key "${String(never)}"`);
    }
  }
}

function nftId(name: string): string {
  return name.replace(/[^A-Za-z0-9_]/g, '_');
}

function problem(service: string, message: string): LbError {
  return new LbError('LB_ERR_CONFIG', `service "${service}": ${message}`);
}

/**
 * Checks the services and builds each one's Maglev table. Throws LbError(LB_ERR_CONFIG) naming the
 * service and what is wrong: no service, a non-IPv4 VIP or backend, a backend port other than the
 * VIP's, a DSCP outside 1–63 or naming two VIPs, a table too large for nft, names that collide as
 * nft identifiers. Cost: one Maglev build per service.
 */
export function planDirector(services: readonly DsrServiceConfig[]): DirectorService[] {
  if (services.length === 0) throw new LbError('LB_ERR_CONFIG', 'no service with mode: dsr');
  const ids = new Map<string, string>();
  const vipOfDscp = new Map<number, string>();
  const endpoints = new Set<string>();
  return services.map((service) => {
    const { name, vip, dscp, tableSize } = service;
    if (!isIPv4(vip.host)) throw problem(name, `the VIP must be an IPv4 address, got "${vip.host}"`);
    if (!(Number.isInteger(dscp) && dscp >= 1 && dscp <= 63)) throw problem(name, `dscp must be an integer 1–63, got ${dscp}`);
    const other = vipOfDscp.get(dscp);
    if (other !== undefined && other !== vip.host) {
      throw problem(name, `dscp ${dscp} already names VIP ${other}; a backend could not tell the VIPs apart (give each VIP its own dscp)`);
    }
    vipOfDscp.set(dscp, vip.host);
    const endpoint = `${vip.host}:${vip.port}`;
    if (endpoints.has(endpoint)) throw problem(name, `another dsr service already uses ${endpoint}`);
    endpoints.add(endpoint);
    if (tableSize > MAX_DSR_TABLE_SIZE) {
      throw problem(name, `tableSize ${tableSize} is too large for the nft director (at most ${MAX_DSR_TABLE_SIZE})`);
    }
    if (!(Number.isInteger(service.hashSeed) && service.hashSeed >= 0 && service.hashSeed <= 0xffffffff)) {
      throw problem(name, `hashSeed must be an integer 0–4294967295, got ${service.hashSeed}`);
    }
    const id = nftId(name);
    const clash = ids.get(id);
    if (clash !== undefined) throw problem(name, `its name and "${clash}" give the same nft identifier "${id}"; rename one`);
    ids.set(id, name);
    const backends = service.backends.map((backend): DsrBackend => {
      const { host, port } = backend.address;
      if (!isIPv4(host)) throw problem(name, `backend "${backend.name}": the address must be an IPv4 address, got "${host}"`);
      if (port !== vip.port) {
        throw problem(name, `backend "${backend.name}": port ${port} differs from the VIP port ${vip.port}; DSR does not rewrite ports`);
      }
      return { name: backend.name, weight: backend.weight, address: host, mark: ipv4ToNumber(host) };
    });
    let table: MaglevTable<DsrBackend>;
    try {
      table = buildMaglevTable(backends, tableSize);
    } catch (error) {
      if (error instanceof LbError) throw problem(name, error.message);
      throw error;
    }
    const addresses = new Map<string, string>();
    for (const backend of table.backends) {
      const twin = addresses.get(backend.address);
      if (twin !== undefined) throw problem(name, `backends "${twin}" and "${backend.name}" share the address ${backend.address}`);
      addresses.set(backend.address, backend.name);
    }
    return { name, id, vip: vip.host, port: vip.port, dscp, hashKey: service.hashKey, seed: service.hashSeed, table };
  });
}

/** The dsr services of a config, or the one named; LbError(LB_ERR_CONFIG) if there is none. */
export function selectDsrServices<S extends { mode: string; name: string }>(services: readonly S[], name?: string): Extract<S, { mode: 'dsr' }>[] {
  const dsr = services.filter((service): service is Extract<S, { mode: 'dsr' }> => service.mode === 'dsr');
  if (name === undefined) {
    if (dsr.length === 0) throw new LbError('LB_ERR_CONFIG', 'the config has no service with mode: dsr');
    return dsr;
  }
  const chosen = dsr.filter((service) => service.name === name);
  if (chosen.length === 0) {
    const names = dsr.map((service) => service.name).join(', ') || 'none';
    throw new LbError('LB_ERR_CONFIG', `no dsr service named "${name}" (dsr services: ${names})`);
  }
  return chosen;
}
