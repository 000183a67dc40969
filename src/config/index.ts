/**
 * The configuration layer: one schema for YAML or JSON, validated once, typed result, clear errors.
 * See docs/configuration.md for every key. Code outside src/config imports from here only.
 */
export * from './types.js';
export { ConfigError, formatProblem, type ConfigProblem } from '../errors.js';
export { parseConfig, loadConfig, readConfig, readConfigBytes, tokenOfFileText, type LoadedConfig, detectFormat, type ConfigFormat, type ParseOptions } from './load.js';
export { summarizeConfig } from './summary.js';
export { CONFIG_LIMITS } from './limits.js';
export { configSchema } from './schema.js';
export { checkSpecOfConfig } from './health-fields.js';
export { DEFAULTS, DNS_DEFAULTS, DNS_LIMITS, HEALTH_DEFAULTS, LIMITS } from './defaults.js';
export { parseDuration, formatDuration, MAX_DURATION_MS } from './durations.js';
export { parseEndpoint, parseAddress, formatEndpoint, endpointsOverlap, isHostname, type EndpointRule, type HostRule } from './endpoints.js';
export { configJsonSchema } from './json-schema.js';
export { isPlainName } from './fields.js';
