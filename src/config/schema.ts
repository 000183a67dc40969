/**
 * The one schema for l4lb's configuration file (docs/configuration.md; `mode: dsr` in docs/dsr.md),
 * in zod. Every object is strict, so a misspelt key is an error rather than a silent no-op.
 *
 * Shape of the pipeline: field schemas parse leaves (durations → ms, addresses → Endpoint) and leave
 * optional keys undefined; each object's `superRefine` checks rules that span its fields (which keys
 * apply to which `balance`, table size against backend count, unique names); a final `transform`
 * fills the defaults. Keeping "was it given?" until the end lets us refuse keys that would be ignored.
 *
 * To add a key (healthCheck, proxyProtocol, limits, admin.token…): add it to the object's shape, its
 * default to DEFAULTS if any, its type to types.ts, and a row to docs/configuration.md. Leaves live
 * in fields.ts, rules across fields in rules.ts.
 */
import { isIP } from 'node:net';
import * as z from 'zod';
import { DEFAULTS, LIMITS } from './defaults.js';
import { adminStateField, backupField, checkAdmin, healthCheckObject, onDownField, slowStartField, tokenField } from './health-fields.js';
import {
  DSR_RULE,
  NAT_RULE,
  PROXY_BACKEND_RULE,
  dsrBackendAddressField,
  durationField,
  endpointField,
  expecting,
  hashKeyField,
  hashSeedField,
  integer,
  listenField,
  listenListField,
  nameField,
  proxyHashKeyField,
  serverNamePatternField,
  positiveInteger,
  tableSizeField,
  weightField,
  workersField,
} from './fields.js';
import { backendEntryField, resolversField } from './dns-fields.js';
import { describeObject } from './messages.js';
import { checkDsrService, checkNatService, checkProxyService, checkServices, discoveryKey, type DsrServiceFields, type KernelDiscoveryFields, type NatServiceFields, type ProxyServiceFields } from './rules.js';
import { checkSourceRules, cidrListField, limitsObject, proxyProtocolObject } from './source-fields.js';
import { BALANCES, FLOW_HASHES, type Balance, type BackendConfig, type Config, type DnsBackendConfig, type DsrServiceConfig, type FlowHash, type ListenerConfig, type NatServiceConfig, type ProxyServiceConfig, type RouteConfig } from './types.js';

// ---------------------------------------------------------------------------------------------
// Objects, as written in the file (optional keys still undefined)

const timeoutsObject = z.strictObject({
  connect: durationField(false),
  idle: durationField(false),
  queue: durationField(false),
  drain: durationField(true),
  proxyHeader: durationField(false),
});

const PROXY_BACKEND_SHAPE = {
  name: nameField,
  address: endpointField(PROXY_BACKEND_RULE),
  weight: weightField.optional(),
  maxConnections: positiveInteger.optional(),
  backup: backupField.optional(),
  slowStart: slowStartField,
  state: adminStateField.optional(),
};

const DSR_BACKEND_SHAPE = {
  name: nameField,
  address: dsrBackendAddressField,
  weight: weightField.optional(),
  state: adminStateField.optional(),
};

const NAT_BACKEND_SHAPE = {
  name: nameField,
  address: endpointField(NAT_RULE),
  weight: weightField.optional(),
  backup: backupField.optional(),
  state: adminStateField.optional(),
};

/** An IP literal (no port): the source address full NAT gives the packets it sends to a backend. */
const snatField = z.string({ error: expecting('an IP address') }).refine((text) => isIP(text) !== 0, { error: (issue) => `expected an IP address, got ${JSON.stringify(issue.input)}` });

const proxyBackendObject = describeObject(z.strictObject(PROXY_BACKEND_SHAPE), {
  label: 'a backend of a mode: proxy service',
});
const dsrBackendObject = describeObject(z.strictObject(DSR_BACKEND_SHAPE), {
  label: 'a backend of a mode: dsr service',
  elsewhere: [{ keys: Object.keys(PROXY_BACKEND_SHAPE), where: 'backends of mode: proxy; the DSR director keeps no connection state' }],
});
const natBackendObject = describeObject(z.strictObject(NAT_BACKEND_SHAPE), {
  label: 'a backend of a mode: nat service',
  elsewhere: [{ keys: Object.keys(PROXY_BACKEND_SHAPE), where: 'backends of mode: proxy; the kernel counts no connections per backend' }],
});

const PROXY_SERVICE_SHAPE = {
  mode: z.literal('proxy'),
  name: nameField,
  // Optional only for a service a `listeners` route names (rules.ts checks it).
  listen: listenListField.optional(),
  balance: z.enum(BALANCES as [Balance, ...Balance[]]).optional(),
  hashKey: proxyHashKeyField.optional(),
  flowHash: z.enum(FLOW_HASHES as [FlowHash, ...FlowHash[]]).optional(),
  hashSeed: hashSeedField.optional(),
  tableSize: tableSizeField.optional(),
  balanceFactor: z.number({ error: expecting('a number > 1') }).gt(1).optional(),
  healthCheck: healthCheckObject.optional(),
  onDown: onDownField.optional(),
  maxConnections: positiveInteger.optional(),
  retries: integer(`an integer 0–${LIMITS.maxRetries}`).min(0).max(LIMITS.maxRetries).optional(),
  timeouts: timeoutsObject.optional(),
  backends: z.array(backendEntryField(proxyBackendObject), { error: expecting('a list of backends') }).min(1),
  proxyProtocol: proxyProtocolObject.optional(),
  allow: cidrListField.optional(),
  deny: cidrListField.optional(),
  limits: limitsObject.optional(),
};

const DSR_SERVICE_SHAPE = {
  mode: z.literal('dsr'),
  name: nameField,
  vip: endpointField(DSR_RULE),
  dscp: integer(`an integer ${LIMITS.minDscp}–${LIMITS.maxDscp}`).min(LIMITS.minDscp).max(LIMITS.maxDscp),
  hashKey: hashKeyField.optional(),
  hashSeed: hashSeedField.optional(),
  tableSize: tableSizeField.optional(),
  healthCheck: healthCheckObject.optional(),
  onDown: onDownField.optional(),
  backends: z.array(backendEntryField(dsrBackendObject), { error: expecting('a list of backends') }).min(1),
};

const NAT_SERVICE_SHAPE = {
  mode: z.literal('nat'),
  name: nameField,
  vip: endpointField(NAT_RULE),
  hashKey: hashKeyField.optional(),
  hashSeed: hashSeedField.optional(),
  tableSize: tableSizeField.optional(),
  snat: snatField.optional(),
  healthCheck: healthCheckObject.optional(),
  onDown: onDownField.optional(),
  backends: z.array(backendEntryField(natBackendObject), { error: expecting('a list of backends') }).min(1),
};

/** Why a proxy-only key cannot apply to full NAT: the kernel rewrites packets, it holds no connection. */
const NAT_REFUSALS = [
  { keys: ['proxyProtocol'], where: 'mode: proxy; full NAT rewrites packets in the kernel and cannot carry the client address in a PROXY header' },
  { keys: Object.keys(PROXY_SERVICE_SHAPE), where: 'mode: proxy; full NAT in the kernel holds no connection to log, queue, retry or limit' },
];

const proxyServiceObject = describeObject(z.strictObject(PROXY_SERVICE_SHAPE), {
  label: 'a mode: proxy service',
  elsewhere: [
    { keys: Object.keys(DSR_SERVICE_SHAPE), where: 'mode: dsr' },
    { keys: Object.keys(NAT_SERVICE_SHAPE), where: 'mode: nat' },
  ],
});
const dsrServiceObject = describeObject(z.strictObject(DSR_SERVICE_SHAPE), {
  label: 'a mode: dsr service',
  elsewhere: [
    { keys: Object.keys(PROXY_SERVICE_SHAPE), where: 'mode: proxy' },
    { keys: Object.keys(NAT_SERVICE_SHAPE), where: 'mode: nat' },
  ],
});
const natServiceObject = describeObject(z.strictObject(NAT_SERVICE_SHAPE), {
  label: 'a mode: nat service',
  elsewhere: [...NAT_REFUSALS, { keys: Object.keys(DSR_SERVICE_SHAPE), where: 'mode: dsr' }],
});

type ProxyServiceInput = z.output<typeof proxyServiceObject>;

/** What the per-service rules read of a parsed proxy service (dns:/srv: entries by what they ask for). */
function proxyFields(service: ProxyServiceInput): ProxyServiceFields {
  return {
    ...service,
    backends: service.backends.map((entry) => {
      if (entry.kind === 'backend') return { name: entry.backend.name, backup: entry.backend.backup };
      const { type, name, port, backup } = entry.entry;
      return { backup, discovers: discoveryKey(type === 'dns' ? { dns: name, port } : { srv: name }) };
    }),
  };
}
type DsrServiceInput = z.output<typeof dsrServiceObject>;
type NatServiceInput = z.output<typeof natServiceObject>;

/** What the kernel rules read of a parsed dns:/srv: entry: what it asks for, its port, the optional keys given. */
function kernelDiscoveryFields(entry: DnsBackendConfig): KernelDiscoveryFields {
  const given = (['maxConnections', 'slowStart', 'backup'] as const).filter((key) => entry[key] !== undefined);
  return { discovers: discoveryKey(entry.type === 'dns' ? { dns: entry.name, port: entry.port } : { srv: entry.name }), ...(entry.port === undefined ? {} : { port: entry.port }), given };
}

/** What the dsr rules read of a parsed dsr service. */
function dsrFields(service: DsrServiceInput): DsrServiceFields {
  return { ...service, backends: service.backends.map((entry) => (entry.kind === 'backend' ? entry.backend : kernelDiscoveryFields(entry.entry))) };
}

/** What the nat rules read of a parsed nat service. */
function natFields(service: NatServiceInput): NatServiceFields {
  return { ...service, backends: service.backends.map((entry) => (entry.kind === 'backend' ? entry.backend : { backup: entry.entry.backup, ...kernelDiscoveryFields(entry.entry) })) };
}

/** A `backends` entry as backendEntryField parses it: a named backend, or a dns:/srv: entry. */
type BackendEntry<B> = { kind: 'backend'; backend: B } | { kind: 'dns'; entry: DnsBackendConfig };

/** The named backends of a service's `backends`, in file order. */
function namedBackends<B>(entries: readonly BackendEntry<B>[]): B[] {
  return entries.flatMap((entry) => (entry.kind === 'backend' ? [entry.backend] : []));
}

/** The dns:/srv: entries of a service's `backends`, in file order, as the `dnsBackends` key (absent: none). */
function dnsBackendsOf(entries: readonly BackendEntry<unknown>[]): { dnsBackends?: DnsBackendConfig[] } {
  const found = entries.flatMap((entry) => (entry.kind === 'dns' ? [entry.entry] : []));
  return found.length === 0 ? {} : { dnsBackends: found };
}

// ---------------------------------------------------------------------------------------------
// Defaults

function toProxyService(service: ProxyServiceInput): ProxyServiceConfig {
  const result: ProxyServiceConfig = {
    mode: 'proxy',
    name: service.name,
    listen: service.listen ?? [],
    balance: service.balance ?? DEFAULTS.balance,
    hashKey: service.hashKey ?? DEFAULTS.hashKey,
    flowHash: service.flowHash ?? DEFAULTS.flowHash,
    hashSeed: service.hashSeed ?? DEFAULTS.hashSeed,
    tableSize: service.tableSize ?? DEFAULTS.tableSize,
    maxConnections: service.maxConnections ?? DEFAULTS.maxConnections,
    retries: service.retries ?? DEFAULTS.retries,
    ...(service.healthCheck === undefined ? {} : { healthCheck: service.healthCheck }),
    ...(service.onDown === undefined ? {} : { onDown: service.onDown }),
    timeouts: {
      connect: service.timeouts?.connect ?? DEFAULTS.timeouts.connect,
      idle: service.timeouts?.idle ?? DEFAULTS.timeouts.idle,
      queue: service.timeouts?.queue ?? DEFAULTS.timeouts.queue,
      drain: service.timeouts?.drain ?? DEFAULTS.timeouts.drain,
    },
    backends: namedBackends(service.backends).map((backend) => {
      const result: BackendConfig = { name: backend.name, address: backend.address, weight: backend.weight ?? DEFAULTS.weight };
      if (backend.maxConnections !== undefined) result.maxConnections = backend.maxConnections;
      if (backend.backup !== undefined) result.backup = backend.backup;
      if (backend.slowStart !== undefined) result.slowStart = backend.slowStart;
      if (backend.state !== undefined) result.state = backend.state;
      return result;
    }),
    ...dnsBackendsOf(service.backends),
  };
  if (service.balanceFactor !== undefined) result.balanceFactor = service.balanceFactor;
  if (service.proxyProtocol !== undefined) result.proxyProtocol = service.proxyProtocol;
  if (service.proxyProtocol?.accept !== undefined) result.timeouts.proxyHeader = service.timeouts?.proxyHeader ?? DEFAULTS.proxyHeaderTimeout;
  if (service.allow !== undefined) result.allow = service.allow;
  if (service.deny !== undefined) result.deny = service.deny;
  if (service.limits !== undefined) result.limits = service.limits;
  return result;
}

function toDsrService(service: DsrServiceInput): DsrServiceConfig {
  return {
    mode: 'dsr',
    name: service.name,
    vip: service.vip,
    dscp: service.dscp,
    hashKey: service.hashKey ?? DEFAULTS.hashKey,
    hashSeed: service.hashSeed ?? DEFAULTS.hashSeed,
    tableSize: service.tableSize ?? DEFAULTS.tableSize,
    ...(service.healthCheck === undefined ? {} : { healthCheck: service.healthCheck }),
    onDown: service.onDown ?? DEFAULTS.kernelOnDown,
    backends: namedBackends(service.backends).map((backend) => {
      const result: BackendConfig = { name: backend.name, address: { host: backend.address.host, port: backend.address.port ?? service.vip.port }, weight: backend.weight ?? DEFAULTS.weight };
      if (backend.state !== undefined) result.state = backend.state;
      return result;
    }),
    ...dnsBackendsOf(service.backends),
  };
}

function toNatService(service: NatServiceInput): NatServiceConfig {
  return {
    mode: 'nat',
    name: service.name,
    vip: service.vip,
    hashKey: service.hashKey ?? DEFAULTS.hashKey,
    hashSeed: service.hashSeed ?? DEFAULTS.hashSeed,
    tableSize: service.tableSize ?? DEFAULTS.tableSize,
    ...(service.snat === undefined ? {} : { snat: service.snat }),
    ...(service.healthCheck === undefined ? {} : { healthCheck: service.healthCheck }),
    onDown: service.onDown ?? DEFAULTS.kernelOnDown,
    backends: namedBackends(service.backends).map((backend) => {
      const result: BackendConfig = { name: backend.name, address: backend.address, weight: backend.weight ?? DEFAULTS.weight };
      if (backend.backup !== undefined) result.backup = backend.backup;
      if (backend.state !== undefined) result.state = backend.state;
      return result;
    }),
    ...dnsBackendsOf(service.backends),
  };
}

const serviceSchema = z.preprocess(
  (value) => (typeof value === 'object' && value !== null && !Array.isArray(value) && !('mode' in value) ? { mode: DEFAULTS.mode, ...value } : value),
  z.discriminatedUnion(
    'mode',
    [
      proxyServiceObject.superRefine((service, ctx) => checkProxyService(proxyFields(service), ctx)).superRefine(checkSourceRules).transform(toProxyService),
      dsrServiceObject.superRefine((service, ctx) => checkDsrService(dsrFields(service), ctx)).transform(toDsrService),
      natServiceObject.superRefine((service, ctx) => checkNatService(natFields(service), ctx)).transform(toNatService),
    ],
    { error: expecting('a service (a mapping)') },
  ),
);

const adminObject = z
  .strictObject({
    listen: listenField,
    token: tokenField.optional(),
    // A path, read when the file is loaded (load.ts): the token stays out of the file and of ps.
    tokenFile: z.string({ error: expecting('a file name') }).min(1).optional(),
    metricsPublic: z.boolean({ error: expecting('true or false') }).optional(),
  })
  .superRefine(checkAdmin);

/** How the process logs (src/proxy/access-log.ts); read at start. */
const logObject = z.strictObject({
  timestamp: z.enum(['epoch', 'iso'], { error: expecting('epoch or iso') }).optional(),
  level: z.enum(['debug', 'info', 'warn', 'error'], { error: expecting('debug, info, warn or error') }).optional(),
});
const accessLogObject = z.strictObject({
  path: z.string({ error: expecting('an absolute file path') }).refine((value) => value.startsWith('/'), { message: 'must be an absolute path (it does not depend on the directory l4lb starts in)' }),
});

/** A route: `{ sni, service }` or `{ default }` (RouteConfig). */
const routeObject = z
  .strictObject({
    sni: serverNamePatternField.optional(),
    service: nameField.optional(),
    default: nameField.optional(),
  })
  .superRefine((route, ctx) => {
    if (route.default !== undefined && (route.sni !== undefined || route.service !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['default'], message: 'a default route names only its service: { default: NAME } (sni and service belong to other routes)' });
    } else if (route.default === undefined && (route.sni === undefined || route.service === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'expected { sni: NAME, service: SERVICE } or { default: SERVICE }' });
    }
  })
  .transform((route): RouteConfig => (route.default !== undefined ? { default: route.default } : { sni: route.sni ?? '', service: route.service ?? '' }));

/** A TLS passthrough listener (src/proxy/router.ts). */
const listenerObject = z
  .strictObject({
    listen: listenField,
    routes: z.array(routeObject, { error: expecting('a list of routes') }).min(1),
    timeouts: z.strictObject({ inspect: durationField(false) }).optional(),
  })
  .superRefine((listener, ctx) => {
    const seen = new Map<string, number>();
    let defaults = 0;
    listener.routes.forEach((route, index) => {
      const key = 'default' in route ? 'default' : route.sni;
      if (key === 'default' && ++defaults === 1) return;
      const earlier = seen.get(key);
      if (key === 'default') ctx.addIssue({ code: 'custom', path: ['routes', index], message: 'a second default route (a listener has at most one)' });
      else if (earlier !== undefined) ctx.addIssue({ code: 'custom', path: ['routes', index, 'sni'], message: `${key} is already routed by routes[${earlier}]` });
      else seen.set(key, index);
    });
  })
  .transform((listener): ListenerConfig => ({ listen: listener.listen, routes: listener.routes, timeouts: { inspect: listener.timeouts?.inspect ?? DEFAULTS.inspectTimeout } }));

/** The whole file. Parse with `{ error: errorMap, reportInput: true }` (see load.ts). */
export const configSchema = describeObject(
  z.strictObject({
    admin: adminObject.optional(),
    workers: workersField.optional(),
    log: logObject.optional(),
    accessLog: accessLogObject.optional(),
    resolvers: resolversField.optional(),
    listeners: z.array(listenerObject, { error: expecting('a list of listeners') }).optional(),
    services: z.array(serviceSchema, { error: expecting('a list of services') }).min(1),
  }),
  { label: 'the top level' },
).transform((value): Config => ({
  ...(value.admin === undefined ? {} : { admin: value.admin }),
  ...(value.workers === undefined ? {} : { workers: value.workers }),
  ...(value.log === undefined ? {} : { log: value.log }),
  ...(value.accessLog === undefined ? {} : { accessLog: value.accessLog }),
  ...(value.resolvers === undefined ? {} : { resolvers: value.resolvers }),
  ...(value.listeners === undefined || value.listeners.length === 0 ? {} : { listeners: value.listeners }),
  services: value.services,
}))
  .superRefine(checkServices);

