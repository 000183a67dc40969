/** Prometheus metrics fed from a runtime's /stats rows and events. */
export { createMetrics, type Metrics, type StatsSource } from './metrics.js';
export {
  drainStatus,
  openConnections,
  type DrainRecord,
  type DrainStatus,
  type LifecycleView,
  type ReloadAbandoned,
  type ReloadRecord,
  type ReloadResult,
  type RunningConfig,
  type UpgradeOutcome,
} from './lifecycle.js';
