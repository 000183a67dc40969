/**
 * The running load total of a service (src/services/counters.ts), which bounded loads read as L on
 * every pick: after any sequence of connections opening and closing and of plans changing, it
 * equals the sum of loadOf over the current plan's backends — what the summing path computes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ServiceLoads } from '../src/services/index.js';
import { FC_PARAMS } from './hashing/support.js';

const NAMES = ['a', 'b', 'c', 'd', 'e'];

type Step = { kind: 'acquire' | 'release'; name: string } | { kind: 'plan'; members: string[] };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constantFrom('acquire' as const, 'release' as const), name: fc.constantFrom(...NAMES) }),
  fc.record({ kind: fc.constant('plan' as const), members: fc.subarray(NAMES) }),
);

describe('ServiceLoads running total', () => {
  it('equals the sum over the current plan\'s backends after any sequence of opens, closes and plan changes', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), (steps) => {
        const loads = new ServiceLoads();
        let members = new Set<string>(NAMES);
        loads.setMembers(members);
        for (const each of steps) {
          if (each.kind === 'plan') {
            members = new Set(each.members);
            loads.setMembers(members);
          } else if (each.kind === 'acquire') {
            loads.of(each.name).acquire();
          } else if (loads.loadOf(each.name) > 0) {
            loads.of(each.name).release(); // only a connection that holds a slot gives it back
          }
          const summed = [...members].reduce((sum, name) => sum + loads.loadOf(name), 0);
          expect(loads.total()).toBe(summed);
        }
      }),
      { ...FC_PARAMS, numRuns: 200 },
    );
  });

  it('counts a backend opened before it joined a plan once it joins, and stops counting one that left', () => {
    const loads = new ServiceLoads();
    loads.setMembers(new Set(['a']));
    loads.of('b').acquire();
    loads.of('b').acquire();
    loads.of('a').acquire();
    expect(loads.total()).toBe(1);
    loads.setMembers(new Set(['a', 'b']));
    expect(loads.total()).toBe(3);
    loads.setMembers(new Set(['b']));
    loads.of('a').release();
    expect(loads.total()).toBe(2);
    expect(loads.of('a')).toMatchObject({ current: 0, total: 1 });
  });
});
