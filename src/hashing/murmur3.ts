/**
 * The key hash of maglev and rendezvous: MurmurHash3 x86_32 (Austin Appleby, public domain) over
 * the key's bytes, seed 0. This is a compatibility promise: changing it, its seed or the way keys
 * become bytes reshuffles every client, so it is pinned by known-answer vectors in the tests.
 *
 * Strings are hashed as their UTF-8 bytes, encoded into a reused scratch buffer: no allocation a
 * lookup. Cost: about one multiply-rotate round a 4 bytes, tens of nanoseconds for an address key.
 */
import type { HashKey } from './types.js';

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

let scratch = new Uint8Array(256);

/** UTF-8 encodes `text` into the shared scratch buffer; returns the byte length. */
function encodeScratch(text: string): number {
  if (text.length * 3 > scratch.length) scratch = new Uint8Array(text.length * 3);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i);
    if (code < 0x80) {
      scratch[n++] = code;
    } else if (code < 0x800) {
      scratch[n++] = 0xc0 | (code >> 6);
      scratch[n++] = 0x80 | (code & 0x3f);
    } else if (code >= 0xd800 && code < 0xdc00 && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      code = 0x10000 + ((code - 0xd800) << 10) + (text.charCodeAt(++i) - 0xdc00);
      scratch[n++] = 0xf0 | (code >> 18);
      scratch[n++] = 0x80 | ((code >> 12) & 0x3f);
      scratch[n++] = 0x80 | ((code >> 6) & 0x3f);
      scratch[n++] = 0x80 | (code & 0x3f);
    } else {
      // A lone surrogate becomes U+FFFD, as TextEncoder does.
      if (code >= 0xd800 && code < 0xe000) code = 0xfffd;
      scratch[n++] = 0xe0 | (code >> 12);
      scratch[n++] = 0x80 | ((code >> 6) & 0x3f);
      scratch[n++] = 0x80 | (code & 0x3f);
    }
  }
  return n;
}

/** Scrambles one 4-byte block `k` into the running hash `h` (murmur3's body round). */
function mixBlock(h: number, k: number): number {
  return (Math.imul(rotl(h ^ scramble(k), 13), 5) + 0xe6546b64) | 0;
}

/** murmur3's per-block scramble of `k`, also applied alone to the tail bytes. */
function scramble(k: number): number {
  return Math.imul(rotl(Math.imul(k, C1), 15), C2);
}

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/** MurmurHash3 x86_32 of `bytes[0..length)`; an unsigned 32-bit integer. Pre: length ≤ bytes.length. */
export function murmur3Bytes(bytes: Uint8Array, length: number, seed: number): number {
  let h = seed >>> 0;
  const blocks = length & ~3;
  // Every index read below is < length ≤ bytes.length (pre): i + 3 < blocks in the loop, and the
  // tail reads blocks + rest − 1 at most, so each bytes[…] is defined.
  for (let i = 0; i < blocks; i += 4) {
    h = mixBlock(h, bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
  }
  const rest = length & 3;
  if (rest > 0) {
    let k = 0;
    if (rest === 3) k ^= bytes[blocks + 2]! << 16;
    if (rest >= 2) k ^= bytes[blocks + 1]! << 8;
    k ^= bytes[blocks]!;
    h ^= scramble(k);
  }
  h ^= length;
  return fmix32(h);
}

/** Murmur3's finaliser: a bijection on 32-bit integers with full avalanche. */
export function fmix32(value: number): number {
  let h = value;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The documented key hash: murmur3_32(UTF-8 bytes of a string, or the raw bytes, seed). */
export function hashKey(key: HashKey, seed = 0): number {
  if (typeof key !== 'string') return murmur3Bytes(key, key.length, seed);
  const ascii = murmur3Ascii(key, seed);
  return ascii >= 0 ? ascii : murmur3Bytes(scratch, encodeScratch(key), seed);
}

/**
 * murmur3_32 of an ASCII string straight from its char codes (its UTF-8 bytes are the same codes),
 * skipping the encoding pass; −1 if the string has a non-ASCII character (the caller then encodes).
 */
function murmur3Ascii(text: string, seed: number): number {
  const length = text.length;
  let h = seed >>> 0;
  let any = 0;
  const blocks = length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    const c0 = text.charCodeAt(i);
    const c1 = text.charCodeAt(i + 1);
    const c2 = text.charCodeAt(i + 2);
    const c3 = text.charCodeAt(i + 3);
    any |= c0 | c1 | c2 | c3;
    h = mixBlock(h, c0 | (c1 << 8) | (c2 << 16) | (c3 << 24));
  }
  const rest = length & 3;
  if (rest > 0) {
    let k = 0;
    for (let i = rest - 1; i >= 0; i--) {
      const c = text.charCodeAt(blocks + i);
      any |= c;
      k ^= c << (8 * i);
    }
    h ^= scramble(k);
  }
  if (any >= 0x80) return -1;
  h ^= length;
  return fmix32(h);
}

/**
 * murmur3_32 of the 8 bytes `a` (little-endian) then `b` (little-endian), seed 0: the score of a
 * (key, backend) pair in rendezvous hashing: the two blocks mixed directly, no buffer.
 */
export function hashPair(a: number, b: number): number {
  return fmix32(mixBlock(mixBlock(0, a), b) ^ 8);
}
