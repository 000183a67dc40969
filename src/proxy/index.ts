/**
 * The proxy's front door: `startBalancer` and what its callers read — the runtimes, the admin API,
 * metrics, the benchmark and the CLI. Everything else in src/proxy is the data path's own.
 */
export {
  startBalancer,
  socketsOf,
  type SocketPlan,
  type InheritedName,
  type InspectStats,
  type ListenerStats,
  type Balancer,
  type BalancerOptions,
  type BackendStats,
  type ServiceStats,
  type BackendStatusStats,
  type ServiceStatusStats,
  type BackendChangeRequest,
  type BackendChangeResult,
} from './balancer.js';
export { createLogger, logOptions, reopenLogFiles, formatAddress, type LogOptions, END_REASON_TEXT, ACCESS_MESSAGE, type AccessRecord, type EndReason } from './access-log.js';
export type { SpliceEnd } from './splice.js';
export { REJECTIONS, type Rejection } from './rejections.js';
export { socketName } from './listening-socket.js';
export { INSPECT_RESULTS, routeFor, type InspectResult, type RouteTaken } from './router.js';
