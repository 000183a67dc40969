/**
 * The DSR director and backends, rendered from `mode: dsr` services (see docs/dsr.md).
 */
export { DSR_METHODS, isDsrMethod, planDirector, selectDsrServices, MAX_DSR_TABLE_SIZE, DIRECTOR_TABLE, BACKEND_TABLE } from './director-plan.js';
export type { DirectorService, DsrBackend, DsrMethod } from './director-plan.js';
export { renderDirector, renderDirectorRoutes, FLOW_PIN_TIMEOUT } from './director.js';
export { renderBackend } from './backend.js';
export { renderDiff, type DirectorDiff, type ServiceDelta } from './diff.js';
