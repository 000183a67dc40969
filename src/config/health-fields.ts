/**
 * Configuration of health checks, failure handling and runtime states: a service's `healthCheck`
 * and `onDown`, a backend's `backup`, `slowStart` and initial `state`, and the admin endpoint's
 * `token`. Defaults are HAProxy's (defaults.ts HEALTH_DEFAULTS), the ones the health module uses
 * (src/health, docs/health.md).
 *
 * Checker options are validated by building the checker (createChecker), so the config layer and
 * the health module can never disagree on what a valid `path`, `expect` or `user` is. A refused
 * option arrives as a CheckOptionError whose `option` field names it; the config key is looked up
 * from that field, and the message is the error's own `describe(key)`.
 */
import { isIP } from 'node:net';
import * as z from 'zod';
import { CheckOptionError, type CheckOption } from '../errors.js';
import { createChecker, CHECK_TYPES, INITIAL_HEALTHS, type CheckSpec, type CheckType, type ExpectedStatus, type InitialHealth } from '../health/index.js';
import { HEALTH_DEFAULTS, HEALTH_LIMITS } from './defaults.js';
import { durationField, expecting, integer } from './fields.js';
import { describeObject, describeValue } from './messages.js';
import {
  ADMIN_STATES,
  ON_DOWN,
  type AdminState,
  type Endpoint,
  type ExpectedStatusSetting,
  type HealthCheckConfig,
  type HealthCheckType,
  type InitialHealthSetting,
  type OnDown,
} from './types.js';

/** True when A and B are the same set of values. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

// types.ts is a leaf, so it spells the health module's unions itself; they must stay the same sets.
const sameSets: [Same<HealthCheckType, CheckType>, Same<InitialHealthSetting, InitialHealth>, Same<ExpectedStatusSetting, ExpectedStatus>] = [true, true, true];
void sameSets;

const threshold = integer(`an integer 1–${HEALTH_LIMITS.maxThreshold}`).min(1).max(HEALTH_LIMITS.maxThreshold);
const statusSpec = z.union([z.number(), z.string()], { error: expecting('a status such as 200, "2xx" or "200-399"') });

const HEALTH_CHECK_SHAPE = {
  type: z.enum(CHECK_TYPES as [CheckType, ...CheckType[]]).optional(),
  interval: durationField(false),
  timeout: durationField(false),
  rise: threshold.optional(),
  fall: threshold.optional(),
  initial: z.enum(INITIAL_HEALTHS as [InitialHealth, ...InitialHealth[]]).optional(),
  path: z.string({ error: expecting('a path such as "/health"') }).optional(),
  host: z.string({ error: expecting('a Host header value') }).optional(),
  expect: z.union([statusSpec, z.array(statusSpec).min(1)], { error: expecting('a status, a class, a range or a list of these') }).optional(),
  user: z.string({ error: expecting('a role name') }).optional(),
  database: z.string({ error: expecting('a database name') }).optional(),
};

type HealthCheckInput = { [K in keyof typeof HEALTH_CHECK_SHAPE]?: z.output<(typeof HEALTH_CHECK_SHAPE)[K]> };

const OPTIONS_OF: Record<CheckType, readonly (keyof HealthCheckInput)[]> = {
  tcp: [],
  redis: [],
  mysql: [],
  pgsql: ['user', 'database'],
  http: ['path', 'host', 'expect'],
};
const TYPE_OPTIONS: readonly (keyof HealthCheckInput)[] = ['path', 'host', 'expect', 'user', 'database'];

/** The `healthCheck` key of each checker option: the file says `expect` where the checker says `expectStatus`. */
const CONFIG_KEY_OF: Readonly<Record<CheckOption, keyof HealthCheckInput>> = {
  path: 'path',
  host: 'host',
  expectStatus: 'expect',
  user: 'user',
  database: 'database',
};

function checkSpecOf(input: Omit<HealthCheckInput, 'expect'> & { expect?: ExpectedStatus }): CheckSpec {
  const type = input.type ?? HEALTH_DEFAULTS.type;
  switch (type) {
    case 'tcp':
    case 'redis':
    case 'mysql':
      return { type };
    case 'pgsql':
      return { type, user: input.user, database: input.database };
    case 'http':
      return { type, path: input.path, host: input.host, expectStatus: input.expect };
    default: {
      const never: never = type;
      throw new Error(`unknown check type ${String(never)}`);
    }
  }
}

/** `healthCheck` of a proxy service: options that the type would ignore are refused; the checker is built once to validate them. */
export const healthCheckObject = describeObject(z.strictObject(HEALTH_CHECK_SHAPE), { label: 'healthCheck' })
  .superRefine((input, ctx) => {
    const type = input.type ?? HEALTH_DEFAULTS.type;
    let refused = false;
    for (const key of TYPE_OPTIONS) {
      if (input[key] !== undefined && !OPTIONS_OF[type].includes(key)) {
        refused = true;
        const owners = CHECK_TYPES.filter((candidate) => OPTIONS_OF[candidate].includes(key)).join(', ');
        ctx.addIssue({ code: 'custom', path: [key], message: `applies only to type: ${owners}; this check is type: ${type}` });
      }
    }
    if (refused) return;
    try {
      createChecker(checkSpecOf(input));
    } catch (error) {
      if (!(error instanceof CheckOptionError)) throw error;
      const key = CONFIG_KEY_OF[error.option];
      ctx.addIssue({ code: 'custom', path: [key], message: error.describe(key) });
    }
  })
  .transform((input): HealthCheckConfig => {
    const interval = input.interval ?? HEALTH_DEFAULTS.interval;
    const result: HealthCheckConfig = {
      type: input.type ?? HEALTH_DEFAULTS.type,
      interval,
      timeout: input.timeout ?? interval,
      rise: input.rise ?? HEALTH_DEFAULTS.rise,
      fall: input.fall ?? HEALTH_DEFAULTS.fall,
      initial: input.initial ?? HEALTH_DEFAULTS.initial,
    };
    for (const key of ['path', 'host', 'expect', 'user', 'database'] as const) {
      if (input[key] !== undefined) Object.assign(result, { [key]: input[key] });
    }
    return result;
  });

/** The checker a validated `healthCheck` describes. */
export function checkSpecOfConfig(check: HealthCheckConfig): CheckSpec {
  return checkSpecOf(check);
}

export const onDownField = z.enum(ON_DOWN as [OnDown, ...OnDown[]]);
export const adminStateField = z.enum(ADMIN_STATES as [AdminState, ...AdminState[]]);
export const backupField = z.boolean({ error: expecting('true or false') });
export const slowStartField = durationField(false);

/** A bearer token: printable ASCII without spaces, long enough not to be guessed. */
export const tokenField = z.string({ error: expecting('a token (a string)') }).superRefine((value, ctx) => {
  if (!/^[\x21-\x7e]*$/.test(value)) {
    ctx.addIssue({ code: 'custom', message: 'must be printable ASCII without spaces (it is sent as "Authorization: Bearer TOKEN")' });
  } else if (value.length < HEALTH_LIMITS.minTokenLength) {
    ctx.addIssue({ code: 'custom', message: `must be at least ${HEALTH_LIMITS.minTokenLength} characters long, got ${value.length}` });
  }
});

/** Loopback: 127.0.0.0/8, ::1, and IPv4-mapped loopback. */
export function isLoopback(host: string): boolean {
  const mapped = host.toLowerCase().startsWith('::ffff:') ? host.slice(7) : host;
  if (isIP(mapped) === 4) return mapped.startsWith('127.');
  return mapped === '::1';
}

/** The admin endpoint may listen beyond loopback only with a token (everyone who can reach it could drain backends). */
export function checkAdmin(admin: { listen: Endpoint; token?: string; tokenFile?: string }, ctx: z.core.$RefinementCtx): void {
  if (admin.token !== undefined && admin.tokenFile !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['tokenFile'], message: 'give token or tokenFile, not both' });
  }
  if (admin.token === undefined && admin.tokenFile === undefined && !isLoopback(admin.listen.host)) {
    ctx.addIssue({
      code: 'custom',
      path: ['token'],
      message: `required when admin.listen is not a loopback address (got ${describeValue(admin.listen.host)}): anyone who reaches it could drain backends; set a token or listen on 127.0.0.1`,
    });
  }
}
