/**
 * The human-readable v1 header (PROXY protocol spec §2.1), decoded from a complete line:
 *   "PROXY" SP ( "TCP4" | "TCP6" ) SP src SP dst SP sport SP dport CRLF
 *   "PROXY" SP "UNKNOWN" [ SP anything-but-CRLF ] CRLF
 * Exactly one space between fields; IPv4 as four decimals without leading zeroes; IPv6 in RFC 4291
 * text; ports 0–65535 in decimal without leading zeroes; address family as the protocol says.
 */
import { formatIPv4, formatIPv6, parseIPv4Into, parseIPv6Into } from '../rules/index.js';
import { ProxyProtocolError } from './errors.js';
import type { ProxyEndpoint, ProxyHeaderV1 } from './types.js';

const SCRATCH = new Uint8Array(16);

function malformed(offset: number, what: string): ProxyProtocolError {
  return new ProxyProtocolError('LB_ERR_PROXY_MALFORMED', offset, 1, what);
}

/** The port text[start, end) as a number, or -1 unless 0–65535 without leading zeroes. */
function parsePort(text: string, start: number, end: number): number {
  const digits = end - start;
  if (digits < 1 || digits > 5) return -1;
  if (digits > 1 && text.charCodeAt(start) === 0x30) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x30 || code > 0x39) return -1;
    value = value * 10 + (code - 0x30);
  }
  return value <= 65535 ? value : -1;
}

const FIELD_NAMES = ['source address', 'destination address', 'source port', 'destination port'];

/**
 * Decodes line[0, length), which must start with "PROXY " and end with CRLF (the incremental parser
 * guarantees both and that no other CR or LF occurs). Returns the header or the first fault found.
 */
export function decodeV1(line: Uint8Array, length: number): ProxyHeaderV1 | ProxyProtocolError {
  const text = Buffer.from(line.buffer, line.byteOffset, length - 2).toString('latin1');
  const protocolStart = 6;
  let protocolEnd = protocolStart;
  while (protocolEnd < text.length && text.charCodeAt(protocolEnd) !== 0x20) protocolEnd++;
  const protocol = text.slice(protocolStart, protocolEnd);
  if (protocol === 'UNKNOWN') return { version: 1, protocol: 'UNKNOWN' };
  if (protocol !== 'TCP4' && protocol !== 'TCP6') {
    return malformed(protocolStart, `protocol must be TCP4, TCP6 or UNKNOWN, got ${JSON.stringify(protocol.slice(0, 16))}`);
  }
  if (protocolEnd === text.length) return malformed(protocolEnd, 'line ends after the protocol');
  // Four fields, each checked as it is split off, so the offset is that of the first bad field.
  const addresses: string[] = [];
  const ports: number[] = [];
  let fieldStart = protocolEnd + 1;
  for (let field = 0; field < 4; field++) {
    let fieldEnd = fieldStart;
    while (fieldEnd < text.length && text.charCodeAt(fieldEnd) !== 0x20) fieldEnd++;
    const name = FIELD_NAMES[field];
    if (fieldEnd === fieldStart) return malformed(fieldStart, `${name} is empty (fields are separated by exactly one space)`);
    if (field < 2) {
      const ok = protocol === 'TCP4'
        ? parseIPv4Into(text, fieldStart, fieldEnd, SCRATCH, 0)
        : parseIPv6Into(text, fieldStart, fieldEnd, SCRATCH, 0);
      if (!ok) {
        const expected = protocol === 'TCP4' ? 'a dotted-quad IPv4 address without leading zeroes' : 'an IPv6 address';
        return malformed(fieldStart, `${name} is not ${expected}`);
      }
      addresses.push(protocol === 'TCP4' ? formatIPv4(SCRATCH, 0) : formatIPv6(SCRATCH, 0));
    } else {
      const port = parsePort(text, fieldStart, fieldEnd);
      if (port < 0) return malformed(fieldStart, `${name} must be 0–65535 in decimal without leading zeroes`);
      ports.push(port);
    }
    if (field < 3) {
      if (fieldEnd === text.length) return malformed(fieldEnd, `line ends before the ${FIELD_NAMES[field + 1]}`);
      fieldStart = fieldEnd + 1;
    } else if (fieldEnd !== text.length) {
      return malformed(fieldEnd, 'unexpected data after the destination port');
    }
  }
  // The loop returns a fault unless it split off all four fields, so all four are here.
  const [sourceAddress, destinationAddress] = addresses;
  const [sourcePort, destinationPort] = ports;
  if (sourceAddress === undefined || destinationAddress === undefined || sourcePort === undefined || destinationPort === undefined) {
    return malformed(protocolEnd, 'fewer than the four fields after the protocol');
  }
  const source: ProxyEndpoint = { address: sourceAddress, port: sourcePort };
  const destination: ProxyEndpoint = { address: destinationAddress, port: destinationPort };
  return { version: 1, protocol, source, destination };
}
