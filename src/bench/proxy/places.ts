/**
 * Where a proxy benchmark run's paths run: two network namespaces, because conntrack is per
 * namespace. Once a table that uses conntrack is loaded in a namespace, every flow in it is tracked,
 * so the paths that pay conntrack by design (`direct-ct`, `kernel`) run in a namespace of their own
 * (`tracked`), and the rest (direct, l4lb, HAProxy, nginx) in one that loads no nft table (`plain`).
 *
 * Each place has its own ProcessGroup and its own copy of the backends (iperf3 server, nginx HTTP
 * backend, idle server), and a path's load generators run in the path's place: client, path and
 * backend always share one namespace. Both are created the same way and measured in the same run,
 * interleaved, so ratios across them (kernel against direct-ct and HAProxy) stay within one run.
 */
import type { BackendPorts } from './configs.js';
import { BenchNamespace } from './netns.js';
import { ProcessGroup } from './procs.js';
import type { PathName } from './report.js';
import { startBackends } from './setup.js';

export type PlaceName = 'plain' | 'tracked';

/** The paths whose flows conntrack tracks by design: they load nft tables that turn it on. */
export const TRACKED_PATHS: readonly PathName[] = ['direct-ct', 'kernel'];

export function placeOf(path: PathName): PlaceName {
  return TRACKED_PATHS.includes(path) ? 'tracked' : 'plain';
}

/** One namespace, the processes started in it, and the backends they front. */
export interface BenchPlace {
  readonly name: PlaceName;
  readonly namespace: BenchNamespace;
  readonly group: ProcessGroup;
  readonly backends: BackendPorts;
}

export class BenchPlaces {
  private readonly namespaces: BenchNamespace[] = [];
  private readonly groups: ProcessGroup[] = [];
  private readonly opened = new Map<PlaceName, BenchPlace>();
  private closing: Promise<void> | undefined;

  /**
   * Creates `name`'s namespace (`l4lb-bench-PID` for plain, `l4lb-bench-PID-ct` for tracked) and its
   * group, and starts its backends. What was made is registered before anything can fail, so
   * closeAll() removes it whether or not this resolves.
   */
  async open(name: PlaceName, taken: Set<number>, benchDir: string): Promise<BenchPlace> {
    if (this.closing) throw new Error('BenchPlaces.open after closeAll');
    const namespace = BenchNamespace.create(name === 'tracked' ? 'ct' : undefined);
    this.namespaces.push(namespace);
    const group = new ProcessGroup({ wrap: namespace.wrap, probe: (port) => namespace.probe(port) });
    this.groups.push(group);
    const backends = await startBackends(group, taken, benchDir);
    const place: BenchPlace = { name, namespace, group, backends };
    this.opened.set(name, place);
    return place;
  }

  get(name: PlaceName): BenchPlace {
    const place = this.opened.get(name);
    if (place === undefined) throw new Error(`bench place ${name} not opened`);
    return place;
  }

  all(): BenchPlace[] {
    return [...this.opened.values()];
  }

  /**
   * Stops every process of every place by PID, then deletes the namespaces (processes first: a
   * process started with `ip netns exec` outlives `ip netns del`). Idempotent; a second call waits
   * for the first.
   */
  closeAll(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled(this.groups.map((group) => group.stopAll()));
      for (const group of this.groups) group.dispose();
      for (const namespace of this.namespaces) namespace.remove();
    })();
    return this.closing;
  }
}
