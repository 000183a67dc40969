/**
 * Rules that span several fields: which keys a service's balance would ignore (refused, so a key never
 * silently does nothing), table size against backend count, unique names, binds that would collide,
 * and one VIP per DSCP value (L3DSR backends restore the VIP from the DSCP mark).
 * The schema runs them on objects whose fields are each valid; on a file that failed validation,
 * serviceProblemsFromDocument runs them again on whatever fields of each service did parse, so one
 * pass reports a rule across fields alongside a bad value elsewhere in the same service.
 */
import type * as z from 'zod';
import { DEFAULTS, LIMITS } from './defaults.js';
import { endpointsOverlap, formatEndpoint, parseAddress, parseEndpoint, type EndpointRule } from './endpoints.js';
import { isIP } from 'node:net';
import { DSR_RULE, LISTEN_RULE, NAT_RULE, listenText } from './fields.js';
import type { Balance, Config, Endpoint, FlowHash, HealthCheckConfig, OnDown, ProxyHashKey, ServiceConfig } from './types.js';

/** Balancers that hash a flow key; the others (roundrobin, leastconn) ignore hashKey and friends. */
const HASHING_BALANCES: readonly Balance[] = ['maglev', 'ring', 'rendezvous'];

type Issues = z.core.$RefinementCtx;

/**
 * What the proxy service rules read of a service as written: optional keys are still undefined
 * when left out (schema.ts's proxy service object has this shape, and more).
 */
export interface ProxyServiceFields {
  balance?: Balance;
  tableSize?: number;
  flowHash?: FlowHash;
  hashSeed?: number;
  hashKey?: ProxyHashKey;
  balanceFactor?: number;
  healthCheck?: HealthCheckConfig;
  onDown?: OnDown;
  /**
   * A name left undefined did not parse (its own problem is reported); the name rules skip it.
   * `discovers` is set for a dns:/srv: entry: what it asks for (`dns NAME:PORT`, `srv NAME`).
   */
  backends: readonly { name?: string; backup?: boolean; discovers?: string }[];
}

/** What a dns:/srv: entry as written asks for, to refuse the same one twice; undefined for a named backend. */
export function discoveryKey(entry: Record<string, unknown>): string | undefined {
  if (typeof entry.dns === 'string') return `dns ${entry.dns.toLowerCase()}:${String(entry.port)}`;
  if (typeof entry.srv === 'string') return `srv ${entry.srv.toLowerCase()}`;
  return undefined;
}

/** Keys a proxy service's balance may make meaningless. */
type BalanceKey = 'tableSize' | 'flowHash' | 'hashSeed' | 'hashKey' | 'balanceFactor';

/** What the DSR service rules read of a service as written (a backend's port may be left out). */
export interface DsrServiceFields {
  vip: Endpoint;
  tableSize?: number;
  healthCheck?: unknown;
  onDown?: OnDown;
  backends: readonly ({ name?: string; address?: { port?: number } } & KernelDiscoveryFields)[];
}

/**
 * What the kernel rules read of a `dns:`/`srv:` entry of a kernel service's `backends`: what it
 * asks for (`discovers`, as discoveryKey says), a `dns:` entry's `port`, and the keys given that
 * only a proxy can honour.
 */
export interface KernelDiscoveryFields {
  discovers?: string;
  port?: number;
  given?: readonly string[];
}

/** Keys of a dns:/srv: entry that mean something only to the proxy (it counts connections and ramps shares; the kernel does neither). */
const PROXY_ONLY_ENTRY_KEYS = ['maxConnections', 'slowStart'];

/**
 * The dns:/srv: entries of a kernel service: none asked twice, no proxy-only key, no `backup` on
 * a dsr entry (the director has no backups named in the file either), and for dsr a `dns:` entry's
 * `port` must be the VIP's (DSR does not rewrite ports; an SRV record with another port is skipped
 * at run time, src/kernel/discovered.ts).
 */
function checkKernelDiscovery(mode: 'nat' | 'dsr', vip: Endpoint, backends: readonly KernelDiscoveryFields[], ctx: Issues): void {
  const asked = new Map<string, number>();
  backends.forEach((backend, index) => {
    if (backend.discovers === undefined) return;
    const earlier = asked.get(backend.discovers);
    if (earlier === undefined) asked.set(backend.discovers, index);
    else ctx.addIssue({ code: 'custom', path: ['backends', index], message: `the same ${backend.discovers.split(' ')[0] ?? ''}: entry as backends[${earlier}]` });
    for (const key of backend.given ?? []) {
      if (PROXY_ONLY_ENTRY_KEYS.includes(key)) ctx.addIssue({ code: 'custom', path: ['backends', index, key], message: `applies only to mode: proxy; the kernel counts no connections and ramps no shares` });
      if (key === 'backup' && mode === 'dsr') ctx.addIssue({ code: 'custom', path: ['backends', index, key], message: 'applies only to mode: proxy and mode: nat; a dsr service names no backups' });
    }
    if (mode === 'dsr' && backend.port !== undefined && backend.port !== vip.port) {
      ctx.addIssue({ code: 'custom', path: ['backends', index, 'port'], message: `port ${backend.port} differs from the VIP port ${vip.port}: DSR does not rewrite ports (a dns: entry of a dsr service takes the VIP's port)` });
    }
  });
}

/** What the NAT service rules read of a service as written. */
export interface NatServiceFields {
  vip: Endpoint;
  tableSize?: number;
  snat?: string;
  healthCheck?: unknown;
  onDown?: OnDown;
  backends: readonly ({ name?: string; address?: { host: string }; backup?: boolean } & KernelDiscoveryFields)[];
}

function checkKernelOnDown(service: { healthCheck?: unknown; onDown?: OnDown }, ctx: Issues): void {
  if (service.onDown !== undefined && service.healthCheck === undefined) {
    ctx.addIssue({ code: 'custom', path: ['onDown'], message: 'applies only with a healthCheck (without one no backend ever goes down)' });
  }
}

function checkKernelTableSize(tableSize: number | undefined, backendCount: number, ctx: Issues): void {
  checkTableFits(tableSize ?? DEFAULTS.tableSize, backendCount, ctx);
  // The words the renderers use (src/kernel), so check refuses first what render refuses.
  if (tableSize !== undefined && tableSize > LIMITS.maxDsrTableSize) {
    ctx.addIssue({ code: 'custom', path: ['tableSize'], message: `tableSize ${tableSize} is too large for the nft director (at most ${LIMITS.maxDsrTableSize})` });
  }
}

/**
 * Full NAT: one address family per service (the slot map's value type is the VIP's), a primary
 * backend, a table that fits nft, unique names.
 */
export function checkNatService(service: NatServiceFields, ctx: Issues): void {
  checkKernelTableSize(service.tableSize, service.backends.length, ctx);
  checkKernelOnDown(service, ctx);
  checkUniqueBackendNames(service.backends, ctx);
  checkKernelDiscovery('nat', service.vip, service.backends, ctx);
  const family = isIP(service.vip.host);
  const familyName = family === 6 ? 'IPv6' : 'IPv4';
  service.backends.forEach((backend, index) => {
    if (backend.address !== undefined && isIP(backend.address.host) !== family) {
      ctx.addIssue({ code: 'custom', path: ['backends', index, 'address'], message: `must be an ${familyName} address like the VIP ${service.vip.host} (one slot map holds one address family)` });
    }
  });
  if (service.snat !== undefined && isIP(service.snat) !== 0 && isIP(service.snat) !== family) {
    ctx.addIssue({ code: 'custom', path: ['snat'], message: `must be an ${familyName} address like the VIP ${service.vip.host}, got ${service.snat}` });
  }
  if (service.backends.length > 0 && service.backends.every((backend) => backend.backup === true)) {
    ctx.addIssue({ code: 'custom', path: ['backends'], message: 'every backend is a backup: at least one must be a primary (backups serve only when no primary can)' });
  }
}

function checkUniqueBackendNames(backends: readonly { name?: string }[], ctx: Issues): void {
  const first = new Map<string, number>();
  backends.forEach((backend, index) => {
    if (backend.name === undefined) return;
    const earlier = first.get(backend.name);
    if (earlier === undefined) first.set(backend.name, index);
    else ctx.addIssue({ code: 'custom', path: ['backends', index, 'name'], message: `duplicate backend name "${backend.name}" (also backends[${earlier}])` });
  });
}

function checkTableFits(tableSize: number, backendCount: number, ctx: Issues): void {
  // NaN (a tableSize given but not a number) fits nothing and is reported as itself.
  if (tableSize < backendCount) {
    ctx.addIssue({ code: 'custom', path: ['tableSize'], message: `must be at least the number of backends (${backendCount}), got ${tableSize}` });
  }
}

export function checkProxyService(service: ProxyServiceFields, ctx: Issues): void {
  const balance = service.balance ?? DEFAULTS.balance;
  const refuse = (key: BalanceKey, appliesTo: string): void => {
    if (service[key] !== undefined) {
      ctx.addIssue({ code: 'custom', path: [key], message: `applies only to ${appliesTo}; this service uses balance: ${balance}` });
    }
  };
  if (balance !== 'maglev') {
    refuse('tableSize', 'balance: maglev');
    refuse('flowHash', 'balance: maglev');
    refuse('hashSeed', 'balance: maglev');
  }
  if (!HASHING_BALANCES.includes(balance)) {
    refuse('hashKey', `hashing balancers (${HASHING_BALANCES.join(', ')})`);
    refuse('balanceFactor', `hashing balancers (${HASHING_BALANCES.join(', ')})`);
  }
  if (service.onDown !== undefined && service.healthCheck === undefined) {
    ctx.addIssue({ code: 'custom', path: ['onDown'], message: 'applies only with a healthCheck (without one no backend ever goes down)' });
  }
  if (service.backends.length > 0 && service.backends.every((backend) => backend.backup === true)) {
    ctx.addIssue({ code: 'custom', path: ['backends'], message: 'every backend is a backup: at least one must be a primary (backups serve only when no primary can)' });
  }
  if (balance === 'maglev') checkTableFits(service.tableSize ?? DEFAULTS.tableSize, service.backends.length, ctx);
  checkUniqueBackendNames(service.backends, ctx);
  const asked = new Map<string, number>();
  service.backends.forEach((backend, index) => {
    if (backend.discovers === undefined) return;
    const earlier = asked.get(backend.discovers);
    if (earlier === undefined) asked.set(backend.discovers, index);
    else ctx.addIssue({ code: 'custom', path: ['backends', index], message: `the same ${backend.discovers.split(' ')[0] ?? ''}: entry as backends[${earlier}]` });
  });
}

export function checkDsrService(service: DsrServiceFields, ctx: Issues): void {
  // The words `dsr render` would use (src/kernel/director-plan.ts), so check refuses first what render refuses.
  checkKernelTableSize(service.tableSize, service.backends.length, ctx);
  checkKernelOnDown(service, ctx);
  checkUniqueBackendNames(service.backends, ctx);
  checkKernelDiscovery('dsr', service.vip, service.backends, ctx);
  service.backends.forEach((backend, index) => {
    if (backend.address?.port !== undefined && backend.address.port !== service.vip.port) {
      ctx.addIssue({
        code: 'custom',
        path: ['backends', index, 'address'],
        message: `port ${backend.address.port} differs from the VIP port ${service.vip.port}: DSR does not rewrite ports (leave the port out)`,
      });
    }
  });
}

/** What the rules across services need of one service; any part may be unknown in a file that failed validation. */
export interface ServiceFacts {
  name?: string;
  /** Its binds; `index` is the address's place in a `listen` list (absent: a single address). */
  binds?: { endpoint: Endpoint; key: 'listen' | 'vip'; index?: number }[];
  dscp?: number;
}

export interface CrossServiceProblem {
  path: (string | number)[];
  message: string;
}

/**
 * Unique service names; no two binds (admin, proxy listen, DSR VIP) that collide; one VIP address
 * per DSCP value. Pre: `services[i]` describes `services[i]` of the document.
 */
export function crossServiceProblems(adminListen: Endpoint | undefined, services: readonly ServiceFacts[], listeners: readonly (Endpoint | undefined)[] = []): CrossServiceProblem[] {
  const problems: CrossServiceProblem[] = [];
  const names = new Map<string, number>();
  const binds: { endpoint: Endpoint; path: (string | number)[]; space: 'listen' | 'vip'; owner: string }[] = [];
  if (adminListen !== undefined) binds.push({ endpoint: adminListen, path: ['admin', 'listen'], space: 'listen', owner: 'admin' });
  listeners.forEach((endpoint, index) => {
    if (endpoint !== undefined) binds.push({ endpoint, path: ['listeners', index, 'listen'], space: 'listen', owner: `listeners[${index}]` });
  });
  const dscpOwners = new Map<number, { vip: string; index: number }>();

  services.forEach((service, index) => {
    if (service.name !== undefined) {
      const earlier = names.get(service.name);
      if (earlier === undefined) names.set(service.name, index);
      else problems.push({ path: ['services', index, 'name'], message: `duplicate service name "${service.name}" (also services[${earlier}])` });
    }
    for (const bind of service.binds ?? []) {
      const { endpoint, key } = bind;
      const path = bind.index === undefined ? ['services', index, key] : ['services', index, key, bind.index];
      const where = bind.index === undefined ? `services[${index}].${key}` : `services[${index}].${key}[${bind.index}]`;
      binds.push({ endpoint, path, space: key, owner: service.name === undefined ? where : `service "${service.name}" (${where})` });
    }
    const vip = service.binds?.find((bind) => bind.key === 'vip')?.endpoint;
    if (vip !== undefined && service.dscp !== undefined) {
      const endpoint = vip;
      const marked = dscpOwners.get(service.dscp);
      if (marked === undefined) dscpOwners.set(service.dscp, { vip: endpoint.host, index });
      else if (marked.vip !== endpoint.host) {
        problems.push({
          path: ['services', index, 'dscp'],
          message: `dscp ${service.dscp} already marks VIP ${marked.vip} (services[${marked.index}]); each DSCP value must identify one VIP`,
        });
      }
    }
  });

  // Sockets this process binds (admin, proxy listens) and VIPs the DSR director matches are separate
  // spaces: a VIP lives on the director's path, not on a local socket. Each must be free of clashes.
  for (const space of ['listen', 'vip'] as const) {
    const group = binds.filter((bind) => bind.space === space);
    group.forEach((bind, index) => {
      const clash = group.slice(0, index).find((earlier) => endpointsOverlap(earlier.endpoint, bind.endpoint));
      if (clash !== undefined) {
        problems.push({ path: bind.path, message: `${formatEndpoint(bind.endpoint)} overlaps ${formatEndpoint(clash.endpoint)} of ${clash.owner}` });
      }
    });
  }
  return problems;
}

function factsOf(service: ServiceConfig): ServiceFacts {
  switch (service.mode) {
    case 'proxy':
      return { name: service.name, binds: service.listen.map((endpoint, index) => ({ endpoint, key: 'listen' as const, ...(service.listen.length > 1 ? { index } : {}) })) };
    case 'dsr':
      return { name: service.name, binds: [{ endpoint: service.vip, key: 'vip' }], dscp: service.dscp };
    case 'nat':
      return { name: service.name, binds: [{ endpoint: service.vip, key: 'vip' }] };
    default: {
      const never: never = service;
      throw new Error(`unknown service mode ${String((never as ServiceConfig).mode)}`);
    }
  }
}

/** The cross-service rules on a valid Config (the schema's last step). */
export function checkServices(config: Config, ctx: Issues): void {
  for (const problem of crossServiceProblems(config.admin?.listen, config.services.map(factsOf), (config.listeners ?? []).map((listener) => listener.listen))) {
    ctx.addIssue({ code: 'custom', path: problem.path, message: problem.message });
  }
  checkRoutes(config, ctx);
  // A cluster's workers would each resolve on their own clock and could hash one client to two
  // backends; until the primary resolves for them, discovery runs in one process only.
  if (config.workers === undefined || config.workers === 1) return;
  config.services.forEach((service, index) => {
    if (service.mode === 'nat') {
      ctx.addIssue({ code: 'custom', path: ['services', index, 'mode'], message: `mode: nat needs workers: 1 (this file has workers: ${config.workers}): the kernel writer runs in a single process` });
    }
    if (service.mode !== 'nat' && service.dnsBackends !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['services', index, 'backends'], message: `dns:/srv: entries need workers: 1 (this file has workers: ${config.workers}): a cluster does not resolve them yet` });
    }
  });
}

/**
 * Every route names a proxy service; a proxy service without `listen` is named by a route (else
 * nothing reaches it); a routed service does not take PROXY headers (the inspector reads the
 * client's first bytes as TLS, so a header before them could not be told apart from garbage).
 */
function checkRoutes(config: Config, ctx: Issues): void {
  const routed = new Set<string>();
  const kinds = new Map(config.services.map((service) => [service.name, service.mode]));
  (config.listeners ?? []).forEach((listener, index) => {
    listener.routes.forEach((route, at) => {
      const [name, key] = 'default' in route ? [route.default, 'default'] : [route.service, 'service'];
      const mode = kinds.get(name);
      if (mode === undefined) ctx.addIssue({ code: 'custom', path: ['listeners', index, 'routes', at, key], message: `no service is named "${name}" (services: ${[...kinds.keys()].join(', ')})` });
      else if (mode !== 'proxy') ctx.addIssue({ code: 'custom', path: ['listeners', index, 'routes', at, key], message: `service "${name}" is mode: ${mode}; routes name mode: proxy services` });
      else routed.add(name);
    });
  });
  config.services.forEach((service, index) => {
    if (service.mode !== 'proxy') return;
    if (service.listen.length === 0 && !routed.has(service.name)) {
      ctx.addIssue({ code: 'custom', path: ['services', index, 'listen'], message: 'missing: expected an address HOST:PORT or a port (only a service a listeners route names may leave it out)' });
    }
    if (routed.has(service.name) && service.proxyProtocol?.accept !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['services', index, 'proxyProtocol', 'accept'], message: 'a service a listeners route names cannot take PROXY headers: its first bytes are read as a TLS ClientHello' });
    }
  });
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function endpointOrUndefined(value: unknown, rule: EndpointRule): Endpoint | undefined {
  if (typeof value !== 'string') return undefined;
  const parsed = parseEndpoint(value, rule);
  return parsed.ok ? parsed.value : undefined;
}

/**
 * The same facts read leniently from a document that failed validation (whatever part of a service
 * is well formed is used), so one run reports a duplicate name alongside a bad port elsewhere.
 */
export function factsFromDocument(document: unknown): { adminListen?: Endpoint; services: ServiceFacts[]; listeners: (Endpoint | undefined)[] } {
  if (!isRecord(document)) return { services: [], listeners: [] };
  const listeners = (Array.isArray(document.listeners) ? document.listeners : []).map((listener: unknown) => (isRecord(listener) ? endpointOrUndefined(listenText(listener.listen), LISTEN_RULE) : undefined));
  const adminListen = isRecord(document.admin) ? endpointOrUndefined(listenText(document.admin.listen), LISTEN_RULE) : undefined;
  const services = (Array.isArray(document.services) ? document.services : []).map((service): ServiceFacts => {
    if (!isRecord(service)) return {};
    const facts: ServiceFacts = {};
    if (typeof service.name === 'string') facts.name = service.name;
    const mode = service.mode ?? DEFAULTS.mode;
    if (mode === 'dsr' || mode === 'nat') {
      const vip = endpointOrUndefined(service.vip, mode === 'dsr' ? DSR_RULE : NAT_RULE);
      if (vip !== undefined) facts.binds = [{ endpoint: vip, key: 'vip' }];
    } else if (mode === 'proxy') {
      const listed = Array.isArray(service.listen);
      const items: unknown[] = listed ? (service.listen as unknown[]) : [service.listen];
      facts.binds = items.flatMap((item, index) => {
        const endpoint = endpointOrUndefined(listenText(item), LISTEN_RULE);
        return endpoint === undefined ? [] : [{ endpoint, key: 'listen' as const, ...(listed && items.length > 1 ? { index } : {}) }];
      });
    }
    if (Number.isInteger(service.dscp)) facts.dscp = service.dscp as number;
    return facts;
  });
  return { adminListen, services, listeners };
}

// ---------------------------------------------------------------------------------------------
// The per-service rules on a document that failed validation

const present = (record: Record<string, unknown>, key: string): boolean => record[key] !== undefined;

/** `value` when it is a name-like string (its own rule reports anything else), else undefined. */
const stringOrUndefined = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/**
 * A proxy service as the rules read it, from the document as written. Presence is what the
 * balance rules read (a key the balance ignores is refused whatever its value); a value that did
 * not parse stands in as NaN (numbers) or is left out, so no rule invents a second problem for it.
 * An unknown balance leaves out every rule that depends on it.
 */
function proxyFieldsOf(service: Record<string, unknown>): ProxyServiceFields {
  const backends = Array.isArray(service.backends) ? service.backends : [];
  const fields: ProxyServiceFields = {
    backends: backends.map((backend) => (isRecord(backend) ? { name: stringOrUndefined(backend.name), backup: backend.backup === true, discovers: discoveryKey(backend) } : {})),
  };
  if (service.balance !== undefined) {
    if (!HASHING_BALANCES.includes(service.balance as Balance) && service.balance !== 'roundrobin' && service.balance !== 'leastconn') return fields;
    fields.balance = service.balance as Balance;
  }
  const numberOrNaN = (key: string): number | undefined => (present(service, key) ? (typeof service[key] === 'number' ? service[key] : NaN) : undefined);
  fields.tableSize = numberOrNaN('tableSize');
  fields.hashSeed = numberOrNaN('hashSeed');
  fields.balanceFactor = numberOrNaN('balanceFactor');
  // Only presence matters to the rules for these; the values' own problems are reported by the schema.
  if (present(service, 'flowHash')) fields.flowHash = service.flowHash as FlowHash;
  if (present(service, 'hashKey')) fields.hashKey = service.hashKey as ProxyHashKey;
  if (present(service, 'healthCheck')) fields.healthCheck = service.healthCheck as HealthCheckConfig;
  if (present(service, 'onDown')) fields.onDown = service.onDown as OnDown;
  return fields;
}

/** A dsr service as the rules read it; undefined when its VIP does not parse (every dsr rule needs it). */
function dsrFieldsOf(service: Record<string, unknown>): DsrServiceFields | undefined {
  const vip = endpointOrUndefined(service.vip, DSR_RULE);
  if (vip === undefined) return undefined;
  const backends = Array.isArray(service.backends) ? service.backends : [];
  return {
    vip,
    tableSize: present(service, 'tableSize') ? (typeof service.tableSize === 'number' ? service.tableSize : NaN) : undefined,
    ...(present(service, 'healthCheck') ? { healthCheck: service.healthCheck } : {}),
    ...(present(service, 'onDown') ? { onDown: service.onDown as OnDown } : {}),
    backends: backends.map((backend) => {
      if (!isRecord(backend)) return {};
      if (discoveryKey(backend) !== undefined) return kernelDiscoveryOf(backend);
      const address = typeof backend.address === 'string' ? parseAddress(backend.address, DSR_RULE) : undefined;
      return { name: stringOrUndefined(backend.name), address: address?.ok === true ? { port: address.value.port } : undefined };
    }),
  };
}

/** A dns:/srv: entry of a kernel service as the rules read it, from the document as written. */
function kernelDiscoveryOf(entry: Record<string, unknown>): KernelDiscoveryFields {
  return { discovers: discoveryKey(entry), ...(typeof entry.port === 'number' ? { port: entry.port } : {}), given: Object.keys(entry).filter((key) => present(entry, key)) };
}

/** A nat service as the rules read it; undefined when its VIP does not parse (every nat rule needs it). */
function natFieldsOf(service: Record<string, unknown>): NatServiceFields | undefined {
  const vip = endpointOrUndefined(service.vip, NAT_RULE);
  if (vip === undefined) return undefined;
  const backends = Array.isArray(service.backends) ? service.backends : [];
  return {
    vip,
    tableSize: present(service, 'tableSize') ? (typeof service.tableSize === 'number' ? service.tableSize : NaN) : undefined,
    ...(typeof service.snat === 'string' ? { snat: service.snat } : {}),
    ...(present(service, 'healthCheck') ? { healthCheck: service.healthCheck } : {}),
    ...(present(service, 'onDown') ? { onDown: service.onDown as OnDown } : {}),
    backends: backends.map((backend) => {
      if (!isRecord(backend)) return {};
      if (discoveryKey(backend) !== undefined) return { backup: backend.backup === true, ...kernelDiscoveryOf(backend) };
      const address = endpointOrUndefined(backend.address, NAT_RULE);
      return { name: stringOrUndefined(backend.name), backup: backend.backup === true, ...(address === undefined ? {} : { address }) };
    }),
  };
}

/**
 * The rules of checkProxyService, checkDsrService and checkNatService run on every service of a document that
 * failed validation, on the fields that did parse: zod skips an object's refinements once any of
 * its fields has a problem, and an operator should not fix seven problems to be shown two more.
 * Paths are from the document's root.
 */
export function serviceProblemsFromDocument(document: unknown): CrossServiceProblem[] {
  if (!isRecord(document) || !Array.isArray(document.services)) return [];
  const problems: CrossServiceProblem[] = [];
  document.services.forEach((service: unknown, index: number) => {
    if (!isRecord(service)) return;
    const ctx = {
      addIssue: (issue: { path?: PropertyKey[]; message?: string }) => {
        problems.push({ path: ['services', index, ...((issue.path ?? []) as (string | number)[])], message: issue.message ?? '' });
      },
    } as unknown as Issues;
    const mode = service.mode ?? DEFAULTS.mode;
    if (mode === 'proxy') checkProxyService(proxyFieldsOf(service), ctx);
    else if (mode === 'dsr') {
      const fields = dsrFieldsOf(service);
      if (fields !== undefined) checkDsrService(fields, ctx);
    } else if (mode === 'nat') {
      const fields = natFieldsOf(service);
      if (fields !== undefined) checkNatService(fields, ctx);
    }
  });
  return problems;
}
