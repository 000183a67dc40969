/**
 * The proxy's front door (issue 3): `startBalancer` and what its callers read — the admin API,
 * metrics, the benchmark and the CLI. Everything else in src/proxy is internal.
 */
export {
  startBalancer,
  type Balancer,
  type BalancerOptions,
  type BackendStats,
  type ServiceStats,
  type BackendStatusStats,
  type ServiceStatusStats,
  type StateResult,
  type HealthChange,
  type CheckEvent,
  type StateChange,
} from './balancer.js';
export { createLogger, END_REASON_TEXT, ACCESS_MESSAGE, type AccessRecord, type EndReason } from './access-log.js';
export { ListenError, type ListenFailure } from './service.js';
export { systemLookup, type Lookup } from './plan.js';
export type { SpliceEnd } from './splice.js';
export { REJECTIONS, type Rejection } from './rejections.js';
