/**
 * Rise/fall hysteresis as a pure function: raw probe results in, up/down out.
 *
 * Model: HAProxy's per-server `check.health` counter (src/check.c, `check_notify_failure` and
 * `check_notify_success`), which runs from 0 to rise+fall-1 and means "up" from `rise` on. A
 * failure decrements it and drops it to 0 once below `rise`; a success increments it and lifts it
 * to rise+fall-1 once at `rise`. Written as { health, streak } that is:
 *
 *   up,   streak s (s consecutive failures so far, s < fall)
 *     pass -> up, 0                    fail -> s+1 = fall ? down, 0 : up, s+1
 *   down, streak s (s consecutive passes so far, s < rise)
 *     fail -> down, 0                  pass -> s+1 = rise ? up, 0   : down, s+1
 *
 * so an up backend goes down after `fall` consecutive failures and a down one comes back after
 * `rise` consecutive passes; one opposite result resets the streak (glb-healthcheck's
 * DampenedResultStream behaves the same way).
 *
 * Initial state follows HAProxy's `init-state` server keyword (recent HAProxy versions):
 * - `up` (HAProxy's default, health = rise: "up, but will fall down at first failure"): serves
 *   at once; the first failure takes it down, the first pass makes it fully up;
 * - `fully-up`: serves at once and needs `fall` failures to go down;
 * - `down`: serves nothing until the first pass (health = rise-1);
 * - `fully-down`: serves nothing until `rise` passes (health = 0).
 */
import { LbError } from '../errors.js';

export type Health = 'up' | 'down';

export interface HealthState {
  readonly health: Health;
  /** Consecutive results against the current health: failures while up, passes while down. */
  readonly streak: number;
}

export type InitialHealth = 'fully-up' | 'up' | 'down' | 'fully-down';

export const INITIAL_HEALTHS: readonly InitialHealth[] = ['fully-up', 'up', 'down', 'fully-down'];

/** HAProxy's defaults: `rise 2`, `fall 3` (configuration.txt, server keywords). */
export const DEFAULT_RISE = 2;
export const DEFAULT_FALL = 3;

/** Throws LbError unless rise and fall are integers >= 1 (HAProxy refuses 0 for either). */
export function validateThresholds(rise: number, fall: number): void {
  for (const [name, value] of [['rise', rise], ['fall', fall]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new LbError('LB_ERR_INVALID_ARGUMENT', `health check ${name} must be an integer >= 1, got ${String(value)}`);
    }
  }
}

/** The state a newly checked backend starts in. Throws LbError on bad thresholds. */
export function initialState(init: InitialHealth, rise: number, fall: number): HealthState {
  validateThresholds(rise, fall);
  switch (init) {
    case 'fully-up':
      return { health: 'up', streak: 0 };
    case 'up':
      return { health: 'up', streak: fall - 1 };
    case 'down':
      return { health: 'down', streak: rise - 1 };
    case 'fully-down':
      return { health: 'down', streak: 0 };
    default: {
      const never: never = init;
      throw new LbError('LB_ERR_INVALID_ARGUMENT', `unknown initial health "${String(never)}"`);
    }
  }
}

/**
 * The state after one result. Pure and O(1). Precondition: rise, fall >= 1 and
 * 0 <= state.streak < (state.health === 'up' ? fall : rise), which every state produced by
 * `initialState` and `next` satisfies; a streak out of range is clamped rather than trusted.
 */
export function next(state: HealthState, passed: boolean, rise: number, fall: number): HealthState {
  switch (state.health) {
    case 'up': {
      if (passed) return state.streak === 0 ? state : { health: 'up', streak: 0 };
      const streak = state.streak + 1;
      return streak >= fall ? { health: 'down', streak: 0 } : { health: 'up', streak };
    }
    case 'down': {
      if (!passed) return state.streak === 0 ? state : { health: 'down', streak: 0 };
      const streak = state.streak + 1;
      return streak >= rise ? { health: 'up', streak: 0 } : { health: 'down', streak };
    }
    default: {
      const never: never = state.health;
      throw new LbError('LB_ERR_INVALID_ARGUMENT', `unknown health "${String(never)}"`);
    }
  }
}

/** Every state after each of `results`, in order (the table form the tests use). */
export function replay(start: HealthState, results: readonly boolean[], rise: number, fall: number): HealthState[] {
  const states: HealthState[] = [];
  let state = start;
  for (const passed of results) {
    state = next(state, passed, rise, fall);
    states.push(state);
  }
  return states;
}
