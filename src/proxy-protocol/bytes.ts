/**
 * Big-endian reads for the v2 decoders that say when the bytes are not there: each returns
 * undefined unless every byte it needs lies inside `bytes`, so a decoder turns a short buffer into
 * its own ProxyProtocolError instead of reading a missing byte as 0.
 */

/** bytes[at, at + 2) as an unsigned big-endian 16-bit integer, or undefined if not all there. */
export function readUint16(bytes: Uint8Array, at: number): number | undefined {
  const high = bytes[at];
  const low = bytes[at + 1];
  return high === undefined || low === undefined ? undefined : (high << 8) | low;
}

/** bytes[at, at + 4) as an unsigned big-endian 32-bit integer, or undefined if not all there. */
export function readUint32(bytes: Uint8Array, at: number): number | undefined {
  const high = readUint16(bytes, at);
  const low = readUint16(bytes, at + 2);
  return high === undefined || low === undefined ? undefined : high * 0x10000 + low;
}
