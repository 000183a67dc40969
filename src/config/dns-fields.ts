/**
 * Configuration of backends discovered through DNS: a backend entry `{ dns: NAME, port: P }` (every
 * A/AAAA record of NAME) or `{ srv: NAME }` (every SRV record, RFC 2782), and the top-level
 * `resolvers` they are asked through. Which form an entry of `backends` is, is decided by its keys
 * (`dns`, `srv`, else a backend with `name` and `address`), so each form reports its own problems
 * rather than a union's "matches none of the accepted forms".
 */
import { isIP } from 'node:net';
import * as z from 'zod';
import { DNS_DEFAULTS, DNS_LIMITS } from './defaults.js';
import { durationField, expecting, positiveInteger, weightField } from './fields.js';
import { formatDuration } from './durations.js';
import { parseAddress, type EndpointRule } from './endpoints.js';
import { backupField, slowStartField } from './health-fields.js';
import { describeObject, errorMap } from './messages.js';
import type { DnsBackendConfig, Endpoint } from './types.js';

/** A DNS name as queried: RFC 1035 labels, and SRV's leading `_service._proto` labels (RFC 2782). */
const DNS_NAME = /^(?=.{1,253}\.?$)(?:_?[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*_?[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?$/;

const dnsNameField = (example: string) =>
  z.string({ error: expecting(`a DNS name such as ${example}`) }).superRefine((value, ctx) => {
    if (!DNS_NAME.test(value)) ctx.addIssue({ code: 'custom', message: `expected a DNS name such as ${example}, got ${JSON.stringify(value.slice(0, 60))}` });
  });

const portField = z.number({ error: expecting('a port 1–65535') }).int().min(1).max(65535);

/** `refresh`: a duration within DNS_LIMITS. */
const refreshField = durationField(false).superRefine((value, ctx) => {
  if (value === undefined) return;
  if (value < DNS_LIMITS.minRefresh || value > DNS_LIMITS.maxRefresh) {
    ctx.addIssue({ code: 'custom', message: `must be ${formatDuration(DNS_LIMITS.minRefresh)}–${formatDuration(DNS_LIMITS.maxRefresh)}, got ${formatDuration(value)}` });
  }
});

const DNS_ENTRY_SHAPE = {
  dns: dnsNameField('pg.service.consul'),
  port: portField,
  refresh: refreshField,
  weight: weightField.optional(),
  maxConnections: positiveInteger.optional(),
  backup: backupField.optional(),
  slowStart: slowStartField,
};

const SRV_ENTRY_SHAPE = {
  srv: dnsNameField('_postgresql._tcp.db.example'),
  refresh: refreshField,
  maxConnections: positiveInteger.optional(),
  slowStart: slowStartField,
};

export const dnsEntryObject = describeObject(z.strictObject(DNS_ENTRY_SHAPE), {
  label: 'a dns: backend entry',
  elsewhere: [{ keys: ['name', 'address', 'state'], where: 'backends named in the file (a dns: entry names its backends ADDRESS:PORT)' }],
});
export const srvEntryObject = describeObject(z.strictObject(SRV_ENTRY_SHAPE), {
  label: 'an srv: backend entry',
  elsewhere: [
    { keys: ['port', 'weight', 'backup'], where: 'dns: entries (an SRV record carries its own port, weight and priority)' },
    { keys: ['name', 'address', 'state'], where: 'backends named in the file' },
  ],
});

type DnsEntryInput = z.output<typeof dnsEntryObject>;
type SrvEntryInput = z.output<typeof srvEntryObject>;

/** A parsed dns: or srv: entry, defaults filled in. */
export function toDnsBackend(entry: DnsEntryInput | SrvEntryInput): DnsBackendConfig {
  const common = {
    refresh: entry.refresh ?? DNS_DEFAULTS.refresh,
    ...(entry.maxConnections === undefined ? {} : { maxConnections: entry.maxConnections }),
    ...(entry.slowStart === undefined ? {} : { slowStart: entry.slowStart }),
  };
  if ('srv' in entry) return { type: 'srv', name: entry.srv, weight: 1, ...common };
  return { type: 'dns', name: entry.dns, port: entry.port, ...common, weight: entry.weight ?? 1, ...(entry.backup === undefined ? {} : { backup: entry.backup }) };
}

/** Which form an entry of `backends` is written in. */
export function entryKind(value: unknown): 'dns' | 'srv' | 'backend' {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'backend';
  if ('dns' in value) return 'dns';
  if ('srv' in value) return 'srv';
  return 'backend';
}

/**
 * An entry of a proxy service's `backends`: `backendObject` (name and address), or a dns:/srv:
 * entry, chosen by its keys; each is parsed by its own schema and its problems reported at the
 * entry's path. Output: `{ kind: 'backend', backend }` or `{ kind: 'dns', entry }`.
 */
export function backendEntryField<S extends z.ZodType>(backendObject: S) {
  type Entry = { kind: 'backend'; backend: z.output<S> } | { kind: 'dns'; entry: DnsBackendConfig };
  const variants = [backendObject, dnsEntryObject, srvEntryObject].map((schema) => z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }));
  return z
    .unknown()
    .transform((value, ctx): Entry => {
      const kind = entryKind(value);
      const schema: z.ZodType = kind === 'dns' ? dnsEntryObject : kind === 'srv' ? srvEntryObject : backendObject;
      const result = schema.safeParse(value, { error: errorMap });
      if (result.success) {
        return kind === 'backend' ? { kind, backend: result.data as z.output<S> } : { kind: 'dns', entry: toDnsBackend(result.data as DnsEntryInput | SrvEntryInput) };
      }
      for (const issue of result.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
      return z.NEVER;
    })
    .meta({
      description: 'a backend { name, address }, or { dns: NAME, port } (every A/AAAA record), or { srv: NAME } (every SRV record)',
      anyOf: variants.map((variant) => Object.fromEntries(Object.entries(variant).filter(([key]) => key !== '$schema'))),
    });
}

const RESOLVER_RULE: EndpointRule = { host: 'ip-or-hostname', minPort: 1 };

/** Top-level `resolvers`: `IP` (port 53) or `IP:PORT` / `[v6]:PORT`, at least one. */
export const resolversField = z
  .array(
    z.string({ error: expecting('a DNS server address IP or IP:PORT') }).transform((text, ctx): Endpoint => {
      const parsed = parseAddress(text, RESOLVER_RULE);
      if (parsed.ok && isIP(parsed.value.host) === 0) {
        ctx.addIssue({ code: 'custom', message: `expected the IP address of a DNS server, got the name "${parsed.value.host}" (a resolver is not itself resolved)` });
        return z.NEVER;
      }
      if (parsed.ok) return { host: parsed.value.host, port: parsed.value.port ?? DNS_DEFAULTS.port };
      ctx.addIssue({ code: 'custom', message: parsed.error });
      return z.NEVER;
    }),
    { error: expecting('a list of DNS server addresses such as ["127.0.0.1:5353"]') },
  )
  .min(1);
