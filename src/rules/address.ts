/**
 * Strict IP address text <-> bytes, shared by the CIDR rules and the PROXY protocol codec.
 *
 * IPv4 is the dotted quad of RFC 791 with no leading zeroes (the PROXY protocol spec, §2.1, forbids
 * them "to avoid any possible confusion with octal numbers"; CIDR rules follow the same rule).
 * IPv6 is the text form of RFC 4291 §2.2 (1–4 hex digits per group, at most one "::", an optional
 * dotted-quad tail), without zone index. Output is the canonical form of RFC 5952 §4 (lowercase,
 * longest run of two or more zero groups compressed, the first on a tie), with the IPv4-mapped range
 * ::ffff:0:0/96 written with a dotted tail (§5), as Node and inet_ntop report such clients.
 */

import { LbError } from '../errors.js';

/** Address family as a number, the way Node's `net.isIP` reports it. */
export type IpFamily = 4 | 6;

export interface ParsedAddress {
  readonly family: IpFamily;
  /** 4 or 16 bytes, network order. */
  readonly bytes: Uint8Array;
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  return -1;
}

/**
 * Writes the 4 bytes of the dotted quad text[start, end) at out[offset]. Returns false (out partly
 * written) unless it is exactly four decimal numbers 0–255 without leading zeroes. No allocation.
 */
export function parseIPv4Into(text: string, start: number, end: number, out: Uint8Array, offset: number): boolean {
  let part = 0;
  let i = start;
  while (part < 4) {
    const first = i;
    let value = 0;
    while (i < end && isDigit(text.charCodeAt(i))) {
      value = value * 10 + (text.charCodeAt(i) - 0x30);
      i++;
      if (i - first > 3) return false;
    }
    const digits = i - first;
    if (digits === 0 || value > 255 || (digits > 1 && text.charCodeAt(first) === 0x30)) return false;
    out[offset + part] = value;
    part++;
    if (part < 4) {
      if (i >= end || text.charCodeAt(i) !== 0x2e) return false;
      i++;
    }
  }
  return i === end;
}

/**
 * Writes the 16 bytes of the IPv6 text[start, end) at out[offset]. Returns false unless it is a
 * valid RFC 4291 text form of exactly 128 bits (no zone index). No allocation.
 */
export function parseIPv6Into(text: string, start: number, end: number, out: Uint8Array, offset: number): boolean {
  if (end - start < 2) return false;
  let groups = 0; // 16-bit groups written so far
  let gapAt = -1; // group index where "::" stands
  let i = start;
  if (text.charCodeAt(i) === 0x3a) {
    if (text.charCodeAt(i + 1) !== 0x3a) return false;
    gapAt = 0;
    i += 2;
    if (i === end) {
      out.fill(0, offset, offset + 16);
      return true;
    }
  }
  for (;;) {
    if (groups >= 8) return false;
    const first = i;
    let value = 0;
    while (i < end) {
      const digit = hexValue(text.charCodeAt(i));
      if (digit < 0) break;
      value = value * 16 + digit;
      i++;
    }
    const digits = i - first;
    if (i < end && text.charCodeAt(i) === 0x2e) {
      // A dotted-quad tail: the last 32 bits.
      if (groups > 6 || !parseIPv4Into(text, first, end, out, offset + groups * 2)) return false;
      groups += 2;
      i = end;
      break;
    }
    if (digits === 0 || digits > 4) return false;
    out[offset + groups * 2] = value >> 8;
    out[offset + groups * 2 + 1] = value & 0xff;
    groups++;
    if (i === end) break;
    if (text.charCodeAt(i) !== 0x3a) return false;
    i++;
    if (i < end && text.charCodeAt(i) === 0x3a) {
      if (gapAt >= 0) return false;
      gapAt = groups;
      i++;
      if (i === end) break;
    } else if (i === end) {
      return false; // a single trailing ':'
    }
  }
  if (gapAt < 0) return groups === 8;
  if (groups > 7) return false;
  // Move the groups after the gap to the end and zero the gap.
  const tailBytes = (groups - gapAt) * 2;
  const gapBytes = 16 - groups * 2;
  out.copyWithin(offset + gapAt * 2 + gapBytes, offset + gapAt * 2, offset + gapAt * 2 + tailBytes);
  out.fill(0, offset + gapAt * 2, offset + gapAt * 2 + gapBytes);
  return true;
}

/** The bytes of an IPv4 or IPv6 address text, or undefined if it is neither (strictly). */
export function parseAddress(text: string): ParsedAddress | undefined {
  const v4 = new Uint8Array(4);
  if (parseIPv4Into(text, 0, text.length, v4, 0)) return { family: 4, bytes: v4 };
  const v6 = new Uint8Array(16);
  if (parseIPv6Into(text, 0, text.length, v6, 0)) return { family: 6, bytes: v6 };
  return undefined;
}

/** True if the 16 bytes at offset are an IPv4-mapped IPv6 address (::ffff:0:0/96). */
export function isMappedIPv4(bytes: Uint8Array, offset = 0): boolean {
  for (let i = 0; i < 10; i++) if (bytes[offset + i] !== 0) return false;
  return bytes[offset + 10] === 0xff && bytes[offset + 11] === 0xff;
}

/** Throws LB_ERR_INVALID_ARGUMENT unless bytes[offset, offset + count) is inside `bytes`. */
function checkSpan(bytes: Uint8Array, offset: number, count: number): void {
  if (!(offset >= 0 && offset + count <= bytes.length)) {
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `an address needs ${count} bytes at ${offset}, got a ${bytes.length}-byte array`);
  }
}

/** Dotted-quad text of the 4 bytes at offset. Throws LB_ERR_INVALID_ARGUMENT if they are not all there. */
export function formatIPv4(bytes: Uint8Array, offset = 0): string {
  checkSpan(bytes, offset, 4);
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/** RFC 5952 canonical text of the 16 bytes at offset. Throws LB_ERR_INVALID_ARGUMENT if they are not all there. */
export function formatIPv6(bytes: Uint8Array, offset = 0): string {
  checkSpan(bytes, offset, 16);
  if (isMappedIPv4(bytes, offset)) return `::ffff:${formatIPv4(bytes, offset + 12)}`;
  let bestStart = -1;
  let bestLength = 0;
  for (let g = 0; g < 8; ) {
    if (bytes[offset + g * 2] === 0 && bytes[offset + g * 2 + 1] === 0) {
      let run = 1;
      while (g + run < 8 && bytes[offset + (g + run) * 2] === 0 && bytes[offset + (g + run) * 2 + 1] === 0) run++;
      if (run > bestLength) {
        bestStart = g;
        bestLength = run;
      }
      g += run;
    } else {
      g++;
    }
  }
  if (bestLength < 2) bestStart = -1;
  let text = '';
  for (let g = 0; g < 8; g++) {
    if (g === bestStart) {
      text += '::';
      g += bestLength - 1;
      continue;
    }
    if (text.length > 0 && !text.endsWith(':')) text += ':';
    // g < 8, so offset + 2g + 1 < offset + 16 ≤ bytes.length (checked on entry).
    text += ((bytes[offset + g * 2]! << 8) | bytes[offset + g * 2 + 1]!).toString(16);
  }
  return text;
}

/** Canonical text of 4 or 16 address bytes. */
export function formatAddress(bytes: Uint8Array): string {
  return bytes.length === 4 ? formatIPv4(bytes) : formatIPv6(bytes);
}
