/**
 * Time as a dependency: what reads the time or waits (idle sweeps, queue timeouts, header
 * timeouts, rate limits, and later health checks and drains) takes a `Clock` instead of calling
 * performance.now() and the timer functions itself, so tests drive time with a `ManualClock`
 * instead of sleeping. `systemClock` is the real one. A leaf module: it imports nothing of l4lb.
 *
 * Timers are opaque handles given back to the clock that made them: the system clock's handles
 * are Node's own Timeout objects, so injecting a clock costs no wrapper object per timer.
 */
import { performance } from 'node:perf_hooks';

declare const timerBrand: unique symbol;

/** A timer made by a clock; only that clock's `clearTimer` and `unref` take it. */
export interface TimerHandle {
  readonly [timerBrand]: 'TimerHandle';
}

export interface Clock {
  /** Milliseconds on a monotonic scale with an arbitrary origin (performance.now() for the system clock). */
  now(): number;
  /** Calls `callback()` once, `delayMs` from now. */
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  /** Calls `callback(arg)` once, `delayMs` from now (an argument instead of a closure: no allocation per timer). */
  setTimeout<A>(callback: (arg: A) => void, delayMs: number, arg: A): TimerHandle;
  /** Calls `callback()` every `periodMs` until cleared. */
  setInterval(callback: () => void, periodMs: number): TimerHandle;
  /** Cancels a timer of this clock; undefined, fired and already cleared timers are ignored. */
  clearTimer(timer: TimerHandle | undefined): void;
  /** Lets the process exit while `timer` is pending (Node's `unref`); returns it. */
  unref(timer: TimerHandle): TimerHandle;
}

/** Node's timers are the system clock's handles (see the file header): these two casts are the only place that knows. */
function handleOf(timer: NodeJS.Timeout): TimerHandle {
  return timer as unknown as TimerHandle;
}

function timeoutOf(handle: TimerHandle): NodeJS.Timeout {
  return handle as unknown as NodeJS.Timeout;
}

class SystemClock implements Clock {
  now(): number {
    return performance.now();
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  setTimeout<A>(callback: (arg: A) => void, delayMs: number, arg: A): TimerHandle;
  setTimeout(callback: (arg?: unknown) => void, delayMs: number, arg?: unknown): TimerHandle {
    // Node allocates an argument array only when it is given an argument: pass one only if there is one.
    return handleOf(arg === undefined ? setTimeout(callback, delayMs) : setTimeout(callback, delayMs, arg));
  }

  setInterval(callback: () => void, periodMs: number): TimerHandle {
    return handleOf(setInterval(callback, periodMs));
  }

  clearTimer(timer: TimerHandle | undefined): void {
    // clearTimeout clears intervals too (Node: one timer list for both).
    if (timer !== undefined) clearTimeout(timeoutOf(timer));
  }

  unref(timer: TimerHandle): TimerHandle {
    timeoutOf(timer).unref();
    return timer;
  }
}

/** The process's clock: performance.now() and Node's timers. */
export const systemClock: Clock = new SystemClock();

/** A ManualClock's timer; it is the handle itself. */
class ManualTimer implements TimerHandle {
  declare readonly [timerBrand]: 'TimerHandle';
  constructor(
    /** When it fires next, on its clock's scale. */
    public due: number,
    /** 0: fires once; else its interval. */
    readonly periodMs: number,
    readonly fire: () => void,
    /** Creation order: timers due at the same time fire in the order they were made, as Node's do. */
    readonly sequence: number,
  ) {}
}

/** Node runs a timer of less than 1 ms (or NaN) after 1 ms; a manual clock does the same. */
function delayOf(ms: number): number {
  return ms >= 1 ? ms : 1;
}

/**
 * A clock that moves only when told: `advance(ms)` runs every timer that falls due on the way, in
 * time order, with `now()` set to each one's due time while it runs. For tests; deterministic.
 */
export class ManualClock implements Clock {
  private time: number;
  private timers: ManualTimer[] = [];
  private made = 0;
  private scheduledWaiters: (() => void)[] = [];

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  setTimeout<A>(callback: (arg: A) => void, delayMs: number, arg: A): TimerHandle;
  setTimeout(callback: (arg?: unknown) => void, delayMs: number, arg?: unknown): TimerHandle {
    return this.add(new ManualTimer(this.time + delayOf(delayMs), 0, () => callback(arg), this.made++));
  }

  setInterval(callback: () => void, periodMs: number): TimerHandle {
    const period = delayOf(periodMs);
    return this.add(new ManualTimer(this.time + period, period, callback, this.made++));
  }

  clearTimer(timer: TimerHandle | undefined): void {
    const index = timer instanceof ManualTimer ? this.timers.indexOf(timer) : -1;
    if (index >= 0) this.timers.splice(index, 1);
  }

  unref(timer: TimerHandle): TimerHandle {
    return timer;
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.timers.length;
  }

  /** Resolves once the next timer is set (after this call): a test's way to wait until the code under test starts waiting. */
  nextTimer(): Promise<void> {
    return new Promise((resolve) => this.scheduledWaiters.push(resolve));
  }

  /**
   * Moves time forward by `ms` (>= 0), running each timer that falls due, earliest first; timers
   * that callbacks set are run too if they fall due within the step. A callback's exception
   * propagates, time then stays at that timer's due time.
   */
  advance(ms: number): void {
    const target = this.time + ms;
    for (let next = this.earliest(target); next !== undefined; next = this.earliest(target)) {
      this.time = next.due;
      if (next.periodMs > 0) next.due += next.periodMs;
      else this.timers.splice(this.timers.indexOf(next), 1);
      next.fire();
    }
    this.time = target;
  }

  private add(timer: ManualTimer): TimerHandle {
    this.timers.push(timer);
    const waiters = this.scheduledWaiters;
    if (waiters.length > 0) {
      this.scheduledWaiters = [];
      for (const wake of waiters) wake();
    }
    return timer;
  }

  private earliest(limit: number): ManualTimer | undefined {
    let found: ManualTimer | undefined;
    for (const timer of this.timers) {
      if (timer.due > limit) continue;
      if (found === undefined || timer.due < found.due || (timer.due === found.due && timer.sequence < found.sequence)) found = timer;
    }
    return found;
  }
}
