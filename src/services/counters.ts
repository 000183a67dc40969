/**
 * Live counts of a service's backends, kept by backend name across plans: a reload builds a new
 * plan, but the connections a backend already holds still count against its `maxConnections` and
 * in leastconn and bounded-load decisions. The data path (src/proxy) moves the numbers through
 * `acquire`/`release`; the strategies (src/services/strategy.ts) read them through a LoadView.
 *
 * Bounded loads need L, the sum of the current plan's backends' loads, at every pick. HAProxy
 * keeps it as a running count (the proxy's `served`); so does ServiceLoads: each backend knows
 * whether it belongs to the current plan, and a change of its count moves the running total by
 * the same amount. A reload recomputes the total once (O(backends)). A backend removed by a reload
 * still drains its connections without counting in L, exactly as the summing path would have it.
 */
import type { LoadView } from '../hashing/index.js';

/** Live counts of one backend, kept across reloads by name (its open connections outlive a reload). */
export class BackendCounters {
  private open = 0;
  total = 0;
  failures = 0;
  bytesUp = 0;
  bytesDown = 0;
  /** Whether this backend is in its service's current plan (then `open` is part of the running total). */
  member = false;

  constructor(private readonly service: ServiceLoads) {}

  /** Connections held now: connecting or spliced. */
  get current(): number {
    return this.open;
  }

  /** A connection takes a slot on this backend (a connect starts). O(1). */
  acquire(): void {
    this.open++;
    this.total++;
    if (this.member) this.service.running++;
  }

  /** A connection gives its slot back (its connect failed, or it ended). Pre: acquire() was called for it. O(1). */
  release(): void {
    this.open--;
    if (this.member) this.service.running--;
  }
}

/** A service's backend counters by name: entries are made on first use and never dropped while the service runs. */
export class ServiceLoads implements LoadView {
  private readonly byName = new Map<string, BackendCounters>();
  /** Σ current over the current plan's backends; moved by BackendCounters. */
  running = 0;
  /** The plan in service's backends; until a runtime says (setMembers), every backend seen. */
  private members: ReadonlySet<string> | 'all' = 'all';

  /** The counters of backend `name`, made on first use. O(1). */
  of(name: string): BackendCounters {
    let counters = this.byName.get(name);
    if (counters === undefined) {
      counters = new BackendCounters(this);
      counters.member = this.members === 'all' || this.members.has(name);
      this.byName.set(name, counters);
    }
    return counters;
  }

  /**
   * Makes `names` the backends of the plan in service and recomputes the running total, once,
   * when that plan is put in service. O(backends ever seen).
   */
  setMembers(names: ReadonlySet<string>): void {
    this.members = names;
    this.running = 0;
    for (const [name, counters] of this.byName) {
      counters.member = names.has(name);
      if (counters.member) this.running += counters.current;
    }
  }

  /** Open connections of backend `name` (0 for a name never seen). O(1). */
  loadOf(name: string): number {
    return this.byName.get(name)?.current ?? 0;
  }

  /** Σ loadOf over the current plan's backends. O(1). */
  total(): number {
    return this.running;
  }
}
