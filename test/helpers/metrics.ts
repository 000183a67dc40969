/**
 * Reading one sample out of /metrics text parsed by parse-prometheus-text-format.
 */
import type { PrometheusFamily } from 'parse-prometheus-text-format';

/** The value of metric `name` whose labels include `labels`; throws naming what is missing. */
export function metricValue(families: PrometheusFamily[], name: string, labels: Record<string, string>): number {
  const family = families.find((candidate) => candidate.name === name);
  if (family === undefined) throw new Error(`no metric ${name}`);
  const sample = family.metrics.find((metric) => Object.entries(labels).every(([key, wanted]) => metric.labels?.[key] === wanted));
  if (sample === undefined) throw new Error(`no ${name} with ${JSON.stringify(labels)}`);
  return Number(sample.value);
}
