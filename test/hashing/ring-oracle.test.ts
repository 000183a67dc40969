/**
 * The ketama ring against the npm `hashring` package (default mode) as an oracle: same servers,
 * weights and key ⇒ same server, and the same walk for retries (hashring's `range`).
 */
import fc from 'fast-check';
import HashRing from 'hashring';
import { describe, expect, it } from 'vitest';
import { createPicker } from '../../src/hashing/index.js';
import { FC_PARAMS } from './support.js';

const serverName = fc.oneof(
  fc.stringMatching(/^[a-z][a-z0-9-]{0,14}$/),
  fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 })).map(([ip, port]) => `${ip}:${port}`),
);
const servers = fc.uniqueArray(fc.tuple(serverName, fc.constantFrom(1, 1, 2, 3, 5, 0.5, 1.5, 100)), {
  minLength: 1,
  maxLength: 40,
  selector: ([name]) => name,
});
const keys = fc.array(fc.oneof(fc.string({ maxLength: 30 }), fc.ipV4(), fc.ipV6(), fc.uuid()), { minLength: 60, maxLength: 200 });

describe('ring agrees with npm hashring', () => {
  it('maps every key to the same server, for random server lists, weights and keys', () => {
    let compared = 0;
    fc.assert(
      fc.property(servers, keys, (list, keyList) => {
        const oracle = new HashRing(Object.fromEntries(list));
        const picker = createPicker('ring', list.map(([name, weight]) => ({ name, weight })));
        for (const key of keyList) {
          // range(key, 1) is get() without hashring's LRU cache, which is keyed by a plain object
          // and so answers "toString" or "constructor" from Object.prototype.
          expect(picker.pick(key)?.name, `key ${JSON.stringify(key)}`).toBe(oracle.range(key, 1)[0]);
          compared++;
        }
      }),
      { ...FC_PARAMS, numRuns: 200 },
    );
    expect(compared).toBeGreaterThan(10_000);
  });

  it('walks retries in the order of hashring.range()', () => {
    fc.assert(
      fc.property(servers, fc.array(fc.string({ maxLength: 20 }), { minLength: 1, maxLength: 30 }), (list, keyList) => {
        const oracle = new HashRing(Object.fromEntries(list));
        const picker = createPicker('ring', list.map(([name, weight]) => ({ name, weight })));
        for (const key of keyList) {
          const walk = oracle.range(key);
          // hashring's range() lists only servers that own ring points; ours appends any others.
          walk.forEach((name, attempt) => expect(picker.pick(key, attempt)?.name).toBe(name));
        }
      }),
      FC_PARAMS,
    );
  });

  it('agrees on 100,000 keys over 100 weighted servers', () => {
    const list = Array.from({ length: 100 }, (_, i) => [`10.1.${i >> 4}.${i & 15}:6379`, 1 + (i % 4)] as const);
    const oracle = new HashRing(Object.fromEntries(list));
    const picker = createPicker('ring', list.map(([name, weight]) => ({ name, weight })));
    let disagreements = 0;
    for (let i = 0; i < 100_000; i++) {
      const key = `client-${i}`;
      if (picker.pick(key)?.name !== oracle.get(key)) disagreements++;
    }
    expect(disagreements).toBe(0);
  });
});
