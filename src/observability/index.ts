/** Prometheus metrics fed from a runtime's /stats rows and events. */
export { createMetrics, type Metrics, type StatsSource } from './metrics.js';
