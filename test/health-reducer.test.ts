/**
 * The rise/fall reducer: input-sequence -> state-sequence tables (glb-healthcheck's
 * DampenedResultStream tests), and HAProxy's health counter as an oracle under fast-check.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isLbError } from '../src/errors.js';
import { initialState, next, replay, type HealthState, type InitialHealth } from '../src/health/reducer.js';

/** 'P' = pass, 'F' = fail; states as 'U'/'D' plus the streak, e.g. 'U0 U1 D0'. */
function run(init: InitialHealth, rise: number, fall: number, inputs: string): string {
  const results = [...inputs].map((c) => c === 'P');
  return replay(initialState(init, rise, fall), results, rise, fall)
    .map((s) => `${s.health === 'up' ? 'U' : 'D'}${s.streak}`)
    .join(' ');
}

describe('reducer tables (rise 2, fall 3: HAProxy defaults)', () => {
  it.each([
    // init, inputs, states after each input
    ['fully-up', 'FFF', 'U1 U2 D0'],
    ['fully-up', 'FFPFFF', 'U1 U2 U0 U1 U2 D0'],
    ['fully-up', 'PPPP', 'U0 U0 U0 U0'],
    ['fully-up', 'FFFPP', 'U1 U2 D0 D1 U0'],
    ['fully-up', 'FFFPFPP', 'U1 U2 D0 D1 D0 D1 U0'],
    ['fully-up', 'FFFFFP', 'U1 U2 D0 D0 D0 D1'],
    // HAProxy's default: up, but the first failure takes it down; the first pass makes it fully up.
    ['up', 'F', 'D0'],
    ['up', 'PFF', 'U0 U1 U2'],
    ['up', 'PFFF', 'U0 U1 U2 D0'],
    ['down', 'P', 'U0'],
    ['down', 'FP', 'D0 D1'],
    ['down', 'FPP', 'D0 D1 U0'],
    ['fully-down', 'PP', 'D1 U0'],
    ['fully-down', 'PFPP', 'D1 D0 D1 U0'],
  ] as const)('%s + %s -> %s', (init, inputs, expected) => {
    expect(run(init, 2, 3, inputs)).toBe(expected);
  });
});

describe('reducer tables, other thresholds', () => {
  it.each([
    [1, 1, 'fully-up', 'FPFP', 'D0 U0 D0 U0'],
    [1, 1, 'up', 'PFP', 'U0 D0 U0'],
    [3, 1, 'fully-up', 'FPPFPPP', 'D0 D1 D2 D0 D1 D2 U0'],
    [1, 5, 'fully-up', 'FFFFPFFFFF', 'U1 U2 U3 U4 U0 U1 U2 U3 U4 D0'],
    [1, 5, 'up', 'F', 'D0'],
    [5, 2, 'down', 'P', 'U0'],
    [5, 2, 'fully-down', 'PPPPFPPPPP', 'D1 D2 D3 D4 D0 D1 D2 D3 D4 U0'],
  ] as const)('rise %d fall %d, %s + %s -> %s', (rise, fall, init, inputs, expected) => {
    expect(run(init, rise, fall, inputs)).toBe(expected);
  });

  it('returns the same object when nothing changes (no allocation per steady check)', () => {
    const up: HealthState = { health: 'up', streak: 0 };
    expect(next(up, true, 2, 3)).toBe(up);
    const down: HealthState = { health: 'down', streak: 0 };
    expect(next(down, false, 2, 3)).toBe(down);
  });

  it.each([
    [0, 3],
    [2, 0],
    [1.5, 3],
    [2, Number.NaN],
    [-1, 3],
  ])('rejects rise %d fall %d with a typed error', (rise, fall) => {
    let caught: unknown;
    try {
      initialState('up', rise, fall);
    } catch (error) {
      caught = error;
    }
    expect(isLbError(caught) && caught.code).toBe('LB_ERR_INVALID_ARGUMENT');
    expect(String((caught as Error).message)).toMatch(/rise|fall/);
  });
});

/**
 * HAProxy's counter, transcribed from src/check.c: health in [0, rise+fall-1], up iff >= rise;
 * initial value per init-state.
 */
function haproxyOracle(init: InitialHealth, rise: number, fall: number, results: readonly boolean[]): boolean[] {
  let health = init === 'fully-up' ? rise + fall - 1 : init === 'up' ? rise : init === 'down' ? rise - 1 : 0;
  const out: boolean[] = [];
  for (const passed of results) {
    if (passed) {
      if (health < rise + fall - 1) {
        health++;
        if (health >= rise) health = rise + fall - 1;
      }
    } else if (health > 0) {
      health--;
      if (health < rise) health = 0;
    }
    out.push(health >= rise);
  }
  return out;
}

describe('reducer against HAProxy health counter', () => {
  it('agrees on up/down after every result', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.constantFrom<InitialHealth>('fully-up', 'up', 'down', 'fully-down'),
        fc.array(fc.boolean(), { maxLength: 60 }),
        (rise, fall, init, results) => {
          const ours = replay(initialState(init, rise, fall), results, rise, fall).map((s) => s.health === 'up');
          expect(ours).toEqual(haproxyOracle(init, rise, fall, results));
        },
      ),
      { seed: 42, numRuns: 300, verbose: 1 },
    );
  });

  it('keeps the streak within its bound', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.array(fc.boolean(), { maxLength: 60 }), (rise, fall, results) => {
        for (const s of replay(initialState('up', rise, fall), results, rise, fall)) {
          expect(s.streak).toBeGreaterThanOrEqual(0);
          expect(s.streak).toBeLessThan(s.health === 'up' ? fall : rise);
        }
      }),
      { seed: 42, numRuns: 200, verbose: 1 },
    );
  });
});
