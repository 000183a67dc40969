/**
 * The ways the admission checks (source rules, limits, PROXY headers) end a connection: the
 * reasons of a service's `rejected` counters and of the l4lb_connections_rejected_total metric.
 */
import type { EndReason, SourceRefusal } from './access-log.js';

/** Every way the source rules, limits and PROXY header checks end a connection. */
export type Rejection = SourceRefusal | 'proxy-header-invalid' | 'proxy-header-timeout' | 'proxy-header-not-allowed';

export const REJECTIONS: readonly Rejection[] = [
  'refused-denied',
  'refused-not-allowed',
  'refused-bad-address',
  'refused-over-connections',
  'refused-over-rate',
  'refused-table-full',
  'proxy-header-invalid',
  'proxy-header-timeout',
  'proxy-header-not-allowed',
];

const REJECTION_SET: ReadonlySet<string> = new Set(REJECTIONS);

export function isRejection(reason: EndReason): reason is Rejection {
  return REJECTION_SET.has(reason);
}
