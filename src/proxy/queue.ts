/**
 * Connection limits outside the balancing algorithms (gobetween's middleware habit): a service's
 * bounded wait queue, and the counters that say whether a service or a backend has room.
 *
 * HAProxy's model: a connection beyond `maxconn` waits in a queue for at most `timeout queue`,
 * then is refused. The queue is bounded in time (timeouts.queue) and in length (`capacity`, here
 * the service's maxConnections), so an overload never grows memory without limit.
 */
import type { Clock, TimerHandle } from '../clock.js';
import { REJECTIONS, type Rejection } from './rejections.js';

/**
 * FIFO of waiters, each with its own expiry timer on the queue's clock (only connections that
 * actually wait pay for a timer). The queue owns the timers and keeps them beside the waiters: a
 * waiter can be any object, and the queue writes nothing on it. Pre: a waiter is in at most one
 * queue. Cost: O(1) push and shift (amortised), O(n) remove.
 */
export class WaitQueue<W extends object> {
  private items: (W | undefined)[] = [];
  /** `timers[i]` expires `items[i]`. */
  private timers: (TimerHandle | undefined)[] = [];
  private head = 0;
  private count = 0;

  constructor(
    private capacity: number,
    private timeoutMs: number,
    private readonly onExpire: (waiter: W) => void,
    private readonly clock: Clock,
  ) {}

  get length(): number {
    return this.count;
  }

  /** New limits apply to waiters that join from now on. */
  setLimits(capacity: number, timeoutMs: number): void {
    this.capacity = capacity;
    this.timeoutMs = timeoutMs;
  }

  /** Queues `waiter`, to expire `timeoutMs` from now; false (nothing queued) when the queue is full or waiting is disabled (timeout 0). */
  push(waiter: W): boolean {
    if (this.count >= this.capacity || this.timeoutMs <= 0) return false;
    this.timers.push(this.clock.setTimeout(this.expire, this.timeoutMs, waiter));
    this.items.push(waiter);
    this.count++;
    return true;
  }

  /** The longest-waiting waiter, without removing it. */
  peek(): W | undefined {
    while (this.head < this.items.length && this.items[this.head] === undefined) this.head++;
    return this.items[this.head];
  }

  /** Removes and returns the longest-waiting waiter, its timer cleared. */
  shift(): W | undefined {
    const waiter = this.peek();
    if (waiter === undefined) return undefined;
    this.detach(this.head++);
    this.compact();
    return waiter;
  }

  /** Removes `waiter` if queued (a client that left); true if it was. */
  remove(waiter: W): boolean {
    const index = this.items.indexOf(waiter, this.head);
    if (index < 0) return false;
    this.detach(index);
    this.compact();
    return true;
  }

  /** Empties the queue, returning the waiters in order (shutdown). */
  drain(): W[] {
    const out: W[] = [];
    for (let waiter = this.shift(); waiter !== undefined; waiter = this.shift()) out.push(waiter);
    return out;
  }

  private detach(index: number): void {
    this.clock.clearTimer(this.timers[index]);
    this.items[index] = undefined;
    this.timers[index] = undefined;
    this.count--;
  }

  private compact(): void {
    if (this.count === 0) {
      this.items = [];
      this.timers = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.timers = this.timers.slice(this.head);
      this.head = 0;
    }
  }

  private readonly expire = (waiter: W): void => {
    if (this.remove(waiter)) this.onExpire(waiter);
  };
}

/**
 * One service's cumulative counts, kept across reloads by service name: a reload that moves the
 * service's listener makes a new ProxyService, and counters that restarted at 0 would freeze the
 * Prometheus counters fed from them (a feed only adds what a value gained).
 */
export class ServiceCounters {
  /** Connections accepted. */
  total = 0;
  /** Refused for want of a slot (queue full or queue timeout). */
  refused = 0;
  /** Ended by the source rules, limits and PROXY header checks, per reason (every reason present). */
  readonly rejected = new Map<Rejection, number>(REJECTIONS.map((reason) => [reason, 0]));
  /** Backend connects that failed on l4lb's own side, per errno code (src/proxy/local-errors.ts). */
  readonly localErrors = new Map<string, number>();
  /** Connections reset at accept while listeners were paused for a descriptor shortage. */
  pausedRefused = 0;
  /** Bytes of connections that have ended, client → backend and back. */
  closedBytesUp = 0;
  closedBytesDown = 0;
}
