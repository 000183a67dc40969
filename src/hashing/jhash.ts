/**
 * The Linux kernel's jhash (include/linux/jhash.h, Bob Jenkins' lookup3 as adapted by the kernel)
 * and nft's `jhash EXPR mod M seed S offset O` (net/netfilter/nft_hash.c, `nft_jhash_eval`):
 *
 *   slot = reciprocal_scale(jhash(registers, len, S), M) + O,  reciprocal_scale(h, M) = (h·M) >> 32
 *
 * nft loads each field of a concatenation into its own 32-bit register, zero-padded to 4 bytes
 * (nft_payload_eval clears the last register of a short load), and hashes `len` = the padded total.
 * So `ip saddr . tcp sport` is hashed as 8 bytes: the address, the port (network order), 0, 0; and
 * `ip saddr` alone as its 4 bytes. A flow key from keys.ts (address bytes [+ 2 port bytes]) padded
 * with zeros to a multiple of 4 is therefore exactly what the kernel hashes.
 *
 * Byte order: the kernel reads whole 12-byte blocks with `__get_unaligned_cpu32` (CPU order) and the
 * tail byte by byte as little-endian. Keys of at most 12 bytes (every IPv4 key) never reach the block
 * loop and hash alike on any CPU; longer keys (IPv6) are hashed as a little-endian CPU does (x86-64,
 * arm64), the machines the DSR director runs on.
 */
import type { SlotHash } from './maglev.js';
import type { HashKey } from './types.js';

/** JHASH_INITVAL of the kernel: an arbitrary value. */
const JHASH_INITVAL = 0xdeadbeef;

function rol32(word: number, shift: number): number {
  return ((word << shift) | (word >>> (32 - shift))) >>> 0;
}

/** Byte `index` of `key`, or 0 past its end (the zero padding of nft registers). Pre: index ≥ 0. */
function byteAt(key: Uint8Array, index: number): number {
  // The test is the bound: 0 ≤ index < key.length, so key[index] is defined.
  return index < key.length ? key[index]! : 0;
}

/** Little-endian 32-bit word at `index` of the padded key. */
function wordAt(key: Uint8Array, index: number): number {
  return (byteAt(key, index) | (byteAt(key, index + 1) << 8) | (byteAt(key, index + 2) << 16) | (byteAt(key, index + 3) << 24)) >>> 0;
}

/**
 * The kernel's `jhash(key, length, initval)` over the first `length` bytes of `key`, where bytes
 * past `key.length` count as zero. Pre: 0 ≤ length, initval a u32. Returns a u32.
 * Cost: O(length), no allocation.
 */
export function jhash(key: Uint8Array, length: number, initval: number): number {
  let a = (JHASH_INITVAL + length + initval) >>> 0;
  let b = a;
  let c = a;
  let offset = 0;
  let remaining = length;
  // All but the last block: __jhash_mix.
  while (remaining > 12) {
    a = (a + wordAt(key, offset)) >>> 0;
    b = (b + wordAt(key, offset + 4)) >>> 0;
    c = (c + wordAt(key, offset + 8)) >>> 0;
    a = (a - c) >>> 0; a = (a ^ rol32(c, 4)) >>> 0; c = (c + b) >>> 0;
    b = (b - a) >>> 0; b = (b ^ rol32(a, 6)) >>> 0; a = (a + c) >>> 0;
    c = (c - b) >>> 0; c = (c ^ rol32(b, 8)) >>> 0; b = (b + a) >>> 0;
    a = (a - c) >>> 0; a = (a ^ rol32(c, 16)) >>> 0; c = (c + b) >>> 0;
    b = (b - a) >>> 0; b = (b ^ rol32(a, 19)) >>> 0; a = (a + c) >>> 0;
    c = (c - b) >>> 0; c = (c ^ rol32(b, 4)) >>> 0; b = (b + a) >>> 0;
    remaining -= 12;
    offset += 12;
  }
  if (remaining === 0) return c; // the kernel's `case 0: break;` skips the final mix
  // The last block, 1..12 bytes, little-endian byte by byte (the switch's fall-through).
  const tail: [number, number, number] = [0, 0, 0];
  // i < remaining ≤ 12, so i >> 2 ≤ 2 indexes the three tail words.
  for (let i = 0; i < remaining; i++) {
    tail[i >> 2]! += byteAt(key, offset + i) * 2 ** (8 * (i & 3));
  }
  a = (a + tail[0]) >>> 0;
  b = (b + tail[1]) >>> 0;
  c = (c + tail[2]) >>> 0;
  // __jhash_final
  c = (c ^ b) >>> 0; c = (c - rol32(b, 14)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rol32(c, 11)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rol32(a, 25)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rol32(b, 16)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rol32(c, 4)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rol32(a, 14)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rol32(b, 24)) >>> 0;
  return c;
}

/**
 * The kernel's `reciprocal_scale(hash, range)` = (u32)(((u64)hash · range) >> 32): maps a u32 hash
 * onto [0, range) without a division. Computed in two 16-bit halves so every step is exact in a double.
 */
export function reciprocalScale(hash: number, range: number): number {
  const low = (hash & 0xffff) * range; // < 2^48
  const high = (hash >>> 16) * range + Math.floor(low / 65536); // < 2^49
  return Math.floor(high / 65536);
}

/** Length of `key` rounded up to whole 32-bit registers, as nft lays out a concatenation. */
export function registerLength(byteLength: number): number {
  return (byteLength + 3) & ~3;
}

const encoder = new TextEncoder();

/**
 * What `jhash KEY mod M seed S` computes in the kernel, for a flow key from keys.ts (`flowKey(address)`
 * ↔ `ip saddr`, `flowKey(address, port)` ↔ `ip saddr . tcp sport`). A string key is hashed as its
 * UTF-8 bytes, padded alike. Pre: seed a u32, M ≥ 2. Cost: one jhash, no allocation for byte keys.
 */
export function nftJhashSlot(key: HashKey, tableSize: number, seed: number): number {
  const bytes = typeof key === 'string' ? encoder.encode(key) : key;
  return reciprocalScale(jhash(bytes, registerLength(bytes.length), seed >>> 0), tableSize);
}

/** A SlotHash that picks the same Maglev slot as the DSR director's nft rule with this seed. */
export function jhashSlotHash(seed: number): SlotHash {
  const initval = seed >>> 0;
  return (key, tableSize) => nftJhashSlot(key, tableSize, initval);
}
