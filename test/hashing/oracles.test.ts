/**
 * Each fast picker against a naive reference written straight from its paper: the Maglev
 * permutation matrix of Pseudocode 1, a linear scan of the ketama ring, and rendezvous by sorting
 * every score. Plus the bounded-load invariant and flow-key encoding.
 */
import { isIPv6 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createPicker, withBoundedLoads, type Backend, type HashKey } from '../../src/hashing/index.js';
import { buildMaglevTable, permutationOf, populateMaglev, type PermutationEntry } from '../../src/hashing/maglev.js';
import { hashKey, hashPair } from '../../src/hashing/murmur3.js';
import { buildRing } from '../../src/hashing/ring.js';
import { addressBytes, flowKey } from '../../src/hashing/keys.js';
import { backendLists, FC_PARAMS, keyArb } from './support.js';

/** Pseudocode 1 of the Maglev paper, literally: permutation[i][j] = (offset + j·skip) mod M. */
function naiveMaglev(entries: readonly PermutationEntry[], M: number): number[] {
  const permutation = entries.map(({ offset, skip }) => Array.from({ length: M }, (_, j) => (offset + j * skip) % M));
  const next = entries.map(() => 0);
  const entry = new Array<number>(M).fill(-1);
  let n = 0;
  for (;;) {
    for (let i = 0; i < entries.length; i++) {
      let c = permutation[i][next[i]];
      while (entry[c] >= 0) {
        next[i]++;
        c = permutation[i][next[i]];
      }
      entry[c] = i;
      next[i]++;
      n++;
      if (n === M) return entry;
    }
  }
}

describe('maglev against the paper\'s pseudocode', () => {
  const primes = [7, 13, 31, 101, 251, 1009];
  it('populates the same table for random (offset, skip) entries', () => {
    fc.assert(
      fc.property(fc.constantFrom(...primes), fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 6 }), (M, pairs) => {
        const entries = pairs.map(([offset, skip]) => ({ offset: offset % M, skip: (skip % (M - 1)) + 1, weight: 1 }));
        expect([...populateMaglev(entries, M)]).toEqual(naiveMaglev(entries, M));
      }),
      FC_PARAMS,
    );
  });

  it('builds tables from name-derived permutations in name order', () => {
    fc.assert(
      fc.property(backendLists.map((l) => l.map((b) => ({ ...b, weight: 1 }))), (list) => {
        const M = 251;
        if (list.length > M) return;
        const sorted = [...list].sort((a, b) => (a.name < b.name ? -1 : 1));
        const expected = naiveMaglev(sorted.map((b) => permutationOf(b.name, M)), M).map((i) => sorted[i].name);
        const table = buildMaglevTable(list, M);
        expect([...table.slots].map((i) => table.backends[i].name)).toEqual(expected);
      }),
      FC_PARAMS,
    );
  });

  it('rejects a table size that is not prime, or smaller than the backend count', () => {
    expect(() => buildMaglevTable([{ name: 'a', weight: 1 }], 65536)).toThrow(/prime/);
    expect(() => createPicker('maglev', [{ name: 'a', weight: 1 }, { name: 'b', weight: 1 }, { name: 'c', weight: 1 }], { tableSize: 2 })).toThrow(/smaller/);
  });
});

describe('ring against a linear scan', () => {
  it('finds the owner of the first point at or after the key, wrapping', () => {
    fc.assert(
      fc.property(backendLists, fc.array(keyArb, { minLength: 10, maxLength: 30 }), (list, keys) => {
        const picker = createPicker('ring', list);
        const ring = buildRing(picker.backends);
        const positions = [...ring.points];
        for (const key of keys) {
          const digest = (picker as unknown as { position(key: HashKey): number }).position(key);
          let index = positions.findIndex((p) => p >= digest);
          if (index < 0) index = 0;
          expect(picker.pick(key)?.name).toBe(picker.backends[ring.owners[index]].name);
        }
      }),
      FC_PARAMS,
    );
  });
});

describe('rendezvous against sorting every score', () => {
  it('returns the backends in descending score order, ties by name', () => {
    fc.assert(
      fc.property(backendLists, keyArb, (list, key) => {
        const picker = createPicker('rendezvous', list);
        const uniform = list.every((b) => b.weight === list[0].weight);
        const keyHash = hashKey(key);
        const scored = [...list]
          .sort((a, b) => (a.name < b.name ? -1 : 1))
          .map((b) => {
            const h = hashPair(keyHash, hashKey(b.name));
            return { name: b.name, score: uniform ? h : -b.weight / Math.log((h + 0.5) / 2 ** 32) };
          });
        const order = scored.map((s, i) => ({ ...s, i })).sort((a, b) => b.score - a.score || a.i - b.i);
        order.forEach((s, attempt) => expect(picker.pick(key, attempt)?.name).toBe(s.name));
      }),
      FC_PARAMS,
    );
  });
});

/** Backends, a balance factor, an algorithm, and open/close steps: [close?, key seed, which open one]. */
const boundedScenario = [
  backendLists,
  fc.constantFrom(1.05, 1.25, 1.5, 2),
  fc.constantFrom('ring', 'maglev', 'rendezvous' as const),
  fc.array(fc.tuple(fc.boolean(), fc.nat(), fc.nat()), { minLength: 50, maxLength: 400 }),
] as const;

describe('bounded loads (Mirrokni, Thorup, Zadimoghaddam)', () => {
  /** Places and releases connections in a seeded random order, checking every pick. */
  it('never exceeds ceil(c · (L+1) · w / W), and keeps the primary whenever it is under the bound', () => {
    fc.assert(
      fc.property(
        ...boundedScenario,
        (list, factor, algorithm, steps) => {
          const loads = new Map<string, number>();
          const view = { loadOf: (name: string) => loads.get(name) ?? 0 };
          const inner = createPicker(algorithm, list, { tableSize: 1009 });
          const bounded = withBoundedLoads(inner, factor, view);
          const open: string[] = [];
          const W = list.reduce((s, b) => s + b.weight, 0);
          for (const [close, keySeed, which] of steps) {
            if (close && open.length > 0) {
              const name = open.splice(which % open.length, 1)[0];
              loads.set(name, view.loadOf(name) - 1);
              continue;
            }
            const key = `client-${keySeed % 5000}`;
            const total = open.length;
            const chosen: Backend | undefined = bounded.pick(key);
            expect(chosen).toBeDefined();
            const cap = Math.ceil((factor * (total + 1) * chosen!.weight) / W);
            expect(view.loadOf(chosen!.name) + 1).toBeLessThanOrEqual(cap);
            const primary = inner.pick(key)!;
            const primaryCap = Math.ceil((factor * (total + 1) * primary.weight) / W);
            if (view.loadOf(primary.name) + 1 <= primaryCap) expect(chosen!.name).toBe(primary.name);
            loads.set(chosen!.name, view.loadOf(chosen!.name) + 1);
            open.push(chosen!.name);
          }
        },
      ),
      FC_PARAMS,
    );
  });

  it('picks the same with a running total as by summing the loads, for every attempt', () => {
    fc.assert(
      fc.property(
        ...boundedScenario,
        (list, factor, algorithm, steps) => {
          const loads = new Map<string, number>();
          const loadOf = (name: string) => loads.get(name) ?? 0;
          let running = 0;
          const inner = createPicker(algorithm, list, { tableSize: 1009 });
          const summing = withBoundedLoads(inner, factor, { loadOf });
          const counted = withBoundedLoads(inner, factor, { loadOf, total: () => running });
          const open: string[] = [];
          for (const [close, keySeed, which] of steps) {
            if (close && open.length > 0) {
              const name = open.splice(which % open.length, 1)[0];
              loads.set(name, loadOf(name) - 1);
              running--;
              continue;
            }
            const key = `client-${keySeed % 5000}`;
            for (let attempt = 0; attempt <= list.length; attempt++) {
              expect(counted.pick(key, attempt)?.name).toBe(summing.pick(key, attempt)?.name);
            }
            const chosen = counted.pick(key)!;
            loads.set(chosen.name, loadOf(chosen.name) + 1);
            running++;
            open.push(chosen.name);
          }
        },
      ),
      FC_PARAMS,
    );
  });

  it('with a running total, reads one load per pick while the primary is under its bound', () => {
    const backends = Array.from({ length: 100 }, (_, i) => ({ name: `be-${i}`, weight: 1 }));
    const inner = createPicker('maglev', backends, { tableSize: 1009 });
    let reads = 0;
    const view = {
      loadOf: () => {
        reads++;
        return 0;
      },
    };
    withBoundedLoads(inner, 1.25, view).pick('client-1');
    expect(reads).toBe(101); // the sum over 100 backends, then the primary's own load
    reads = 0;
    withBoundedLoads(inner, 1.25, { ...view, total: () => 0 }).pick('client-1');
    expect(reads).toBe(1);
  });

  it('rejects a factor ≤ 1', () => {
    const inner = createPicker('maglev', [{ name: 'a', weight: 1 }], { tableSize: 7 });
    expect(() => withBoundedLoads(inner, 1, { loadOf: () => 0 })).toThrow(/factor/);
  });
});

describe('flow keys', () => {
  it('encodes IPv4 as 4 bytes, IPv4-mapped IPv6 as the same 4 bytes, and ports in network order', () => {
    expect([...flowKey('192.0.2.1')]).toEqual([192, 0, 2, 1]);
    expect([...flowKey('::ffff:192.0.2.1')]).toEqual([192, 0, 2, 1]);
    expect([...flowKey('192.0.2.1', 443)]).toEqual([192, 0, 2, 1, 1, 187]);
    expect(() => flowKey('192.0.2.300')).toThrow(/not an IP address/);
  });

  it('round-trips every IPv6 address through its full and compressed spellings', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const hextets = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i] << 8) | bytes[2 * i + 1]).toString(16));
        const full = hextets.join(':');
        // Node's URL parser prints the canonical compressed form (RFC 5952).
        const compressed = new URL(`http://[${full}]/`).hostname.slice(1, -1);
        expect(isIPv6(compressed)).toBe(true);
        const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
        const expected = mapped ? [...bytes.slice(12)] : [...bytes];
        expect([...addressBytes(full)]).toEqual(expected);
        expect([...addressBytes(compressed)]).toEqual(expected);
      }),
      { ...FC_PARAMS, numRuns: 300 },
    );
  });
});
