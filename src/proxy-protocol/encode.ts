/**
 * PROXY protocol encoders (spec §2.1 for v1, §2.2 for v2, §2.2.3 for the CRC32C). Encoders validate their input and
 * throw LbError LB_ERR_INVALID_ARGUMENT on a bad one (a caller bug, not wire input). Output of
 * `encodeV2` on a header the parser returned is byte-for-byte what was parsed; so is `encodeV1`'s
 * when the addresses were sent in canonical form (the parser canonicalises IPv6 text).
 */
import { LbError } from '../errors.js';
import { formatIPv4, formatIPv6, parseIPv4Into, parseIPv6Into } from '../rules/index.js';
import { crc32c } from './crc32c.js';
import {
  PP2_TYPE_CRC32C,
  V2_FIXED_LENGTH,
  V2_SIGNATURE,
  addressBlockLength,
  familyByte,
  type ProxyHeaderV1,
  type ProxyHeaderV2Input,
  type ProxyTlv,
} from './types.js';

function invalid(what: string): LbError {
  return new LbError('LB_ERR_INVALID_ARGUMENT', what);
}

function checkPort(port: number, role: string): void {
  if (!(Number.isInteger(port) && port >= 0 && port <= 0xffff)) throw invalid(`${role} port must be an integer 0–65535, got ${port}`);
}

function ipv4Bytes(address: string, role: string, out: Uint8Array, offset: number): void {
  if (!parseIPv4Into(address, 0, address.length, out, offset)) throw invalid(`${role} address "${address}" is not IPv4`);
}

function ipv6Bytes(address: string, role: string, out: Uint8Array, offset: number): void {
  if (!parseIPv6Into(address, 0, address.length, out, offset)) throw invalid(`${role} address "${address}" is not IPv6`);
}

/** The v1 line, CRLF included, as bytes (ASCII). At most 107 bytes by construction. */
export function encodeV1(header: ProxyHeaderV1): Uint8Array {
  if (header.protocol === 'UNKNOWN') return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const scratch = new Uint8Array(16);
  const texts: string[] = [];
  for (const [role, endpoint] of [['source', header.source], ['destination', header.destination]] as const) {
    checkPort(endpoint.port, role);
    if (header.protocol === 'TCP4') {
      ipv4Bytes(endpoint.address, role, scratch, 0);
      texts.push(formatIPv4(scratch));
    } else {
      ipv6Bytes(endpoint.address, role, scratch, 0);
      texts.push(formatIPv6(scratch));
    }
  }
  return Buffer.from(`PROXY ${header.protocol} ${texts[0]} ${texts[1]} ${header.source.port} ${header.destination.port}\r\n`, 'latin1');
}

export interface EncodeV2Options {
  /** Append a PP2_TYPE_CRC32C TLV holding the checksum of the whole header (§2.2.3). */
  readonly crc32c?: boolean;
}

/** The binary v2 header. Throws LB_ERR_INVALID_ARGUMENT if it would not fit the 16-bit length. */
export function encodeV2(header: ProxyHeaderV2Input, options: EncodeV2Options = {}): Uint8Array {
  const tlvs: readonly ProxyTlv[] = header.tlvs ?? [];
  const addresses = header.addresses;
  const blockLength = addressBlockLength(addresses.family);
  let length = blockLength;
  for (const tlv of tlvs) {
    if (!(Number.isInteger(tlv.type) && tlv.type >= 0 && tlv.type <= 0xff)) throw invalid(`TLV type must be 0–255, got ${tlv.type}`);
    if (tlv.value.length > 0xffff) throw invalid(`TLV type ${tlv.type} value is ${tlv.value.length} bytes, at most 65535 fit`);
    if (options.crc32c && tlv.type === PP2_TYPE_CRC32C) throw invalid('tlvs already hold a CRC32C TLV and crc32c was asked for');
    length += 3 + tlv.value.length;
  }
  if (options.crc32c) length += 7;
  if (length > 0xffff) throw invalid(`v2 header would need length ${length}, at most 65535 fit`);

  const out = Buffer.alloc(V2_FIXED_LENGTH + length);
  out.set(V2_SIGNATURE, 0);
  out[12] = header.command === 'proxy' ? 0x21 : 0x20;
  out[13] = familyByte(addresses.family);
  out[14] = length >> 8;
  out[15] = length & 0xff;
  const at = V2_FIXED_LENGTH;
  switch (addresses.family) {
    case 'unspec':
      break;
    case 'tcp4':
    case 'udp4':
    case 'tcp6':
    case 'udp6': {
      const size = addresses.family === 'tcp4' || addresses.family === 'udp4' ? 4 : 16;
      const parse = size === 4 ? ipv4Bytes : ipv6Bytes;
      parse(addresses.source.address, 'source', out, at);
      parse(addresses.destination.address, 'destination', out, at + size);
      checkPort(addresses.source.port, 'source');
      checkPort(addresses.destination.port, 'destination');
      out.writeUInt16BE(addresses.source.port, at + 2 * size);
      out.writeUInt16BE(addresses.destination.port, at + 2 * size + 2);
      break;
    }
    case 'unix-stream':
    case 'unix-dgram':
      if (addresses.sourcePath.length > 108 || addresses.destinationPath.length > 108) throw invalid('unix paths are at most 108 bytes');
      out.set(addresses.sourcePath, at);
      out.set(addresses.destinationPath, at + 108);
      break;
  }
  let pos = at + blockLength;
  for (const tlv of tlvs) {
    out[pos] = tlv.type;
    out.writeUInt16BE(tlv.value.length, pos + 1);
    out.set(tlv.value, pos + 3);
    pos += 3 + tlv.value.length;
  }
  if (options.crc32c) {
    out[pos] = PP2_TYPE_CRC32C;
    out.writeUInt16BE(4, pos + 1);
    out.writeUInt32BE(crc32c(out, 0, out.length, pos + 3), pos + 3);
  }
  return out;
}
