/**
 * The configuration keys of what a proxy service lets in, on bad input: `proxyProtocol`,
 * `timeouts.proxyHeader`, `allow`, `deny`, `limits`. Each row is one file and every line
 * `l4lb check` prints for it (the same table style as test/config-errors.test.ts, which covers every
 * other key). The number of rows is quoted in docs/security.md.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig, type ProxyServiceConfig } from '../src/config/index.js';
import { problemsOf } from './helpers/config-problems.js';

const proxy = (extra: string): string =>
  `services:\n  - { name: pg, listen: 127.0.0.1:6432, ${extra}, backends: [{ name: pg1, address: 127.0.0.1:5432 }] }\n`;


export const SECURITY_CONFIG_CASES: [string, string, string[]][] = [
  // --- proxyProtocol
  ['proxyProtocol not a mapping', proxy('proxyProtocol: v2'), ['c.yaml: services[0].proxyProtocol: expected a mapping, got "v2"']],
  ['proxyProtocol empty', proxy('proxyProtocol: {}'), [
    'c.yaml: services[0].proxyProtocol: expected "send" (v1 or v2) and/or "accept" (the CIDR blocks of trusted proxies); leave proxyProtocol out otherwise',
  ]],
  ['send v3', proxy('proxyProtocol: { send: v3 }'), ['c.yaml: services[0].proxyProtocol.send: expected one of v1, v2, got "v3"']],
  ['send as a number', proxy('proxyProtocol: { send: 2 }'), ['c.yaml: services[0].proxyProtocol.send: expected one of v1, v2, got the number 2']],
  ['send misspelt', proxy('proxyProtocol: { sedn: v1 }'), [
    'c.yaml: services[0].proxyProtocol: unknown key "sedn" (expected one of: send, accept)',
    'c.yaml: services[0].proxyProtocol: expected "send" (v1 or v2) and/or "accept" (the CIDR blocks of trusted proxies); leave proxyProtocol out otherwise',
  ]],
  ['accept not a list', proxy('proxyProtocol: { accept: 10.0.0.0/8 }'), [
    'c.yaml: services[0].proxyProtocol.accept: expected a list of addresses or CIDR blocks, got "10.0.0.0/8"',
  ]],
  ['accept empty', proxy('proxyProtocol: { accept: [] }'), ['c.yaml: services[0].proxyProtocol.accept: expected at least 1 entry, got 0']],
  ['accept prefix too long', proxy('proxyProtocol: { accept: [127.0.0.1, 10.0.0.0/33] }'), [
    'c.yaml: services[0].proxyProtocol.accept[1]: "10.0.0.0/33": prefix length must be 0–32',
  ]],
  ['accept host name', proxy('proxyProtocol: { accept: [haproxy.local] }'), [
    'c.yaml: services[0].proxyProtocol.accept[0]: "haproxy.local": "haproxy.local" is not an IPv4 or IPv6 address',
  ]],
  ['accept number', proxy('proxyProtocol: { accept: [8] }'), [
    'c.yaml: services[0].proxyProtocol.accept[0]: expected an address or CIDR block such as "10.0.0.0/8", got the number 8',
  ]],
  // --- timeouts.proxyHeader
  ['proxyHeader without accept', proxy('proxyProtocol: { send: v1 }, timeouts: { proxyHeader: 2s }'), [
    'c.yaml: services[0].timeouts.proxyHeader: applies only with proxyProtocol.accept (no header is read otherwise)',
  ]],
  ['proxyHeader zero', proxy('proxyProtocol: { accept: [127.0.0.1] }, timeouts: { proxyHeader: 0s }'), ['c.yaml: services[0].timeouts.proxyHeader: must be longer than 0, got "0s"']],
  ['proxyHeader bare number', proxy('proxyProtocol: { accept: [127.0.0.1] }, timeouts: { proxyHeader: 3 }'), [
    'c.yaml: services[0].timeouts.proxyHeader: expected a duration with a unit such as "500ms" or "3s", got the number 3 (a bare number has no unit)',
  ]],
  ['proxyHeader misspelt', proxy('timeouts: { proxyHeadr: 3s }'), ['c.yaml: services[0].timeouts: unknown key "proxyHeadr" (did you mean "proxyHeader"?)']],
  // --- allow / deny
  ['allow not a list', proxy('allow: 10.0.0.0/8'), ['c.yaml: services[0].allow: expected a list of addresses or CIDR blocks, got "10.0.0.0/8"']],
  ['allow empty', proxy('allow: []'), ['c.yaml: services[0].allow: expected at least 1 entry, got 0']],
  ['allow host bits set', proxy('allow: [10.0.0.0/8, 10.1.2.3/16]'), [
    'c.yaml: services[0].allow[1]: "10.1.2.3/16": host bits are set after the /16 prefix (the network is 10.1.0.0/16)',
  ]],
  ['allow leading zero', proxy('allow: [10.0.0.010]'), ['c.yaml: services[0].allow[0]: "10.0.0.010": "10.0.0.010" is not an IPv4 or IPv6 address']],
  ['allow empty string', proxy('allow: [""]'), ['c.yaml: services[0].allow[0]: "": empty, expected an address or address/prefix']],
  ['deny IPv6 prefix too long', proxy('deny: ["2001:db8::/129"]'), ['c.yaml: services[0].deny[0]: "2001:db8::/129": prefix length must be 0–128']],
  ['deny prefix with leading zero', proxy('deny: [10.0.0.0/08]'), [
    'c.yaml: services[0].deny[0]: "10.0.0.0/08": prefix length must be a decimal number 0–32 without leading zeroes',
  ]],
  ['deny zone index', proxy('deny: ["fe80::1%eth0"]'), ['c.yaml: services[0].deny[0]: "fe80::1%eth0": "fe80::1%eth0" is not an IPv4 or IPv6 address']],
  ['deny a mapping', proxy('deny: { net: 10.0.0.0/8 }'), ['c.yaml: services[0].deny: expected a list of addresses or CIDR blocks, got a mapping']],
  ['alow misspelt', proxy('alow: [10.0.0.0/8]'), ['c.yaml: services[0]: unknown key "alow" (did you mean "allow"?)']],
  // --- limits
  ['limits not a mapping', proxy('limits: 10'), ['c.yaml: services[0].limits: expected a mapping, got the number 10']],
  ['limits empty', proxy('limits: {}'), ['c.yaml: services[0].limits: expected "perSourceConnections" and/or "perSourceRate"']],
  ['maxSources alone', proxy('limits: { maxSources: 100 }'), [
    'c.yaml: services[0].limits: expected "perSourceConnections" and/or "perSourceRate" (maxSources alone limits nothing)',
  ]],
  ['perSourceConnections 0', proxy('limits: { perSourceConnections: 0 }'), ['c.yaml: services[0].limits.perSourceConnections: must be at least 1, got 0']],
  ['perSourceConnections fractional', proxy('limits: { perSourceConnections: 2.5 }'), [
    'c.yaml: services[0].limits.perSourceConnections: expected a positive integer, got the number 2.5',
  ]],
  ['perSourceConnections as text', proxy('limits: { perSourceConnections: "10" }'), [
    'c.yaml: services[0].limits.perSourceConnections: expected a positive integer, got "10"',
  ]],
  ['perSourceRate per hour', proxy('limits: { perSourceRate: 5/h }'), [
    'c.yaml: services[0].limits.perSourceRate: "5/h": expected "N/s" or "N/m" with N a whole number 1–999999999, e.g. "20/s"',
  ]],
  ['perSourceRate zero', proxy('limits: { perSourceRate: 0/s }'), [
    'c.yaml: services[0].limits.perSourceRate: "0/s": expected "N/s" or "N/m" with N a whole number 1–999999999, e.g. "20/s"',
  ]],
  ['perSourceRate a number', proxy('limits: { perSourceRate: 20 }'), ['c.yaml: services[0].limits.perSourceRate: expected a rate "N/s" or "N/m", e.g. "20/s", got the number 20']],
  ['maxSources above the bound', proxy('limits: { perSourceConnections: 5, maxSources: 16777217 }'), [
    'c.yaml: services[0].limits.maxSources: must be at most 16777216, got 16777217',
  ]],
  ['maxSources 0', proxy('limits: { perSourceConnections: 5, maxSources: 0 }'), ['c.yaml: services[0].limits.maxSources: must be at least 1, got 0']],
  ['limits key misspelt', proxy('limits: { perSourceConnection: 5 }'), [
    'c.yaml: services[0].limits: unknown key "perSourceConnection" (did you mean "perSourceConnections"?)',
    'c.yaml: services[0].limits: expected "perSourceConnections" and/or "perSourceRate"',
  ]],
  // --- found by test/security-inputs.test.ts: this file used to hang `l4lb check` (the nearest-prime search never ended)
  ['tableSize 1e300', proxy('tableSize: 1e300'), [
    'c.yaml: services[0].tableSize: must be at most 9007199254740991, got 1e+300',
    'c.yaml: services[0].tableSize: must be at most 16777216, got 1e+300',
  ]],
  ['on a dsr service', 'services:\n  - { name: w, mode: dsr, vip: 192.0.2.1:80, dscp: 9, allow: [10.0.0.0/8], backends: [{ name: x, address: 10.0.0.1 }] }\n', [
    'c.yaml: services[0]: unknown key "allow" in a mode: dsr service (it applies only to mode: proxy)',
  ]],
];

describe('source-rule config keys: bad values', () => {
  it.each(SECURITY_CONFIG_CASES)('%s', (_name, text, expected) => {
    expect(problemsOf(text)).toEqual(expected);
  });

  it('every field wrong at once: one line each, none lost', () => {
    const text = proxy('proxyProtocol: { send: v9, accept: [1.2.3.4/40] }, allow: [x], deny: [y], limits: { perSourceConnections: -1, perSourceRate: fast, maxSources: 0 }, timeouts: { proxyHeader: soon }');
    expect(problemsOf(text)).toHaveLength(8);
  });
});

describe('source-rule config keys: good values', () => {
  it('fills timeouts.proxyHeader (3s) only when accept is set, keeps lists as written', () => {
    const config = parseConfig(proxy('proxyProtocol: { send: v2, accept: ["::1", 127.0.0.0/8] }, allow: [127.0.0.0/8, "::1"], deny: [127.0.0.66], limits: { perSourceConnections: 4, perSourceRate: 20/s }'), 'c.yaml');
    const service = config.services[0] as ProxyServiceConfig;
    expect(service.proxyProtocol).toEqual({ send: 'v2', accept: ['::1', '127.0.0.0/8'] });
    expect(service.timeouts.proxyHeader).toBe(3000);
    expect(service.allow).toEqual(['127.0.0.0/8', '::1']);
    expect(service.deny).toEqual(['127.0.0.66']);
    expect(service.limits).toEqual({ perSourceConnections: 4, perSourceRate: '20/s' });
    const plain = parseConfig(proxy('proxyProtocol: { send: v1 }'), 'c.yaml').services[0] as ProxyServiceConfig;
    expect(plain.timeouts.proxyHeader).toBeUndefined();
    expect(plain.allow).toBeUndefined();
    const custom = parseConfig(proxy('proxyProtocol: { accept: [10.0.0.0/8] }, timeouts: { proxyHeader: 500ms }'), 'c.yaml').services[0] as ProxyServiceConfig;
    expect(custom.timeouts.proxyHeader).toBe(500);
  });
});
