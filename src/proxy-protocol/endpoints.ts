/**
 * The PROXY protocol seen from a balancer's connection: which header to send for an accepted
 * connection (`proxyProtocol.send`), and which endpoints a received header stands for
 * (`proxyProtocol.accept`). Spec §2.1 (UNKNOWN), §2.2 (LOCAL, UNSPEC): in those cases, and for
 * families other than TCP, the receiver uses the real connection's endpoints.
 */
import { formatIPv4, formatIPv6, isMappedIPv4, parseIPv4Into, parseIPv6Into } from '../rules/index.js';
import { encodeV1, encodeV2 } from './encode.js';
import type { ProxyEndpoint, ProxyHeader, ProxyHeaderV1, ProxyHeaderV2Input, ProxyTlv } from './types.js';

export type ProxyVersionName = 'v1' | 'v2';

/** The two ends of an accepted connection, as Node reports them (remote = source). */
export interface ConnectionEndpoints {
  readonly source: ProxyEndpoint;
  readonly destination: ProxyEndpoint;
}

interface Resolved {
  readonly ipv4: boolean;
  readonly source: ProxyEndpoint;
  readonly destination: ProxyEndpoint;
}

/**
 * Picks the family for a connection: IPv4 if both ends are IPv4 or IPv4-mapped (a dual-stack
 * listener reports IPv4 clients as ::ffff:a.b.c.d), else IPv6 with any IPv4 end mapped. Undefined if
 * an address does not parse (zone indexes such as %eth0 are dropped first) or a port is out of range.
 */
function resolve(connection: ConnectionEndpoints): Resolved | undefined {
  const source = endpointBytes(connection.source);
  const destination = endpointBytes(connection.destination);
  if (source === undefined || destination === undefined) return undefined;
  const ipv4 = source.kind === 4 && destination.kind === 4;
  const text = (b: Uint8Array): string => (ipv4 ? formatIPv4(b, 12) : formatIPv6(b));
  return {
    ipv4,
    source: { address: text(source.bytes), port: connection.source.port },
    destination: { address: text(destination.bytes), port: connection.destination.port },
  };
}

/** One end as 16 bytes (IPv4 mapped) and its kind, or undefined if its address or port is unusable. */
function endpointBytes({ address, port }: ProxyEndpoint): { readonly bytes: Uint8Array; readonly kind: 4 | 6 } | undefined {
  if (!(Number.isInteger(port) && port >= 0 && port <= 0xffff)) return undefined;
  const zone = address.indexOf('%');
  const text = zone >= 0 ? address.slice(0, zone) : address;
  const bytes = new Uint8Array(16);
  if (parseIPv4Into(text, 0, text.length, bytes, 12)) {
    bytes.fill(0, 0, 10).fill(0xff, 10, 12);
    return { bytes, kind: 4 };
  }
  if (parseIPv6Into(text, 0, text.length, bytes, 0)) return { bytes, kind: isMappedIPv4(bytes) ? 4 : 6 };
  return undefined;
}

/** The v1 header to send for a connection; UNKNOWN if the endpoints are unknown or unusable. */
export function v1HeaderFor(connection: ConnectionEndpoints | undefined): ProxyHeaderV1 {
  const resolved = connection && resolve(connection);
  if (!resolved) return { version: 1, protocol: 'UNKNOWN' };
  return { version: 1, protocol: resolved.ipv4 ? 'TCP4' : 'TCP6', source: resolved.source, destination: resolved.destination };
}

/** The v2 header to send for a connection; LOCAL with no addresses if the endpoints are unknown. */
export function v2HeaderFor(connection: ConnectionEndpoints | undefined, tlvs: readonly ProxyTlv[] = []): ProxyHeaderV2Input {
  const resolved = connection && resolve(connection);
  if (!resolved) return { command: 'local', addresses: { family: 'unspec' }, tlvs };
  return {
    command: 'proxy',
    addresses: { family: resolved.ipv4 ? 'tcp4' : 'tcp6', source: resolved.source, destination: resolved.destination },
    tlvs,
  };
}

/** The header bytes to send first on a backend connection made for `connection`. */
export function encodeForConnection(version: ProxyVersionName, connection: ConnectionEndpoints | undefined): Uint8Array {
  switch (version) {
    case 'v1':
      return encodeV1(v1HeaderFor(connection));
    case 'v2':
      return encodeV2(v2HeaderFor(connection));
  }
}

/**
 * The client and destination a received header stands for, or undefined when the real connection's
 * endpoints are to be used: v1 UNKNOWN, v2 LOCAL, v2 UNSPEC, and v2 UDP or UNIX families (this is a
 * TCP balancer; spec §2.2 lets a receiver fall back to the real endpoints for what it does not use).
 */
export function proxiedEndpoints(header: ProxyHeader): ConnectionEndpoints | undefined {
  if (header.version === 1) {
    return header.protocol === 'UNKNOWN' ? undefined : { source: header.source, destination: header.destination };
  }
  if (header.command === 'local') return undefined;
  const addresses = header.addresses;
  switch (addresses.family) {
    case 'tcp4':
    case 'tcp6':
      return { source: addresses.source, destination: addresses.destination };
    case 'unspec':
    case 'udp4':
    case 'udp6':
    case 'unix-stream':
    case 'unix-dgram':
      return undefined;
  }
}
