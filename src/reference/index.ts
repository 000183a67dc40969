/**
 * The generated reference pages (docs/reference/): configuration keys from the schema, commands from
 * the commander definitions, metrics from the registry. `npm run reference` writes them;
 * test/reference.test.ts fails when a committed page differs from what the code generates now.
 */
export { renderConfigReference, referenceGaps, schemaKeys, type SchemaKey } from './config.js';
export { renderCliReference, staleExitNotes } from './cli.js';
export { renderMetricsReference, metricDocs, type MetricDoc } from './metrics.js';

import { renderCliReference } from './cli.js';
import { renderConfigReference } from './config.js';
import { renderMetricsReference } from './metrics.js';

/** Each page's path under docs/ and its text. */
export function referencePages(): ReadonlyMap<string, string> {
  return new Map([
    ['reference/configuration.md', renderConfigReference()],
    ['reference/cli.md', renderCliReference()],
    ['reference/metrics.md', renderMetricsReference()],
  ]);
}
