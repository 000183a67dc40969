/**
 * src/clock.ts: the manual clock runs timers in time order (creation order on ties), intervals
 * until cleared, timers that callbacks set within the same step, and tells a test when the code
 * under test starts waiting; the system clock's timers pass their argument and can be cleared.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock, systemClock } from '../src/clock.js';

describe('ManualClock', () => {
  it('runs due timers in time order, creation order on ties, each with now() at its due time', () => {
    const clock = new ManualClock(1000);
    const fired: [string, number][] = [];
    const note = (name: string): void => {
      fired.push([name, clock.now()]);
    };
    clock.setTimeout(note, 30, 'c');
    clock.setTimeout(note, 10, 'a');
    clock.setTimeout(note, 30, 'd');
    clock.setTimeout(() => note('b'), 20);
    clock.advance(29);
    expect(fired).toEqual([
      ['a', 1010],
      ['b', 1020],
    ]);
    expect(clock.now()).toBe(1029);
    clock.advance(1);
    expect(fired.slice(2)).toEqual([
      ['c', 1030],
      ['d', 1030],
    ]);
    expect(clock.pending).toBe(0);
  });

  it('repeats an interval until it is cleared, also from its own callback', () => {
    const clock = new ManualClock();
    const at: number[] = [];
    const timer = clock.setInterval(() => {
      at.push(clock.now());
      if (at.length === 3) clock.clearTimer(timer);
    }, 25);
    clock.advance(1000);
    expect(at).toEqual([25, 50, 75]);
    expect(clock.pending).toBe(0);
  });

  it('runs a timer set by a callback in the same step when it falls due within it; a cleared one never', () => {
    const clock = new ManualClock();
    const fired: number[] = [];
    const cleared = clock.setTimeout(() => fired.push(-1), 50);
    clock.setTimeout(() => clock.setTimeout(() => fired.push(clock.now()), 15), 10);
    clock.clearTimer(cleared);
    clock.clearTimer(undefined);
    clock.advance(100);
    expect(fired).toEqual([25]);
  });

  it('treats delays below 1 ms as 1 ms, as Node does', () => {
    const clock = new ManualClock();
    let fired = false;
    clock.setTimeout(() => (fired = true), 0);
    clock.advance(0);
    expect(fired).toBe(false);
    clock.advance(1);
    expect(fired).toBe(true);
  });

  it('nextTimer() resolves once something starts waiting', async () => {
    const clock = new ManualClock();
    const waiting = clock.nextTimer();
    queueMicrotask(() => clock.setTimeout(() => {}, 5));
    await waiting;
    expect(clock.pending).toBe(1);
  });
});

describe('systemClock', () => {
  it('passes the argument to the callback, and a cleared timer does not fire', async () => {
    const cleared = systemClock.setTimeout(() => {
      throw new Error('a cleared timer fired');
    }, 1);
    systemClock.clearTimer(cleared);
    const before = systemClock.now();
    const got = await new Promise<string>((resolve) => systemClock.unref(systemClock.setTimeout(resolve, 1, 'the argument')));
    expect(got).toBe('the argument');
    expect(systemClock.now()).toBeGreaterThanOrEqual(before);
  });
});
