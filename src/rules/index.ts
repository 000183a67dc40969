/**
 * Source rules for a service: CIDR sets, allow/deny evaluation, per-source limits in bounded memory,
 * and the strict address text they share with the PROXY protocol codec. Pure: no sockets, no clock.
 */
export { parseAddress, formatAddress, formatIPv4, formatIPv6, isMappedIPv4, parseIPv4Into, parseIPv6Into, type IpFamily, type ParsedAddress } from './address.js';
export { AddressKey, CidrSet, parseCidr, parseCidrList, formatCidr, type Cidr } from './cidr.js';
export { AccessPolicy, type AccessRules, type AccessVerdict } from './access.js';
export {
  SourceLimiter,
  parseRate,
  rateProblem,
  DEFAULT_MAX_SOURCES,
  type Admission,
  type LimitRefusal,
  type RateLimit,
  type SourceLease,
  type SourceLimitOptions,
  type SourceLimiterStats,
} from './limits.js';
