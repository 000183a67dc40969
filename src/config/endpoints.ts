/**
 * Addresses as `host:port` or `[v6]:port` (RFC 3986 §3.2.2 brackets for IPv6 literals).
 * Listen addresses must be IP literals: l4lb binds them and never resolves names at start-up.
 * Backend addresses may also be hostnames (RFC 1123 §2.1 syntax), resolved later by `run`.
 */
import { isIP, isIPv4 } from 'node:net';
import type { Endpoint } from './types.js';
import type { ParseResult } from './durations.js';

/** Which kinds of host an address may name. */
export type HostRule = 'ip' | 'ipv4' | 'ip-or-hostname';

export interface EndpointRule {
  host: HostRule;
  /** Smallest port accepted: 0 lets a listener take an ephemeral port (useful in tests). */
  minPort: 0 | 1;
}

const HOSTNAME_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, at most 253 characters. */
export function isHostname(text: string): boolean {
  if (text.length === 0 || text.length > 253) return false;
  const labels = (text.endsWith('.') ? text.slice(0, -1) : text).split('.');
  if (!labels.every((label) => HOSTNAME_LABEL.test(label))) return false;
  // An all-numeric last label is a mistyped IPv4 address, not a name (RFC 3696 §2).
  const last = labels.at(-1); // split returns at least one label
  return last !== undefined && !/^\d+$/.test(last);
}

function splitHostPort(text: string): ParseResult<{ host: string; portText: string | undefined }> {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return { ok: false, error: `"${text}": "[" without a closing "]"` };
    const host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest === '') return { ok: true, value: { host, portText: undefined } };
    if (!rest.startsWith(':')) return { ok: false, error: `"${text}": expected ":PORT" after "]", got "${rest}"` };
    if (isIP(host) !== 6) return { ok: false, error: `"${text}": brackets are for IPv6 addresses only, "${host}" is not one` };
    return { ok: true, value: { host, portText: rest.slice(1) } };
  }
  const colons = text.split(':').length - 1;
  if (colons > 1) {
    const last = text.lastIndexOf(':');
    const host = text.slice(0, last);
    const port = text.slice(last + 1);
    if (isIP(host) === 6 && /^\d+$/.test(port)) {
      return { ok: false, error: `"${text}": write an IPv6 address in brackets, e.g. "[${host}]:${port}"` };
    }
    if (isIP(text) === 6) return { ok: true, value: { host: text, portText: undefined } };
    return { ok: false, error: `expected HOST:PORT, got "${text}"` };
  }
  if (colons === 0) return { ok: true, value: { host: text, portText: undefined } };
  const colon = text.indexOf(':');
  return { ok: true, value: { host: text.slice(0, colon), portText: text.slice(colon + 1) } };
}

/** An address whose port may be left out (a DSR backend takes the VIP's port). */
export interface PartialEndpoint {
  host: string;
  port: number | undefined;
}

/**
 * Parses `HOST:PORT` under `rule`.
 * Post: ok ⇒ host is an IP literal (unbracketed) or a host name as the rule allows, and port is an
 * integer in [rule.minPort, 65535]; otherwise `error` names what was expected and what was found.
 */
export function parseEndpoint(text: string, rule: EndpointRule): ParseResult<Endpoint> {
  const parsed = parseAddress(text, rule);
  if (!parsed.ok) return parsed;
  const { host, port } = parsed.value;
  if (port === undefined) {
    const example = isIP(host) === 6 ? `[${host}]:PORT` : `${host}:PORT`;
    return { ok: false, error: `"${text}": the port is missing (expected ${example})` };
  }
  return { ok: true, value: { host, port } };
}

/** Parses `HOST` or `HOST:PORT` under `rule`; the port is undefined when left out. */
export function parseAddress(text: string, rule: EndpointRule): ParseResult<PartialEndpoint> {
  const split = splitHostPort(text.trim());
  if (!split.ok) return split;
  const { host, portText } = split.value;
  if (host === '') return { ok: false, error: `"${text}": the host is missing (expected HOST:PORT)` };

  const family = isIP(host);
  switch (rule.host) {
    case 'ipv4':
      if (!isIPv4(host)) {
        const found = family === 6 ? `the IPv6 address "${host}"` : isHostname(host) ? `the host name "${host}"` : `"${host}"`;
        return { ok: false, error: `expected an IPv4 address, got ${found}` };
      }
      break;
    case 'ip':
      if (family === 0) {
        const found = isHostname(host) ? `the host name "${host}"` : `"${host}"`;
        return { ok: false, error: `expected an IP address (v4 or v6), got ${found}: listen addresses are not resolved` };
      }
      break;
    case 'ip-or-hostname':
      if (family === 0 && !isHostname(host)) {
        return { ok: false, error: `"${host}" is neither an IP address nor a valid host name` };
      }
      break;
    default: {
      const never: never = rule.host;
      throw new Error(`unknown host rule ${String(never)}`);
    }
  }

  if (portText === undefined) return { ok: true, value: { host, port: undefined } };
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535 || Number(portText) < rule.minPort) {
    return { ok: false, error: `port must be an integer ${rule.minPort}–65535, got "${portText}"` };
  }
  return { ok: true, value: { host, port: Number(portText) } };
}

/** Formats an endpoint back to the notation it is written in: `[::1]:80`, `10.0.0.1:80`. */
export function formatEndpoint(endpoint: Endpoint): string {
  return isIP(endpoint.host) === 6 ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

/** True when binding both endpoints at once would fail: same port and the same or a wildcard address. */
export function endpointsOverlap(a: Endpoint, b: Endpoint): boolean {
  if (a.port !== b.port || a.port === 0) return false;
  if (a.host === b.host) return true;
  const wildcard = (host: string): boolean => host === '0.0.0.0' || host === '::';
  // `::` is dual-stack on Linux by default, so it also takes the IPv4 port.
  if (a.host === '::' || b.host === '::') return true;
  return (wildcard(a.host) && isIPv4(b.host)) || (wildcard(b.host) && isIPv4(a.host));
}
