/**
 * Where a proxy benchmark run's paths run: network namespaces, because conntrack is per namespace.
 * Once a table that uses conntrack is loaded in a namespace, every flow in it is tracked, so the
 * rest (direct, l4lb, HAProxy, nginx) run in one that loads no nft table (`plain`), and each path
 * that pays conntrack by design (`direct-ct`, `kernel`) in a namespace of its own.
 *
 * Those two must not share one: their clients reach the same backend port from the same source
 * ports, so each path's flows meet the TIME_WAIT sockets the other left at the backend (60 s) under
 * a different client tuple (the VIP's port against the backend's). This kernel gives each
 * connection a timestamp offset of its own (different tsvals for two connections from the same
 * source port), so about half of those SYNs were older than the TIME_WAIT's last timestamp and were
 * refused by PAWS (TcpExtPAWSTimewait rose with TcpExtTCPSynRetrans), each stalling a connection
 * for the one-second SYN retransmission: one shared namespace measured the kernel path at 225–6,116
 * new connections/s after direct-ct had run, and 20,400 alone.
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

/** The paths whose flows conntrack tracks by design: they load nft tables that turn it on. */
export const TRACKED_PATHS = ['direct-ct', 'kernel'] as const satisfies readonly PathName[];
export type TrackedPath = (typeof TRACKED_PATHS)[number];

/** `plain`, or the tracked path that has the namespace to itself. */
export type PlaceName = 'plain' | TrackedPath;

/** The order places are opened in (so the plain namespace's backends start first). */
export const PLACE_ORDER: readonly PlaceName[] = ['plain', ...TRACKED_PATHS];

function isTracked(path: PathName): path is TrackedPath {
  return (TRACKED_PATHS as readonly PathName[]).includes(path);
}

export function placeOf(path: PathName): PlaceName {
  return isTracked(path) ? path : 'plain';
}

/** The namespace name's suffix for a place: none for plain, `ct` for direct-ct, `nat` for kernel. */
const ROLE: Record<TrackedPath, string> = { 'direct-ct': 'ct', kernel: 'nat' };

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
   * Creates `name`'s namespace (`l4lb-bench-PID` for plain, `l4lb-bench-PID-ct` for direct-ct,
   * `l4lb-bench-PID-nat` for kernel) and its
   * group, and starts its backends. What was made is registered before anything can fail, so
   * closeAll() removes it whether or not this resolves.
   */
  async open(name: PlaceName, taken: Set<number>, benchDir: string): Promise<BenchPlace> {
    if (this.closing) throw new Error('BenchPlaces.open after closeAll');
    const namespace = BenchNamespace.create(name === 'plain' ? undefined : ROLE[name]);
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
