/**
 * The proxy's pure-ish pieces without sockets: every strategy's candidate walk (attempts 0..n-1
 * are n distinct backends, then none), smooth weighted round robin's shares, least connections'
 * choice, and the bounded wait queue (FIFO, capacity, removal, expiry on a manual clock).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Balance } from '../src/config/index.js';
import { ManualClock } from '../src/clock.js';
import { WaitQueue } from '../src/proxy/queue.js';
import { createChooser, type Flow } from '../src/services/index.js';

const BALANCES: Balance[] = ['maglev', 'ring', 'rendezvous', 'roundrobin', 'leastconn'];

const backendsArb = fc
  .uniqueArray(fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/), { minLength: 1, maxLength: 8 })
  .chain((names) => fc.tuple(fc.constant(names), fc.array(fc.integer({ min: 1, max: 5 }), { minLength: names.length, maxLength: names.length })))
  .map(([names, weights]) => names.map((name, i) => ({ name, weight: weights[i] })));

describe('candidate walks', () => {
  it('attempts 0..n-1 give n distinct backends and attempt n gives none, for every balance', () => {
    fc.assert(
      fc.property(backendsArb, fc.constantFrom(...BALANCES), fc.uint8Array({ minLength: 4, maxLength: 6 }), fc.array(fc.nat(9), { maxLength: 8 }), (backends, balance, key, loads) => {
        const load = new Map(backends.map((b, i) => [b.name, loads[i] ?? 0]));
        const chooser = createChooser(balance, backends, { tableSize: 251, loads: { loadOf: (name) => load.get(name) ?? 0 } });
        const flow: Flow = { key, anchor: 0 };
        const seen = new Set<string>();
        for (let attempt = 0; attempt < backends.length; attempt++) {
          const picked = chooser.pick(flow, attempt);
          expect(picked).toBeDefined();
          seen.add(picked?.name as string);
        }
        expect(seen.size).toBe(backends.length);
        expect(chooser.pick(flow, backends.length)).toBeUndefined();
      }),
      { seed: 42, numRuns: 300 },
    );
  });
});

describe('roundrobin', () => {
  it('over sum(weights) turns each backend is chosen exactly weight times', () => {
    fc.assert(
      fc.property(backendsArb, fc.integer({ min: 1, max: 4 }), (backends, rounds) => {
        const chooser = createChooser('roundrobin', backends, { loads: { loadOf: () => 0 } });
        const total = backends.reduce((sum, b) => sum + b.weight, 0);
        const counts = new Map<string, number>();
        for (let turn = 0; turn < total * rounds; turn++) {
          const name = chooser.pick({ key: '', anchor: 0 }, 0)?.name as string;
          counts.set(name, (counts.get(name) ?? 0) + 1);
        }
        for (const backend of backends) expect(counts.get(backend.name)).toBe(backend.weight * rounds);
      }),
      { seed: 42, numRuns: 200 },
    );
  });
});

describe('leastconn', () => {
  it('chooses the lowest load per unit of weight', () => {
    const load = new Map([
      ['a', 4],
      ['b', 3],
      ['c', 5],
    ]);
    const backends = [
      { name: 'a', weight: 2 }, // 2 per unit
      { name: 'b', weight: 1 }, // 3 per unit
      { name: 'c', weight: 5 }, // 1 per unit
    ];
    const chooser = createChooser('leastconn', backends, { loads: { loadOf: (name) => load.get(name) ?? 0 } });
    const flow: Flow = { key: '', anchor: 0 };
    expect(chooser.pick(flow, 0)?.name).toBe('c');
    expect([chooser.pick(flow, 1)?.name, chooser.pick(flow, 2)?.name]).toEqual(['a', 'b']); // retries walk on from c
  });
});

describe('WaitQueue', () => {
  const waiter = (): { id: number } => ({ id: Math.random() });

  it('is FIFO, bounded by its capacity, and removes a waiter that left', () => {
    const clock = new ManualClock();
    const expired: object[] = [];
    const queue = new WaitQueue<object>(3, 60_000, (w) => expired.push(w), clock);
    const [a, b, c, d] = [waiter(), waiter(), waiter(), waiter()];
    expect([queue.push(a), queue.push(b), queue.push(c), queue.push(d)]).toEqual([true, true, true, false]);
    expect(clock.pending).toBe(3);
    expect(queue.remove(b)).toBe(true);
    expect(queue.remove(b)).toBe(false);
    expect(queue.length).toBe(2);
    expect(queue.shift()).toBe(a);
    expect(queue.peek()).toBe(c);
    expect(queue.drain()).toEqual([c]);
    expect(queue.length).toBe(0);
    expect(clock.pending).toBe(0); // every timer cleared with its waiter
    clock.advance(60_000);
    expect(expired).toEqual([]);
  });

  it('hands a waiter to onExpire, removed from the queue, once its timeout has passed and not before', () => {
    const clock = new ManualClock();
    const expired: object[] = [];
    const queue = new WaitQueue<object>(2, 20, (w) => {
      expect(queue.length).toBe(1);
      expired.push(w);
    }, clock);
    const [first, second] = [waiter(), waiter()];
    queue.push(first);
    clock.advance(5);
    queue.push(second);
    clock.advance(14);
    expect(expired).toEqual([]);
    clock.advance(1);
    expect(expired).toEqual([first]);
    expect(queue.peek()).toBe(second);
  });

  it('refuses everyone when waiting is disabled (timeout 0)', () => {
    const clock = new ManualClock();
    const queue = new WaitQueue<object>(10, 0, () => {}, clock);
    expect(queue.push(waiter())).toBe(false);
    expect(clock.pending).toBe(0);
  });
});
