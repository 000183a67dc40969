/**
 * MD5 (RFC 1321) returning the four little-endian state words, for the ketama ring. ketama's ring
 * points are exactly these words (bytes 4j..4j+3 of the digest read little-endian), so no digest
 * bytes are built. Written out here because `crypto.createHash('md5')` costs about 1.5 µs a call in
 * object set-up alone, more than the whole lookup should; this costs a few hundred nanoseconds for a
 * short key. Verified against node:crypto by the tests.
 */
import type { HashKey } from './types.js';

const S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const K = new Int32Array(64);
for (let i = 0; i < 64; i++) K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0;

const words = new Int32Array(16);
let block = new Uint8Array(128);
const encoder = new TextEncoder();

/** The digest as four unsigned 32-bit words [a, b, c, d], written into `out`. */
export type Md5Words = Uint32Array;

/**
 * One 64-byte block, data[offset, offset + 64), folded into `state`.
 * Pre: offset + 64 ≤ data.length; state.length = 4.
 */
function compress(state: Int32Array, data: Uint8Array, offset: number): void {
  // o + 3 = offset + 4i + 3 < offset + 64 ≤ data.length (pre), so every data[o + k] is defined.
  for (let i = 0; i < 16; i++) {
    const o = offset + i * 4;
    words[i] = data[o]! | (data[o + 1]! << 8) | (data[o + 2]! << 16) | (data[o + 3]! << 24);
  }
  let a = state[0]!;
  let b = state[1]!;
  let c = state[2]!;
  let d = state[3]!;
  // i < 64 = K.length; g is masked to 0..15 (words.length = 16); the S index
  // 4·(i >> 4) + (i & 3) ≤ 15 < S.length = 16: every read below is defined.
  for (let i = 0; i < 64; i++) {
    let f: number;
    let g: number;
    if (i < 16) {
      f = (b & c) | (~b & d);
      g = i;
    } else if (i < 32) {
      f = (d & b) | (~d & c);
      g = (5 * i + 1) & 15;
    } else if (i < 48) {
      f = b ^ c ^ d;
      g = (3 * i + 5) & 15;
    } else {
      f = c ^ (b | ~d);
      g = (7 * i) & 15;
    }
    const s = S[((i >> 4) << 2) | (i & 3)]!;
    const sum = (a + f + K[i]! + words[g]!) | 0;
    a = d;
    d = c;
    c = b;
    b = (b + ((sum << s) | (sum >>> (32 - s)))) | 0;
  }
  state[0] = (state[0]! + a) | 0;
  state[1] = (state[1]! + b) | 0;
  state[2] = (state[2]! + c) | 0;
  state[3] = (state[3]! + d) | 0;
}

const state = new Int32Array(4);

/** MD5 of `bytes[0..length)` into `out` (4 words). Pre: length ≤ bytes.length. `bytes` is not modified. */
export function md5Words(bytes: Uint8Array, length: number, out: Md5Words): Md5Words {
  state[0] = 0x67452301;
  state[1] = 0xefcdab89 | 0;
  state[2] = 0x98badcfe | 0;
  state[3] = 0x10325476;
  const full = length - (length % 64);
  for (let offset = 0; offset < full; offset += 64) compress(state, bytes, offset);
  const rest = length - full;
  const tailLength = rest < 56 ? 64 : 128;
  if (block.length < tailLength) block = new Uint8Array(128);
  block.fill(0, 0, tailLength);
  // full + i < length ≤ bytes.length (pre), so bytes[full + i] is defined.
  for (let i = 0; i < rest; i++) block[i] = bytes[full + i]!;
  block[rest] = 0x80;
  const bits = length * 8;
  block[tailLength - 8] = bits & 0xff;
  block[tailLength - 7] = (bits >>> 8) & 0xff;
  block[tailLength - 6] = (bits >>> 16) & 0xff;
  block[tailLength - 5] = (bits >>> 24) & 0xff;
  const high = Math.floor(bits / 2 ** 32);
  block[tailLength - 4] = high & 0xff;
  block[tailLength - 3] = (high >>> 8) & 0xff;
  block[tailLength - 2] = (high >>> 16) & 0xff;
  block[tailLength - 1] = (high >>> 24) & 0xff;
  compress(state, block, 0);
  if (tailLength === 128) compress(state, block, 64);
  // state is an Int32Array(4).
  out[0] = state[0]!;
  out[1] = state[1]!;
  out[2] = state[2]!;
  out[3] = state[3]!;
  return out;
}

let textScratch = new Uint8Array(256);

/** MD5 of a key: a string as its UTF-8 bytes (what `crypto.createHash('md5').update(s)` hashes). */
export function md5Key(key: HashKey, out: Md5Words): Md5Words {
  if (typeof key !== 'string') return md5Words(key, key.length, out);
  if (key.length * 3 > textScratch.length) textScratch = new Uint8Array(key.length * 3);
  const { written } = encoder.encodeInto(key, textScratch);
  return md5Words(textScratch, written, out);
}
