/**
 * The kernel-compatible flow hash of the DSR director (src/hashing/jhash.ts).
 *
 * Known answers come from two independent sources: Bob Jenkins' lookup3.c driver (hashlittle, which
 * the kernel's jhash is on a little-endian CPU), and the running kernel itself — values an nft rule
 * `meta mark set jhash … mod M seed S` wrote into a dynamic map for connections from chosen source
 * addresses and ports (Linux 6.18, nft 1.0.6; see docs/dsr.md). With M = 2^32 − 1,
 * reciprocal_scale(h, M) = h − 1 for h > 0, so those vectors show nearly the whole hash.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildMaglevTable, createPicker } from '../src/hashing/index.js';
import { jhash, jhashSlotHash, nftJhashSlot, reciprocalScale, registerLength } from '../src/hashing/jhash.js';
import { flowKey } from '../src/hashing/keys.js';

const FC = { seed: 42, numRuns: 200 } as const;
const U32_MAX = 0xffffffff;

describe('jhash (lookup3 hashlittle)', () => {
  const text = new TextEncoder().encode('Four score and seven years ago');
  it.each([
    [new Uint8Array(0), 0, 0xdeadbeef],
    [text, 0, 0x17770551],
    [text, 1, 0xcd628161],
  ])('published lookup3 vector %#', (key, seed, expected) => {
    expect(jhash(key, key.length, seed)).toBe(expected);
  });

  it('counts bytes past the end of the key as zero (nft register padding)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 0, max: 8 }), fc.nat(), (key, extra, seed) => {
        const padded = new Uint8Array(key.length + extra);
        padded.set(key);
        expect(jhash(key, padded.length, seed)).toBe(jhash(padded, padded.length, seed));
      }),
      FC,
    );
  });
});

describe('reciprocal_scale', () => {
  it('equals ((u64)hash * range) >> 32 computed with BigInt', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: U32_MAX }), fc.integer({ min: 1, max: U32_MAX }), (hash, range) => {
        const oracle = Number((BigInt(hash) * BigInt(range)) >> 32n);
        expect(reciprocalScale(hash, range)).toBe(oracle);
      }),
      FC,
    );
  });

  it('maps onto [0, range)', () => {
    expect(reciprocalScale(U32_MAX, 13)).toBe(12);
    expect(reciprocalScale(0, 13)).toBe(0);
  });
});

describe('nft jhash slot: vectors read back from the kernel', () => {
  // [source address, source port or undefined for `ip saddr` alone, mod, seed, value the kernel wrote]
  const kernel: [string, number | undefined, number, number, number][] = [
    ['127.0.0.1', 1000, U32_MAX, 0, 0xbb7236a4],
    ['127.0.0.1', 40000, U32_MAX, 0, 0xdca364ff],
    ['127.0.0.1', undefined, U32_MAX, 0x12345678, 0x5ec61143],
    ['127.0.0.1', 1, U32_MAX, 0xdeadbeef, 0x1c4ad51e],
    ['127.200.100.50', 33333, U32_MAX, 0xdeadbeef, 0xc6262944],
    ['127.1.2.3', 80, U32_MAX, 0xdeadbeef, 0x047d61aa],
    ['127.0.0.1', 65535, U32_MAX, 0xdeadbeef, 0x3480d114],
    ['127.0.0.1', undefined, U32_MAX, 0, 0x66cb9b0d],
    ['127.200.100.50', undefined, U32_MAX, 0, 0xbc90b384],
    ['127.1.2.3', undefined, U32_MAX, 0, 0x3e0f4439],
    ['127.0.0.1', 1, 65537, 0x4c34, 0x1bb9],
    ['127.200.100.50', 33333, 65537, 0x4c34, 0x029e],
    ['127.1.2.3', 80, 65537, 0x4c34, 0x1372],
    ['127.0.0.1', 65535, 65537, 0x4c34, 0x5d0f],
    // IPv6: 16 address bytes reach the 12-byte block loop; `ip6 saddr . tcp sport` is 20 bytes.
    ['::1', 1234, U32_MAX, 1, 0x9fab9758],
    ['::1', 60000, U32_MAX, 1, 0x828bcbba],
    ['::1', undefined, U32_MAX, 1, 0x89ab59ee],
  ];
  it.each(kernel)('jhash %s port %s mod %d seed %d', (address, port, mod, seed, expected) => {
    expect(nftJhashSlot(flowKey(address, port), mod, seed)).toBe(expected);
  });

  it('pads a flow key to whole 32-bit registers', () => {
    expect([4, 6, 16, 18].map(registerLength)).toEqual([4, 8, 16, 20]);
  });
});

describe('jhashSlotHash in the hashing core', () => {
  const backends = ['be1', 'be2', 'be3', 'be4'].map((name) => ({ name, weight: 1 }));
  const tableSize = 251;
  const seed = 0x4c34;

  it('a Maglev picker with it routes a flow to the owner of the kernel slot', () => {
    const picker = createPicker('maglev', backends, { tableSize, slotHash: jhashSlotHash(seed) });
    const table = buildMaglevTable(backends, tableSize);
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 0, max: 65535 }), (address, port) => {
        const key = flowKey(address, port);
        const slot = nftJhashSlot(key, tableSize, seed);
        expect(slot).toBeGreaterThanOrEqual(0);
        expect(slot).toBeLessThan(tableSize);
        expect(picker.pick(key)?.name).toBe(table.backends[table.slots[slot]].name);
      }),
      FC,
    );
  });

  it('treats an IPv4-mapped IPv6 client like its IPv4 address, as the ip-family director does', () => {
    const slotHash = jhashSlotHash(seed);
    expect(slotHash(flowKey('::ffff:198.51.100.7', 40000), tableSize)).toBe(slotHash(flowKey('198.51.100.7', 40000), tableSize));
  });

  it('spreads flows over the slots (no slot takes more than 3x its share)', () => {
    const slotHash = jhashSlotHash(seed);
    const counts = new Array<number>(tableSize).fill(0);
    for (let port = 1024; port < 1024 + tableSize * 40; port++) counts[slotHash(flowKey('198.51.100.10', port), tableSize)]++;
    expect(Math.max(...counts)).toBeLessThan(120);
    expect(Math.min(...counts)).toBeGreaterThan(0);
  });
});
