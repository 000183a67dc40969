/**
 * The one schema for l4lb's configuration file (issue 3 "Configuration"; issue 6 for `mode: dsr`),
 * in zod. Every object is strict, so a misspelt key is an error rather than a silent no-op.
 *
 * Shape of the pipeline: field schemas parse leaves (durations → ms, addresses → Endpoint) and leave
 * optional keys undefined; each object's `superRefine` checks rules that span its fields (which keys
 * apply to which `balance`, table size against backend count, unique names); a final `transform`
 * fills the defaults. Keeping "was it given?" until the end lets us refuse keys that would be ignored.
 *
 * To add a key (healthCheck, proxyProtocol, limits, admin.token…): add it to the object's shape, its
 * default to DEFAULTS if any, its type to types.ts, and a row to docs/configuration.md.
 */
import * as z from 'zod';
import { isPrime } from '../hashing/validate.js';
import { parseDuration, MAX_DURATION_MS, formatDuration } from './durations.js';
import { endpointsOverlap, formatEndpoint, parseAddress, parseEndpoint, type EndpointRule } from './endpoints.js';
import { describeObject, describeValue } from './messages.js';
import {
  BALANCES,
  FLOW_HASHES,
  HASH_KEY_KINDS,
  SERVICE_MODES,
  type Balance,
  type BackendConfig,
  type Config,
  type DsrServiceConfig,
  type Endpoint,
  type FlowHash,
  type HashKeyKind,
  type ProxyServiceConfig,
  type ServiceConfig,
} from './types.js';

/** What an omitted key means; the values a HAProxy user would expect. */
export const DEFAULTS = {
  mode: 'proxy',
  balance: 'maglev',
  hashKey: 'source-ip',
  flowHash: 'murmur3',
  hashSeed: 0,
  tableSize: 65537,
  maxConnections: 10_000,
  retries: 2,
  weight: 1,
  timeouts: { connect: 3_000, idle: 30 * 60_000, queue: 5_000, drain: 30_000 },
} as const;

export const LIMITS = {
  maxRetries: 10,
  maxWeight: 1000,
  maxTableSize: 2 ** 24,
  maxHashSeed: 2 ** 32 - 1,
  minDscp: 1,
  maxDscp: 63,
} as const;

/** Balancers that hash a flow key; the others (roundrobin, leastconn) ignore hashKey and friends. */
const HASHING_BALANCES: readonly Balance[] = ['maglev', 'ring', 'rendezvous'];

const LISTEN_RULE: EndpointRule = { host: 'ip', minPort: 0 };
const PROXY_BACKEND_RULE: EndpointRule = { host: 'ip-or-hostname', minPort: 1 };
const DSR_RULE: EndpointRule = { host: 'ipv4', minPort: 1 };

// ---------------------------------------------------------------------------------------------
// Leaves

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** A message for a field whose value has the wrong type (or is missing), naming the expected form. */
const expecting = (expected: string) => (issue: { code?: string; input?: unknown }) => {
  if (issue.code !== 'invalid_type') return undefined; // other codes: the per-parse error map words them
  return issue.input === undefined ? `missing: expected ${expected}` : `expected ${expected}, got ${describeValue(issue.input)}`;
};

/** Service and backend names: they appear in logs, metrics and nft identifiers, so keep them plain. */
const nameField = z.string({ error: expecting('a name') }).superRefine((value, ctx) => {
  if (!NAME.test(value)) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a name of at most 63 letters, digits, ".", "_" or "-", starting with a letter or digit, got ${describeValue(value)}`,
    });
  }
});

function endpointField(rule: EndpointRule) {
  return z.string({ error: expecting('an address HOST:PORT') }).transform((text, ctx): Endpoint => {
    const parsed = parseEndpoint(text, rule);
    if (parsed.ok) return parsed.value;
    ctx.addIssue({ code: 'custom', message: parsed.error });
    return z.NEVER;
  });
}

/** A DSR backend: an IPv4 address, with or without a port (the port must be the VIP's). */
const dsrBackendAddressField = z.string({ error: expecting('an IPv4 address, optionally with :PORT') }).transform((text, ctx) => {
  const parsed = parseAddress(text, DSR_RULE);
  if (parsed.ok) return parsed.value;
  ctx.addIssue({ code: 'custom', message: parsed.error });
  return z.NEVER;
});

function durationField(allowZero: boolean) {
  return z
    .unknown()
    .transform((value, ctx): number => {
      if (typeof value === 'number') {
        if (value === 0 && allowZero) return 0;
        if (value === 0) {
          ctx.addIssue({ code: 'custom', message: 'must be longer than 0, got 0' });
          return z.NEVER;
        }
        ctx.addIssue({ code: 'custom', message: `expected a duration with a unit such as "500ms" or "3s", got the number ${value} (a bare number has no unit)` });
        return z.NEVER;
      }
      if (typeof value !== 'string') {
        ctx.addIssue({ code: 'custom', message: `expected a duration such as "500ms", "3s", "30m" or "1h", got ${describeValue(value)}` });
        return z.NEVER;
      }
      const parsed = parseDuration(value);
      if (!parsed.ok) {
        ctx.addIssue({ code: 'custom', message: parsed.error });
        return z.NEVER;
      }
      if (parsed.value === 0 && !allowZero) {
        ctx.addIssue({ code: 'custom', message: `must be longer than 0, got "${value}"` });
        return z.NEVER;
      }
      return parsed.value;
    })
    .optional();
}

const integer = (expected: string) => z.number({ error: expecting(expected) }).int();
const positiveInteger = integer('a positive integer').min(1);

const tableSizeField = integer('a prime number').min(2).max(LIMITS.maxTableSize).superRefine((value, ctx) => {
  if (!isPrime(value)) {
    const lower = nearestPrime(value, -1);
    const upper = nearestPrime(value, +1);
    const hint = lower === undefined ? `${upper}` : `${lower} or ${upper}`;
    ctx.addIssue({ code: 'custom', message: `must be a prime number (Maglev needs one), got ${value}; nearest primes: ${hint}` });
  }
});

function nearestPrime(from: number, step: 1 | -1): number | undefined {
  for (let n = from + step; n >= 2; n += step) if (isPrime(n)) return n;
  return undefined;
}

const weightField = z.number({ error: expecting('a number > 0') }).gt(0).max(LIMITS.maxWeight);
const hashKeyField = z.enum(HASH_KEY_KINDS as [HashKeyKind, ...HashKeyKind[]]);
const hashSeedField = integer(`an integer 0–${LIMITS.maxHashSeed}`).min(0).max(LIMITS.maxHashSeed);

// ---------------------------------------------------------------------------------------------
// Objects, as written in the file (optional keys still undefined)

const timeoutsObject = z.strictObject({
  connect: durationField(false),
  idle: durationField(false),
  queue: durationField(false),
  drain: durationField(true),
});

const PROXY_BACKEND_SHAPE = {
  name: nameField,
  address: endpointField(PROXY_BACKEND_RULE),
  weight: weightField.optional(),
  maxConnections: positiveInteger.optional(),
};

const DSR_BACKEND_SHAPE = {
  name: nameField,
  address: dsrBackendAddressField,
  weight: weightField.optional(),
};

const PROXY_SERVICE_SHAPE = {
  mode: z.literal('proxy'),
  name: nameField,
  listen: endpointField(LISTEN_RULE),
  balance: z.enum(BALANCES as [Balance, ...Balance[]]).optional(),
  hashKey: hashKeyField.optional(),
  flowHash: z.enum(FLOW_HASHES as [FlowHash, ...FlowHash[]]).optional(),
  hashSeed: hashSeedField.optional(),
  tableSize: tableSizeField.optional(),
  balanceFactor: z.number({ error: expecting('a number > 1') }).gt(1).optional(),
  maxConnections: positiveInteger.optional(),
  retries: integer(`an integer 0–${LIMITS.maxRetries}`).min(0).max(LIMITS.maxRetries).optional(),
  timeouts: timeoutsObject.optional(),
  backends: z.array(z.unknown()).min(1), // replaced below by the mode's backend schema
};

const DSR_SERVICE_SHAPE = {
  mode: z.literal('dsr'),
  name: nameField,
  vip: endpointField(DSR_RULE),
  dscp: integer(`an integer ${LIMITS.minDscp}–${LIMITS.maxDscp}`).min(LIMITS.minDscp).max(LIMITS.maxDscp),
  hashKey: hashKeyField.optional(),
  hashSeed: hashSeedField.optional(),
  tableSize: tableSizeField.optional(),
  backends: z.array(z.unknown()).min(1),
};

const proxyBackendObject = describeObject(z.strictObject(PROXY_BACKEND_SHAPE), {
  label: 'a backend of a mode: proxy service',
});
const dsrBackendObject = describeObject(z.strictObject(DSR_BACKEND_SHAPE), {
  label: 'a backend of a mode: dsr service',
  elsewhere: [{ keys: Object.keys(PROXY_BACKEND_SHAPE), where: 'backends of mode: proxy; the DSR director keeps no connection state' }],
});

const proxyServiceObject = describeObject(
  z.strictObject({ ...PROXY_SERVICE_SHAPE, backends: z.array(proxyBackendObject, { error: expecting('a list of backends') }).min(1) }),
  { label: 'a mode: proxy service', elsewhere: [{ keys: Object.keys(DSR_SERVICE_SHAPE), where: 'mode: dsr' }] },
);
const dsrServiceObject = describeObject(
  z.strictObject({ ...DSR_SERVICE_SHAPE, backends: z.array(dsrBackendObject, { error: expecting('a list of backends') }).min(1) }),
  { label: 'a mode: dsr service', elsewhere: [{ keys: Object.keys(PROXY_SERVICE_SHAPE), where: 'mode: proxy' }] },
);

type ProxyServiceInput = z.output<typeof proxyServiceObject>;
type DsrServiceInput = z.output<typeof dsrServiceObject>;

// ---------------------------------------------------------------------------------------------
// Rules across the fields of one service

type Issues = z.core.$RefinementCtx;

function checkUniqueBackendNames(backends: readonly { name: string }[], ctx: Issues): void {
  const first = new Map<string, number>();
  backends.forEach((backend, index) => {
    const earlier = first.get(backend.name);
    if (earlier === undefined) first.set(backend.name, index);
    else ctx.addIssue({ code: 'custom', path: ['backends', index, 'name'], message: `duplicate backend name "${backend.name}" (also backends[${earlier}])` });
  });
}

function checkTableFits(tableSize: number, backendCount: number, ctx: Issues): void {
  if (tableSize < backendCount) {
    ctx.addIssue({ code: 'custom', path: ['tableSize'], message: `must be at least the number of backends (${backendCount}), got ${tableSize}` });
  }
}

function checkProxyService(service: ProxyServiceInput, ctx: Issues): void {
  const balance = service.balance ?? DEFAULTS.balance;
  const refuse = (key: keyof ProxyServiceInput, appliesTo: string): void => {
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
  if (balance === 'maglev') checkTableFits(service.tableSize ?? DEFAULTS.tableSize, service.backends.length, ctx);
  checkUniqueBackendNames(service.backends, ctx);
}

function checkDsrService(service: DsrServiceInput, ctx: Issues): void {
  checkTableFits(service.tableSize ?? DEFAULTS.tableSize, service.backends.length, ctx);
  checkUniqueBackendNames(service.backends, ctx);
  service.backends.forEach((backend, index) => {
    if (backend.address.port !== undefined && backend.address.port !== service.vip.port) {
      ctx.addIssue({
        code: 'custom',
        path: ['backends', index, 'address'],
        message: `port ${backend.address.port} differs from the VIP port ${service.vip.port}: DSR does not rewrite ports (leave the port out)`,
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Defaults

function toProxyService(service: ProxyServiceInput): ProxyServiceConfig {
  const result: ProxyServiceConfig = {
    mode: 'proxy',
    name: service.name,
    listen: service.listen,
    balance: service.balance ?? DEFAULTS.balance,
    hashKey: service.hashKey ?? DEFAULTS.hashKey,
    flowHash: service.flowHash ?? DEFAULTS.flowHash,
    hashSeed: service.hashSeed ?? DEFAULTS.hashSeed,
    tableSize: service.tableSize ?? DEFAULTS.tableSize,
    maxConnections: service.maxConnections ?? DEFAULTS.maxConnections,
    retries: service.retries ?? DEFAULTS.retries,
    timeouts: {
      connect: service.timeouts?.connect ?? DEFAULTS.timeouts.connect,
      idle: service.timeouts?.idle ?? DEFAULTS.timeouts.idle,
      queue: service.timeouts?.queue ?? DEFAULTS.timeouts.queue,
      drain: service.timeouts?.drain ?? DEFAULTS.timeouts.drain,
    },
    backends: service.backends.map((backend) => {
      const result: BackendConfig = { name: backend.name, address: backend.address, weight: backend.weight ?? DEFAULTS.weight };
      if (backend.maxConnections !== undefined) result.maxConnections = backend.maxConnections;
      return result;
    }),
  };
  if (service.balanceFactor !== undefined) result.balanceFactor = service.balanceFactor;
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
    backends: service.backends.map((backend) => ({
      name: backend.name,
      address: { host: backend.address.host, port: backend.address.port ?? service.vip.port },
      weight: backend.weight ?? DEFAULTS.weight,
    })),
  };
}

const serviceSchema = z.preprocess(
  (value) => (typeof value === 'object' && value !== null && !Array.isArray(value) && !('mode' in value) ? { mode: DEFAULTS.mode, ...value } : value),
  z.discriminatedUnion(
    'mode',
    [
      proxyServiceObject.superRefine(checkProxyService).transform(toProxyService),
      dsrServiceObject.superRefine(checkDsrService).transform(toDsrService),
    ],
    { error: expecting('a service (a mapping)') },
  ),
);

// ---------------------------------------------------------------------------------------------
// Rules across services

function checkServices(config: Config, ctx: Issues): void {
  const names = new Map<string, number>();
  const binds: { endpoint: Endpoint; path: (string | number)[]; owner: string }[] = [];
  if (config.admin !== undefined) binds.push({ endpoint: config.admin.listen, path: ['admin', 'listen'], owner: 'admin' });
  const dscpOwners = new Map<number, { vip: string; index: number }>();

  config.services.forEach((service, index) => {
    const earlier = names.get(service.name);
    if (earlier === undefined) names.set(service.name, index);
    else ctx.addIssue({ code: 'custom', path: ['services', index, 'name'], message: `duplicate service name "${service.name}" (also services[${earlier}])` });

    switch (service.mode) {
      case 'proxy':
        binds.push({ endpoint: service.listen, path: ['services', index, 'listen'], owner: `service "${service.name}" (services[${index}].listen)` });
        break;
      case 'dsr': {
        binds.push({ endpoint: service.vip, path: ['services', index, 'vip'], owner: `service "${service.name}" (services[${index}].vip)` });
        const owner = dscpOwners.get(service.dscp);
        if (owner === undefined) dscpOwners.set(service.dscp, { vip: service.vip.host, index });
        else if (owner.vip !== service.vip.host) {
          ctx.addIssue({
            code: 'custom',
            path: ['services', index, 'dscp'],
            message: `dscp ${service.dscp} already marks VIP ${owner.vip} (services[${owner.index}]); each DSCP value must identify one VIP`,
          });
        }
        break;
      }
      default: {
        const never: never = service;
        throw new Error(`unknown service mode ${String((never as ServiceConfig).mode)}`);
      }
    }
  });

  binds.forEach((bind, index) => {
    const clash = binds.slice(0, index).find((earlier) => endpointsOverlap(earlier.endpoint, bind.endpoint));
    if (clash !== undefined) {
      ctx.addIssue({ code: 'custom', path: bind.path, message: `${formatEndpoint(bind.endpoint)} overlaps ${formatEndpoint(clash.endpoint)} of ${clash.owner}` });
    }
  });
}

const adminObject = z.strictObject({ listen: endpointField(LISTEN_RULE) });

/** The whole file. Parse with `{ error: errorMap, reportInput: true }` (see load.ts). */
export const configSchema = describeObject(
  z.strictObject({
    admin: adminObject.optional(),
    services: z.array(serviceSchema, { error: expecting('a list of services') }).min(1),
  }),
  { label: 'the top level' },
).transform((value): Config => (value.admin === undefined ? { services: value.services } : { admin: value.admin, services: value.services }))
  .superRefine(checkServices);

export { SERVICE_MODES, MAX_DURATION_MS, formatDuration };
