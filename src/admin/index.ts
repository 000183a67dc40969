/** The admin API over HTTP: /stats, /metrics and backend state changes, for any runtime. */
export { startAdmin, type AdminOptions, type AdminServer, type AdminTarget } from './server.js';
