/**
 * Health checking's front door: build a checker from its spec, and the pieces a caller wires
 * together (checker -> scheduler -> reducer -> change events).
 */
import { LbError } from '../errors.js';
import { createHttpChecker, type HttpCheckOptions } from './http.js';
import { createMysqlChecker } from './mysql.js';
import { createPgsqlChecker, type PgsqlCheckOptions } from './pgsql.js';
import { createRedisChecker } from './redis.js';
import { createTcpChecker } from './tcp.js';
import type { HealthChecker } from './types.js';

export * from './types.js';
export * from './reducer.js';
export { describeStatusRanges, parseExpectedStatus, DEFAULT_HTTP_PATH, DEFAULT_EXPECTED_STATUS, type ExpectedStatus, type HttpCheckOptions } from './http.js';
export { DEFAULT_PGSQL_USER, type PgsqlCheckOptions } from './pgsql.js';
export * from './scheduler.js';

/** A checker's configuration: its type plus that type's options. */
export type CheckSpec =
  | { readonly type: 'tcp' }
  | { readonly type: 'redis' }
  | ({ readonly type: 'pgsql' } & PgsqlCheckOptions)
  | { readonly type: 'mysql' }
  | ({ readonly type: 'http' } & HttpCheckOptions);

/** Builds the checker for `spec`; throws LbError on bad options (at configuration time). */
export function createChecker(spec: CheckSpec): HealthChecker {
  switch (spec.type) {
    case 'tcp':
      return createTcpChecker();
    case 'redis':
      return createRedisChecker();
    case 'pgsql':
      return createPgsqlChecker(spec);
    case 'mysql':
      return createMysqlChecker();
    case 'http':
      return createHttpChecker(spec);
    default: {
      const never: never = spec;
      throw new LbError('LB_ERR_INVALID_ARGUMENT', `unknown health check type "${String((never as { type: unknown }).type)}"`);
    }
  }
}
