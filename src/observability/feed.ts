/**
 * Prometheus counters fed from running totals: the balancer and the lifecycle keep counts that
 * only grow; a scrape adds to the counter what the count gained since the last one.
 */
import type { Counter, LabelValues } from 'prom-client';

/** A counter fed from a monotonic source value: each refresh adds what the source gained. */
export class MonotonicFeed<L extends string> {
  private readonly children = new Map<string, { inc(value: number): void; last: number }>();
  constructor(private readonly counter: Counter<L>) {}

  /** Pre: `value` never decreases for one label set (the balancer's counters do not). */
  set(labels: LabelValues<L>, value: number): void {
    const key = JSON.stringify(labels);
    let child = this.children.get(key);
    if (child === undefined) {
      const handle = this.counter.labels(labels);
      child = { inc: (amount: number) => handle.inc(amount), last: 0 };
      this.children.set(key, child);
      handle.inc(0); // the series exists from its first scrape, at 0
    }
    if (value > child.last) {
      child.inc(value - child.last);
      child.last = value;
    }
  }
}
