/**
 * Shared pieces of the hashing tests: backend lists, deterministic key streams, and fast-check
 * parameters (fixed seed, bounded runs; fast-check prints the seed and path of any failure).
 */
import fc from 'fast-check';
import type { Backend } from '../../src/hashing/index.js';

export const FC_PARAMS = { seed: 42, numRuns: 60, verbose: 1 } as const;

export function named(count: number, prefix = 'be-'): Backend[] {
  return Array.from({ length: count }, (_, i) => ({ name: `${prefix}${i}`, weight: 1 }));
}

/** `count` distinct IPv4-address keys, spread by a multiplicative step (no randomness). */
export function addressKeys(count: number, base = 0x0a000000): Uint8Array[] {
  const keys: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const value = (base + Math.imul(i, 0x9e3779b1)) >>> 0;
    keys.push(new Uint8Array([value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff]));
  }
  return keys;
}

/** Share of keys per backend name. */
export function shares(pick: (key: Uint8Array) => string, keys: readonly Uint8Array[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const key of keys) {
    const name = pick(key);
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

/** Backend lists: 1–24 unique names with weights from a small set. */
export const backendLists = fc
  .uniqueArray(fc.stringMatching(/^[a-z0-9][a-z0-9.:-]{0,11}$/), { minLength: 1, maxLength: 24 })
  .chain((names) =>
    fc.tuple(fc.constant(names), fc.array(fc.constantFrom(1, 1, 1, 2, 3, 0.5, 10), { minLength: names.length, maxLength: names.length })),
  )
  .map(([names, weights]) => names.map((name, i) => ({ name, weight: weights[i] })));

export const keyArb = fc.oneof(fc.string({ maxLength: 40 }), fc.uint8Array({ minLength: 4, maxLength: 18 }));
