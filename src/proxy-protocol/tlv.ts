/**
 * v2 TLV extensions (PROXY protocol spec §2.2 "struct pp2_tlv", §2.2.1–2.2.7): each is a type byte,
 * a 16-bit big-endian length, and that many value bytes; they fill the header exactly after the
 * address block. Unknown types are kept opaque; the registered ones are checked and decoded.
 * Rules kept here beyond bounds: a registered type other than NOOP appears at most once (two
 * AUTHORITY values would let two layers disagree on the client); UNIQUE_ID is at most 128 bytes;
 * CRC32C is 4 bytes and, when verification is on, must match; string values decode strictly.
 */
import { readUint16, readUint32 } from './bytes.js';
import { crc32c } from './crc32c.js';
import { ProxyProtocolError } from './errors.js';
import {
  PP2_SUBTYPE_SSL_CIPHER,
  PP2_SUBTYPE_SSL_CN,
  PP2_SUBTYPE_SSL_KEY_ALG,
  PP2_SUBTYPE_SSL_SIG_ALG,
  PP2_SUBTYPE_SSL_VERSION,
  PP2_TYPE_ALPN,
  PP2_TYPE_AUTHORITY,
  PP2_TYPE_CRC32C,
  PP2_TYPE_NETNS,
  PP2_TYPE_SSL,
  PP2_TYPE_UNIQUE_ID,
  UNIQUE_ID_MAX_LENGTH,
  type ProxyExtensions,
  type ProxySslInfo,
  type ProxyTlv,
} from './types.js';

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function malformed(offset: number, what: string): ProxyProtocolError {
  return new ProxyProtocolError('LB_ERR_PROXY_MALFORMED', offset, 2, what);
}

function hex(value: number, digits = 2): string {
  return `0x${value.toString(16).padStart(digits, '0')}`;
}

function utf8(value: Uint8Array): string | undefined {
  try {
    return UTF8.decode(value);
  } catch {
    return undefined;
  }
}

function ascii(value: Uint8Array): string | undefined {
  for (const byte of value) if (byte > 0x7f) return undefined;
  return String.fromCharCode.apply(null, Array.from(value));
}

/** A TLV and the offset of its value in the bytes it was split from. */
interface PlacedTlv {
  readonly tlv: ProxyTlv;
  readonly at: number;
}

/** Splits bytes[start, end) into TLVs, or returns where one overruns. Values are copies. Pre: end ≤ bytes.length. */
function splitTlvs(bytes: Uint8Array, start: number, end: number, what: string, base: number): PlacedTlv[] | ProxyProtocolError {
  const placed: PlacedTlv[] = [];
  let pos = start;
  while (pos < end) {
    const type = bytes[pos];
    const length = readUint16(bytes, pos + 1);
    if (end - pos < 3 || type === undefined || length === undefined) {
      return malformed(base + pos, `${end - pos} byte(s) left at the end of the ${what}, too few for a TLV (3 + value)`);
    }
    if (pos + 3 + length > end) {
      return malformed(base + pos, `${what} type ${hex(type)} declares ${length} value bytes but only ${end - pos - 3} remain`);
    }
    placed.push({ tlv: { type, value: bytes.slice(pos + 3, pos + 3 + length) }, at: pos + 3 });
    pos += 3 + length;
  }
  return placed;
}

function decodeSsl(value: Uint8Array, valueOffset: number): ProxySslInfo | ProxyProtocolError {
  const client = value[0];
  const verify = readUint32(value, 1);
  if (client === undefined || verify === undefined) {
    return malformed(valueOffset, `SSL TLV value is ${value.length} bytes, needs at least 5 (client, verify)`);
  }
  const placed = splitTlvs(value, 5, value.length, 'SSL sub-TLV', valueOffset);
  if (placed instanceof ProxyProtocolError) return placed;
  const info: { -readonly [K in keyof ProxySslInfo]: ProxySslInfo[K] } = {
    client,
    verify,
    subTlvs: placed.map(({ tlv }) => tlv),
  };
  const seen = new Set<number>();
  for (const { tlv, at: subAt } of placed) {
    const { type, value: sub } = tlv;
    const at = valueOffset + subAt;
    let text: string | undefined;
    switch (type) {
      case PP2_SUBTYPE_SSL_VERSION:
      case PP2_SUBTYPE_SSL_CIPHER:
      case PP2_SUBTYPE_SSL_SIG_ALG:
      case PP2_SUBTYPE_SSL_KEY_ALG:
        text = ascii(sub);
        if (text === undefined) return malformed(at, `SSL sub-TLV ${hex(type)} is not US-ASCII`);
        break;
      case PP2_SUBTYPE_SSL_CN:
        text = utf8(sub);
        if (text === undefined) return malformed(at, 'SSL sub-TLV CN is not valid UTF-8');
        break;
      default:
        continue;
    }
    if (seen.has(type)) return malformed(at - 3, `duplicate SSL sub-TLV ${hex(type)}`);
    seen.add(type);
    if (type === PP2_SUBTYPE_SSL_VERSION) info.version = text;
    else if (type === PP2_SUBTYPE_SSL_CN) info.commonName = text;
    else if (type === PP2_SUBTYPE_SSL_CIPHER) info.cipher = text;
    else if (type === PP2_SUBTYPE_SSL_SIG_ALG) info.signatureAlgorithm = text;
    else info.keyAlgorithm = text;
  }
  return info;
}

export interface DecodedTlvs {
  readonly tlvs: ProxyTlv[];
  readonly extensions: ProxyExtensions;
}

/**
 * Decodes the TLVs in header[start, end), where header[0, end) is the whole v2 header (needed for
 * the CRC32C, computed over all of it with the checksum field taken as zero). Cost O(end - start),
 * plus O(end) once if a CRC32C TLV is present and verified.
 */
export function decodeTlvs(header: Uint8Array, start: number, end: number, verifyCrc32c: boolean): DecodedTlvs | ProxyProtocolError {
  const placed = splitTlvs(header, start, end, 'TLV', 0);
  if (placed instanceof ProxyProtocolError) return placed;
  const extensions: { -readonly [K in keyof ProxyExtensions]: ProxyExtensions[K] } = {};
  const seen = new Set<number>();
  for (const { tlv, at } of placed) {
    const { type, value } = tlv;
    const registered = type === PP2_TYPE_ALPN || type === PP2_TYPE_AUTHORITY || type === PP2_TYPE_CRC32C ||
      type === PP2_TYPE_UNIQUE_ID || type === PP2_TYPE_SSL || type === PP2_TYPE_NETNS;
    if (!registered) continue;
    if (seen.has(type)) return malformed(at - 3, `duplicate TLV type ${hex(type)}`);
    seen.add(type);
    switch (type) {
      case PP2_TYPE_ALPN:
        extensions.alpn = value;
        break;
      case PP2_TYPE_AUTHORITY: {
        const text = utf8(value);
        if (text === undefined) return malformed(at, 'AUTHORITY TLV is not valid UTF-8');
        extensions.authority = text;
        break;
      }
      case PP2_TYPE_CRC32C: {
        const received = value.length === 4 ? readUint32(value, 0) : undefined;
        if (received === undefined) return malformed(at - 3, `CRC32C TLV value must be 4 bytes, got ${value.length}`);
        if (verifyCrc32c) {
          const computed = crc32c(header, 0, end, at);
          if (computed !== received) {
            return malformed(at, `CRC32C mismatch: header says ${hex(received, 8)}, computed ${hex(computed, 8)}`);
          }
        }
        extensions.crc32c = received;
        break;
      }
      case PP2_TYPE_UNIQUE_ID:
        if (value.length > UNIQUE_ID_MAX_LENGTH) {
          return malformed(at - 3, `UNIQUE_ID TLV is ${value.length} bytes, at most ${UNIQUE_ID_MAX_LENGTH} allowed`);
        }
        extensions.uniqueId = value;
        break;
      case PP2_TYPE_SSL: {
        const ssl = decodeSsl(value, at);
        if (ssl instanceof ProxyProtocolError) return ssl;
        extensions.ssl = ssl;
        break;
      }
      case PP2_TYPE_NETNS: {
        const text = ascii(value);
        if (text === undefined) return malformed(at, 'NETNS TLV is not US-ASCII');
        extensions.netns = text;
        break;
      }
    }
  }
  return { tlvs: placed.map(({ tlv }) => tlv), extensions };
}
