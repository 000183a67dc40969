/**
 * Flow keys as bytes: what a client connection is hashed on. An address is its network-order
 * bytes (4 for IPv4, 16 for IPv6); with the port, two more bytes in network order. An IPv4-mapped
 * IPv6 address (::ffff:a.b.c.d, as a dual-stack listener reports IPv4 clients) is keyed as IPv4, so
 * a client keeps its backend whichever listener it came through.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { LbError } from '../errors.js';

function parseIPv4(text: string, out: Uint8Array, offset: number): void {
  const parts = text.split('.');
  for (let i = 0; i < 4; i++) out[offset + i] = Number(parts[i]);
}

function parseIPv6(text: string, out: Uint8Array): void {
  let head = text;
  let tail = '';
  const zone = head.indexOf('%');
  if (zone >= 0) head = head.slice(0, zone);
  const hextets: number[] = [];
  const dotted = head.lastIndexOf(':') >= 0 && head.includes('.') ? head.slice(head.lastIndexOf(':') + 1) : '';
  if (dotted) head = head.slice(0, head.length - dotted.length) + '0:0';
  const gap = head.indexOf('::');
  if (gap >= 0) {
    tail = head.slice(gap + 2);
    head = head.slice(0, gap);
  }
  const front = head ? head.split(':').map((h) => parseInt(h, 16)) : [];
  const back = tail ? tail.split(':').map((h) => parseInt(h, 16)) : [];
  hextets.push(...front);
  if (gap >= 0) for (let i = front.length + back.length; i < 8; i++) hextets.push(0);
  hextets.push(...back);
  // isIPv6 passed, so this holds; if this parser and node:net ever disagree, refuse the address
  // rather than key it on missing hextets.
  if (hextets.length !== 8) throw new LbError('LB_ERR_INVALID_ARGUMENT', `not an IP address: "${text}"`);
  for (let i = 0; i < 8; i++) {
    const hextet = hextets[i]!; // length 8, checked above
    out[i * 2] = hextet >> 8;
    out[i * 2 + 1] = hextet & 0xff;
  }
  if (dotted) parseIPv4(dotted, out, 12);
}

/** Network-order bytes of an IPv4 or IPv6 address; IPv4-mapped IPv6 comes back as 4 bytes. */
export function addressBytes(address: string): Uint8Array {
  if (isIPv4(address)) {
    const out = new Uint8Array(4);
    parseIPv4(address, out, 0);
    return out;
  }
  if (isIPv6(address)) {
    const out = new Uint8Array(16);
    parseIPv6(address, out);
    const mapped = out.slice(0, 10).every((b) => b === 0) && out[10] === 0xff && out[11] === 0xff;
    return mapped ? out.slice(12) : out;
  }
  throw new LbError('LB_ERR_INVALID_ARGUMENT', `not an IP address: "${address}"`);
}

/** The key of a client: its address bytes, followed by the port (2 bytes, network order) if given. */
export function flowKey(address: string, port?: number): Uint8Array {
  const ip = addressBytes(address);
  if (port === undefined) return ip;
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `not a port: ${port}`);
  }
  const out = new Uint8Array(ip.length + 2);
  out.set(ip, 0);
  out[ip.length] = port >> 8;
  out[ip.length + 1] = port & 0xff;
  return out;
}
