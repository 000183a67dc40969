/**
 * CRC32c (Castagnoli, reflected polynomial 0x82F63B78), as RFC 4960 Appendix B computes it; the
 * checksum of PP2_TYPE_CRC32C (PROXY protocol spec §2.2.3). Table-driven, one table built at load.
 */

const TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  TABLE[n] = c >>> 0;
}

/**
 * CRC32c of bytes[start, end), treating the 4 bytes at `zeroAt` (if given) as zeroes, which is how
 * both sides compute the checksum over a header that contains its own checksum field. O(end - start).
 * Pre: 0 ≤ start, end ≤ bytes.length.
 */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length, zeroAt = -1): number {
  let crc = 0xffffffff;
  // start ≤ i < end ≤ bytes.length (pre), so bytes[i] is defined; the table index is masked to
  // 0..255 < TABLE.length = 256.
  for (let i = start; i < end; i++) {
    const byte = i >= zeroAt && i < zeroAt + 4 && zeroAt >= 0 ? 0 : bytes[i]!;
    crc = TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}
