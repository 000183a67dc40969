/**
 * Idle timeouts for spliced connections, from one timer per sweeper (timers coalesced): the
 * process has one, `idleSweeper`, on the system clock, shared by every service; a test gives a
 * service its own on a ManualClock. A connection stamps `lastActive` (on the sweeper's clock)
 * when it moves bytes; one interval, unreferenced, ends those that have been quiet for their
 * timeout. Compared with a Node socket timer per connection, refreshed on every read and write,
 * this saves a Timeout object per connection (about 230 bytes of heap) and a timer-list
 * re-insertion per chunk.
 *
 * Precision: a connection ends between its timeout and its timeout plus one period after its last
 * byte, never earlier. The period is a quarter of the shortest timeout being watched, between 10 ms
 * and 1 s (HAProxy's `timeout client` is checked by its scheduler with similar slack).
 */
import { systemClock, type Clock, type TimerHandle } from '../clock.js';

export interface IdleWatched {
  /** The sweeper's `clock.now()` at the last byte moved either way. */
  readonly lastActive: number;
  /** Pre: > 0. */
  readonly idleTimeoutMs: number;
  /** Quiet for its timeout: end it (and stop watching it). */
  idleExpired(): void;
}

const MIN_PERIOD_MS = 10;
const MAX_PERIOD_MS = 1000;

export class IdleSweeper {
  private readonly watched = new Set<IdleWatched>();
  private timer: TimerHandle | undefined;
  private periodMs = MAX_PERIOD_MS;

  /** `clock`: what `lastActive` stamps are read on, and what runs the sweeps. */
  constructor(readonly clock: Clock) {}

  /** Number of connections watched (for tests and stats). */
  get size(): number {
    return this.watched.size;
  }

  /** Cost: O(1), plus a timer (re)start when the first one arrives or the period shrinks. */
  watch(item: IdleWatched): void {
    this.watched.add(item);
    const period = Math.min(MAX_PERIOD_MS, Math.max(MIN_PERIOD_MS, Math.floor(item.idleTimeoutMs / 4)));
    if (this.timer === undefined || period < this.periodMs) this.start(period);
  }

  /** Cost: O(1); the timer stops with the last one. */
  unwatch(item: IdleWatched): void {
    if (this.watched.delete(item)) this.stopIfEmpty();
  }

  private stopIfEmpty(): void {
    if (this.watched.size > 0 || this.timer === undefined) return;
    this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.periodMs = MAX_PERIOD_MS;
  }

  private start(periodMs: number): void {
    this.clock.clearTimer(this.timer);
    this.periodMs = periodMs;
    this.timer = this.clock.unref(this.clock.setInterval(this.sweep, periodMs));
  }

  /** Cost: O(watched) per period: a subtraction and a compare each. */
  private readonly sweep = (): void => {
    const now = this.clock.now();
    for (const item of this.watched) {
      if (now - item.lastActive >= item.idleTimeoutMs) {
        this.watched.delete(item);
        item.idleExpired();
      }
    }
    this.stopIfEmpty();
  };
}

/** The process's sweeper, on the system clock: every service's unless it is given another. */
export const idleSweeper = new IdleSweeper(systemClock);
