/**
 * The old home of the health-related config types, kept so that importers outside src/config
 * (src/proxy, src/cluster, src/admin, src/cli, src/observability, two tests) keep compiling while
 * they move to '../config/index.js', which exports all of these. New code must not import this file:
 * its name collides with src/health, and the types live in types.ts.
 */
export { ADMIN_STATES, ON_DOWN, type AdminState, type HealthCheckConfig, type OnDown } from './types.js';
export { checkSpecOfConfig } from './health-fields.js';
