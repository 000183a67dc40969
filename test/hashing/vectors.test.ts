/**
 * Known-answer vectors: the key hash (a compatibility promise), MD5 against node:crypto, the
 * Maglev paper's Table 1, and pinned routes of each algorithm (changing any of them reshuffles
 * every client of an upgraded balancer, so a change here must be deliberate and documented).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createPicker, hashKey, type Algorithm } from '../../src/hashing/index.js';
import { populateMaglev } from '../../src/hashing/maglev.js';
import { md5Key, md5Words } from '../../src/hashing/md5.js';
import { flowKey } from '../../src/hashing/keys.js';
import { FC_PARAMS } from './support.js';

describe('murmur3_32 key hash', () => {
  // Published MurmurHash3_x86_32 vectors (SMHasher's verification set and its common ports).
  it.each([
    ['', 0, 0x00000000],
    ['', 1, 0x514e28b7],
    ['', 0xffffffff, 0x81f16f39],
    ['\0\0\0\0', 0, 0x2362f9de],
    ['a', 0x9747b28c, 0x7fa09ea6],
    ['abc', 0, 0xb3dd93fa],
    ['aaaa', 0x9747b28c, 0x5a97808a],
    ['Hello, world!', 0x9747b28c, 0x24884cba],
    ['The quick brown fox jumps over the lazy dog', 0x9747b28c, 0x2fa826cd],
  ])('murmur3(%j, seed %d)', (text, seed, expected) => {
    expect(hashKey(text, seed)).toBe(expected);
  });

  it('hashes a string as its UTF-8 bytes', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 60 }), (text) => {
        expect(hashKey(text)).toBe(hashKey(new TextEncoder().encode(text)));
      }),
      FC_PARAMS,
    );
  });
});

describe('md5', () => {
  function crypto4(bytes: Uint8Array): number[] {
    const digest = createHash('md5').update(bytes).digest();
    return [0, 1, 2, 3].map((i) => digest.readUInt32LE(i * 4));
  }

  it('matches node:crypto for every length across the padding boundaries', () => {
    const out = new Uint32Array(4);
    for (let length = 0; length <= 200; length++) {
      const bytes = Uint8Array.from({ length }, (_, i) => (i * 31 + length) & 0xff);
      expect([...md5Words(bytes, length, out)]).toEqual(crypto4(bytes));
    }
  });

  it('matches node:crypto for arbitrary strings and bytes', () => {
    const out = new Uint32Array(4);
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), fc.uint8Array({ maxLength: 300 })), (key) => {
        const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
        expect([...md5Key(key, out)]).toEqual(crypto4(bytes));
      }),
      FC_PARAMS,
    );
  });
});

describe('Maglev paper, Table 1 (NSDI\'16 §3.4)', () => {
  const B0 = { offset: 3, skip: 4, weight: 1 };
  const B1 = { offset: 0, skip: 2, weight: 1 };
  const B2 = { offset: 3, skip: 1, weight: 1 };
  const names = (table: Int32Array, labels: string[]) => [...table].map((i) => labels[i]);

  it('populates [B1,B0,B1,B0,B2,B2,B0] for B0, B1, B2 and M = 7', () => {
    expect(names(populateMaglev([B0, B1, B2], 7), ['B0', 'B1', 'B2'])).toEqual(['B1', 'B0', 'B1', 'B0', 'B2', 'B2', 'B0']);
  });

  it('populates [B0,B0,B0,B0,B2,B2,B2] once B1 is removed', () => {
    expect(names(populateMaglev([B0, B2], 7), ['B0', 'B2'])).toEqual(['B0', 'B0', 'B0', 'B0', 'B2', 'B2', 'B2']);
  });
});

interface PinnedRoutes {
  backends: { name: string; weight: number }[];
  routes: Record<Algorithm, [string, string][]>;
}

describe('pinned routes (compatibility promise)', () => {
  const pinned = JSON.parse(readFileSync(new URL('../fixtures/hashing/pinned-routes.json', import.meta.url), 'utf8')) as PinnedRoutes;

  it.each(['ring', 'maglev', 'rendezvous'] as const)('%s routes the fixture keys as recorded', (algorithm) => {
    const picker = createPicker(algorithm, pinned.backends);
    const routes = pinned.routes[algorithm];
    expect(routes.length).toBeGreaterThan(50);
    for (const [key, backend] of routes) {
      const [address, port] = key.split(' ');
      expect(picker.pick(flowKey(address, port === undefined ? undefined : Number(port)))?.name, key).toBe(backend);
    }
  });
});
