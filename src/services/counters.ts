/**
 * Live counts of a service's backends, kept by backend name across plans: a reload builds a new
 * plan, but the connections a backend already holds still count against its `maxConnections` and
 * in leastconn and bounded-load decisions. The data path (src/proxy) moves the numbers; the
 * strategies (src/services/strategy.ts) read them through a LoadView.
 */
import type { LoadView } from '../hashing/index.js';

/** Live counts of one backend, kept across reloads by name (its open connections outlive a reload). */
export class BackendCounters {
  current = 0;
  total = 0;
  failures = 0;
  bytesUp = 0;
  bytesDown = 0;
}

/** A service's backend counters by name: entries are made on first use and never dropped while the service runs. */
export class ServiceLoads implements LoadView {
  private readonly byName = new Map<string, BackendCounters>();

  /** The counters of backend `name`, made on first use. O(1). */
  of(name: string): BackendCounters {
    let counters = this.byName.get(name);
    if (counters === undefined) {
      counters = new BackendCounters();
      this.byName.set(name, counters);
    }
    return counters;
  }

  /** Open connections of backend `name` (0 for a name never seen). O(1). */
  loadOf(name: string): number {
    return this.byName.get(name)?.current ?? 0;
  }
}
