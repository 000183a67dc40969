/**
 * Leaf schemas: one value each, parsed to its typed form (durations to ms, addresses to Endpoint)
 * with a message that says what was expected and what was found.
 */
import * as z from 'zod';
import { isPrime } from '../hashing/index.js';
import { LIMITS } from './defaults.js';
import { parseDuration } from './durations.js';
import { parseAddress, parseEndpoint, type EndpointRule } from './endpoints.js';
import { describeValue } from './messages.js';
import { HASH_KEY_KINDS, PROXY_HASH_KEYS, type Endpoint, type HashKeyKind, type ProxyHashKey, type WorkersSetting } from './types.js';

export const LISTEN_RULE: EndpointRule = { host: 'ip', minPort: 0 };
export const PROXY_BACKEND_RULE: EndpointRule = { host: 'ip-or-hostname', minPort: 1 };
export const DSR_RULE: EndpointRule = { host: 'ipv4', minPort: 1 };
/** A full-NAT VIP and its backends: IP literals (the kernel never resolves a name), IPv4 or IPv6. */
export const NAT_RULE: EndpointRule = { host: 'ip', minPort: 1 };

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** Whether `text` may name a service or backend (as the file's names must: no ":", so never a discovered backend's). */
export function isPlainName(text: string): boolean {
  return NAME.test(text);
}

/** A message for a field whose value has the wrong type (or is missing), naming the expected form. */
export const expecting = (expected: string) => (issue: { code?: string; input?: unknown }) => {
  if (issue.code !== 'invalid_type') return undefined; // other codes: the per-parse error map words them
  return issue.input === undefined ? `missing: expected ${expected}` : `expected ${expected}, got ${describeValue(issue.input)}`;
};

/** Service and backend names: they appear in logs, metrics and nft identifiers, so keep them plain. */
export const nameField = z.string({ error: expecting('a name') }).superRefine((value, ctx) => {
  if (!NAME.test(value)) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a name of at most 63 letters, digits, ".", "_" or "-", starting with a letter or digit, got ${describeValue(value)}`,
    });
  }
});

export function endpointField(rule: EndpointRule) {
  return z.string({ error: expecting('an address HOST:PORT') }).transform((text, ctx): Endpoint => {
    const parsed = parseEndpoint(text, rule);
    if (parsed.ok) return parsed.value;
    ctx.addIssue({ code: 'custom', message: parsed.error });
    return z.NEVER;
  });
}

/**
 * What a listen address written as a port alone means: every IPv4 address, as nginx's `listen 6432`
 * (nginx binds [::] only when told `listen [::]:6432`). `6432` (a number) and `":6432"` are both
 * `0.0.0.0:6432`; anything else is returned as written. Undefined for a value that is neither a
 * string nor an integer.
 */
const ALL_ADDRESSES = '0.0.0.0';
export function listenText(value: unknown): string | undefined {
  if (typeof value === 'number') return Number.isInteger(value) ? `${ALL_ADDRESSES}:${value}` : undefined;
  if (typeof value !== 'string') return undefined;
  return /^:\d+$/.test(value.trim()) ? `${ALL_ADDRESSES}${value.trim()}` : value;
}

/** A listen address: `HOST:PORT`, `[v6]:PORT`, or a port alone (`6432`, `":6432"`: all IPv4 addresses). */
function parseListen(value: unknown): { ok: true; value: Endpoint } | { ok: false; error: string } {
  const text = listenText(value);
  if (text === undefined) return { ok: false, error: `expected an address HOST:PORT or a port, got ${describeValue(value)}` };
  return parseEndpoint(text, LISTEN_RULE);
}

export const listenField = z.unknown().transform((value, ctx): Endpoint => {
  const parsed = parseListen(value);
  if (parsed.ok) return parsed.value;
  ctx.addIssue({ code: 'custom', message: parsed.error });
  return z.NEVER;
}).meta({
  description: 'HOST:PORT, [v6]:PORT, or a port alone (every IPv4 address, as nginx `listen 6432`)',
  anyOf: [{ type: 'string' }, { type: 'integer', minimum: 0, maximum: 65535 }],
  examples: ['127.0.0.1:6432', '[::]:6432', ':6432', 6432],
});

/**
 * A service's `listen`: one address as `listenField` reads it, or a list of them (IPv4 and IPv6
 * together, `[127.0.0.1:5433, "[::1]:5433"]`); always a list once parsed.
 */
export const listenListField = z
  .unknown()
  .transform((value, ctx): Endpoint[] => {
    if (!Array.isArray(value)) {
      const parsed = parseListen(value);
      if (parsed.ok) return [parsed.value];
      ctx.addIssue({ code: 'custom', message: parsed.error });
      return z.NEVER;
    }
    if (value.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'expected at least one address, got an empty list' });
      return z.NEVER;
    }
    const endpoints: Endpoint[] = [];
    value.forEach((item: unknown, index) => {
      const parsed = parseListen(item);
      if (parsed.ok) endpoints.push(parsed.value);
      else ctx.addIssue({ code: 'custom', path: [index], message: parsed.error });
    });
    return endpoints.length === value.length ? endpoints : z.NEVER;
  })
  .meta({
    description: 'HOST:PORT, [v6]:PORT, a port alone, or a list of these',
    anyOf: [{ type: 'string' }, { type: 'integer', minimum: 0, maximum: 65535 }, { type: 'array', minItems: 1, items: { anyOf: [{ type: 'string' }, { type: 'integer', minimum: 0, maximum: 65535 }] } }],
    examples: ['127.0.0.1:6432', ['127.0.0.1:5433', '[::1]:5433']],
  });

/** A DSR backend: an IPv4 address, with or without a port (the port must be the VIP's). */
export const dsrBackendAddressField = z.string({ error: expecting('an IPv4 address, optionally with :PORT') }).transform((text, ctx) => {
  const parsed = parseAddress(text, DSR_RULE);
  if (parsed.ok) return parsed.value;
  ctx.addIssue({ code: 'custom', message: parsed.error });
  return z.NEVER;
});

export function durationField(allowZero: boolean) {
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
    .meta({
      description: `a duration: a number with a unit (ms, s, m, h), e.g. "500ms", "3s", "1h"${allowZero ? '; or 0' : ''}`,
      ...(allowZero ? { anyOf: [{ type: 'string' }, { const: 0 }] } : { type: 'string' }),
    })
    .optional();
}

export const integer = (expected: string) => z.number({ error: expecting(expected) }).int();
export const positiveInteger = integer('a positive integer').min(1);

export const tableSizeField = integer('a prime number').min(2).max(LIMITS.maxTableSize).superRefine((value, ctx) => {
  // zod runs refinements after a failed min/max too: out of range is already reported, and the
  // prime search below never ends for values such as 1e300 (n + 1 === n in floating point).
  if (!(value >= 2 && value <= LIMITS.maxTableSize)) return;
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

export const weightField = z.number({ error: expecting('a number > 0') }).gt(0).max(LIMITS.maxWeight);
export const hashKeyField = z.enum(HASH_KEY_KINDS as [HashKeyKind, ...HashKeyKind[]]);
export const proxyHashKeyField = z.enum(PROXY_HASH_KEYS as [ProxyHashKey, ...ProxyHashKey[]]);

/**
 * A route's server name: `db.example.com` or `*.example.org` (one leading wildcard label), kept
 * lower case without a trailing dot, as the ClientHello's name is compared (src/tls).
 */
export const serverNamePatternField = z.string({ error: expecting('a server name such as db.example.com or *.example.org') }).transform((text, ctx): string => {
  const lower = text.trim().toLowerCase();
  const bare = lower.endsWith('.') ? lower.slice(0, -1) : lower;
  const name = bare.startsWith('*.') ? bare.slice(2) : bare;
  if (name.length === 0 || name.length > 253 || !/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(name)) {
    ctx.addIssue({ code: 'custom', message: `expected a server name such as db.example.com or *.example.org (a wildcard only as the whole first label), got ${describeValue(text)}` });
    return z.NEVER;
  }
  return bare;
});
export const hashSeedField = integer(`an integer 0–${LIMITS.maxHashSeed}`).min(0).max(LIMITS.maxHashSeed);

/** Top-level `workers`: an integer 1–LIMITS.maxWorkers, or "auto" (one per core the process may use). */
export const workersField = z.unknown().transform((value, ctx): WorkersSetting => {
  if (value === 'auto') return 'auto';
  const expected = `expected an integer 1–${LIMITS.maxWorkers} or "auto"`;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    const hint = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? ' (write the number without quotes)' : typeof value === 'string' && value.trim().toLowerCase() === 'auto' ? ' (write auto in lower case, without spaces)' : '';
    ctx.addIssue({ code: 'custom', message: `${expected}, got ${describeValue(value)}${hint}` });
    return z.NEVER;
  }
  if (value < 1 || value > LIMITS.maxWorkers) {
    ctx.addIssue({ code: 'custom', message: value < 1 ? `must be at least 1, got ${value}` : `must be at most ${LIMITS.maxWorkers}, got ${value}` });
    return z.NEVER;
  }
  return value;
}).meta({ description: `processes sharing the listeners: an integer 1–${LIMITS.maxWorkers}, or "auto" (one per core)`, anyOf: [{ type: 'integer', minimum: 1, maximum: LIMITS.maxWorkers }, { const: 'auto' }] });
