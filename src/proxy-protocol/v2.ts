/**
 * The binary v2 header (PROXY protocol spec §2.2): 12-byte signature, version/command byte,
 * family/transport byte, 16-bit big-endian length of what follows, the address block for the
 * family (12, 36, 216 or 0 bytes), then TLVs up to the end. The fixed 16 bytes are checked one byte
 * at a time by the incremental parser as they arrive (so garbage is refused early); this module
 * checks and decodes everything else once the whole header is in.
 */
import { formatIPv4, formatIPv6 } from '../rules/index.js';
import { readUint16 } from './bytes.js';
import { ProxyProtocolError } from './errors.js';
import { decodeTlvs } from './tlv.js';
import {
  V2_FIXED_LENGTH,
  V2_SIGNATURE,
  addressBlockLength,
  familyOfByte,
  type ProxyHeaderV2,
  type ProxyV2Addresses,
  type ProxyV2Family,
} from './types.js';

/** Highest value of the v2 length field the parser accepts by default (address block + TLVs). */
export const DEFAULT_MAX_V2_LENGTH = 2048;

function fault(code: 'LB_ERR_PROXY_MALFORMED' | 'LB_ERR_PROXY_UNSUPPORTED' | 'LB_ERR_PROXY_TOO_LONG', offset: number, what: string): ProxyProtocolError {
  return new ProxyProtocolError(code, offset, 2, what);
}

function unlistedFamily(byte: number | undefined): ProxyProtocolError {
  const shown = byte === undefined ? 'missing' : `0x${byte.toString(16).padStart(2, '0')}`;
  return fault('LB_ERR_PROXY_UNSUPPORTED', 13, `family/transport byte ${shown} is not one of 0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32`);
}

/**
 * Checks byte `index` (0–15) of a v2 header given bytes[0, index] (all earlier ones already passed).
 * For index 15 it also needs `maxLength`. Returns the fault, or undefined if the byte is fine.
 */
export function checkV2FixedByte(bytes: Uint8Array, index: number, maxLength: number): ProxyProtocolError | undefined {
  const byte = bytes[index];
  if (byte === undefined) return fault('LB_ERR_PROXY_MALFORMED', index, `byte ${index} of the fixed header is missing`);
  const expected = V2_SIGNATURE[index]; // defined exactly for the 12 signature bytes, index 0–11
  if (expected !== undefined) {
    if (byte === expected) return undefined;
    return fault('LB_ERR_PROXY_MALFORMED', index, `signature byte ${index} is 0x${byte.toString(16).padStart(2, '0')}, expected 0x${expected.toString(16).padStart(2, '0')}`);
  }
  if (index === 12) {
    if (byte >> 4 !== 2) return fault('LB_ERR_PROXY_UNSUPPORTED', 12, `version ${byte >> 4}, only 2 is defined`);
    if ((byte & 0x0f) > 1) return fault('LB_ERR_PROXY_UNSUPPORTED', 12, `command 0x${(byte & 0x0f).toString(16)}, only LOCAL (0x0) and PROXY (0x1) are defined`);
    return undefined;
  }
  if (index === 13) {
    return familyOfByte(byte) === undefined ? unlistedFamily(byte) : undefined;
  }
  if (index === 14) return undefined;
  const length = readUint16(bytes, 14);
  if (length === undefined) return fault('LB_ERR_PROXY_MALFORMED', 14, 'the length field is missing');
  if (length > maxLength) {
    return fault('LB_ERR_PROXY_TOO_LONG', 14, `length ${length} exceeds the limit of ${maxLength} bytes after the fixed 16`);
  }
  const family = familyOfByte(bytes[13]);
  if (family === undefined) return unlistedFamily(bytes[13]);
  const needed = addressBlockLength(family);
  if (length < needed) {
    return fault('LB_ERR_PROXY_MALFORMED', 14, `length ${length} is shorter than the ${needed}-byte address block of ${family}`);
  }
  return undefined;
}

/**
 * 16 + the length field of a v2 header whose first 16 bytes passed `checkV2FixedByte`; undefined
 * if bytes holds fewer than 16.
 */
export function v2TotalLength(bytes: Uint8Array): number | undefined {
  const length = readUint16(bytes, 14);
  return length === undefined ? undefined : V2_FIXED_LENGTH + length;
}

/**
 * The address block of `family` at bytes[16, 16 + addressBlockLength(family)), or undefined if
 * bytes ends inside it. The ports are its last bytes, so once they are there the addresses are too.
 */
function decodeAddresses(bytes: Uint8Array, family: ProxyV2Family): ProxyV2Addresses | undefined {
  const at = V2_FIXED_LENGTH;
  switch (family) {
    case 'unspec':
      return { family };
    case 'tcp4':
    case 'udp4': {
      const sourcePort = readUint16(bytes, at + 8);
      const destinationPort = readUint16(bytes, at + 10);
      if (sourcePort === undefined || destinationPort === undefined) return undefined;
      return {
        family,
        source: { address: formatIPv4(bytes, at), port: sourcePort },
        destination: { address: formatIPv4(bytes, at + 4), port: destinationPort },
      };
    }
    case 'tcp6':
    case 'udp6': {
      const sourcePort = readUint16(bytes, at + 32);
      const destinationPort = readUint16(bytes, at + 34);
      if (sourcePort === undefined || destinationPort === undefined) return undefined;
      return {
        family,
        source: { address: formatIPv6(bytes, at), port: sourcePort },
        destination: { address: formatIPv6(bytes, at + 16), port: destinationPort },
      };
    }
    case 'unix-stream':
    case 'unix-dgram':
      if (bytes.length < at + 216) return undefined;
      return { family, sourcePath: bytes.slice(at, at + 108), destinationPath: bytes.slice(at + 108, at + 216) };
  }
}

/**
 * Decodes a complete v2 header bytes[0, total), whose fixed 16 bytes passed `checkV2FixedByte` and
 * whose total is 16 + the length field. Returns the header or the first fault found.
 */
export function decodeV2(bytes: Uint8Array, total: number, verifyCrc32c: boolean): ProxyHeaderV2 | ProxyProtocolError {
  const versionCommand = bytes[12];
  if (versionCommand === undefined) return fault('LB_ERR_PROXY_MALFORMED', 12, 'the version/command byte is missing');
  const command = (versionCommand & 0x0f) === 1 ? 'proxy' : 'local';
  const family = familyOfByte(bytes[13]);
  if (family === undefined) return unlistedFamily(bytes[13]);
  const addresses = decodeAddresses(bytes, family);
  if (addresses === undefined) {
    return fault('LB_ERR_PROXY_MALFORMED', V2_FIXED_LENGTH, `the ${addressBlockLength(family)}-byte address block of ${family} is cut short`);
  }
  const decoded = decodeTlvs(bytes, V2_FIXED_LENGTH + addressBlockLength(family), total, verifyCrc32c);
  if (decoded instanceof ProxyProtocolError) return decoded;
  return { version: 2, command, addresses, tlvs: decoded.tlvs, extensions: decoded.extensions };
}
