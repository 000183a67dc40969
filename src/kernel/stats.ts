/**
 * The rows of /stats `kernel` (and so of `l4lb status` and the l4lb_kernel_* metrics), one per
 * service a kernel table serves. Rows of different modes hold different things, so they are
 * different types: nat rows carry nft counters and conntrack, dsr rows the pins of flows_ID.
 */
import type { AdminState } from '../config/index.js';

/** What every backend row of /stats `kernel` has, whatever the mode. */
interface KernelBackendRow {
  name: string;
  address: string;
  state: AdminState;
  health: 'up' | 'down';
  /** Slots of the loaded slot map that name it now. */
  slots: number;
}

/** One backend's row of a `mode: nat` service: its nft counter (client → backend). */
export interface KernelBackendStats extends KernelBackendRow {
  packets: number;
  bytes: number;
}

/**
 * One backend's row of a `mode: dsr` service. The director's ruleset has no per-backend counters
 * (a packet's backend is chosen by a map lookup in one rule), so there are no packets or bytes
 * here; `pins` is how many pinned flows in `flows_ID` name it now (absent when nft could not list it).
 */
export interface DsrBackendStats extends KernelBackendRow {
  pins?: number;
}

/** One `mode: nat` service's row of /stats `kernel`. */
export interface NatKernelStats {
  service: string;
  mode: 'nat';
  table: string;
  vip: string;
  slots: number;
  backends: KernelBackendStats[];
  conntrack?: number;
}

/** One `mode: dsr` service's row of /stats `kernel`: `pins`, the entries of its `flows_ID`. */
export interface DsrKernelStats {
  service: string;
  mode: 'dsr';
  table: string;
  vip: string;
  slots: number;
  backends: DsrBackendStats[];
  pins?: number;
}

/** One service's row of /stats `kernel`. */
export type KernelServiceStats = NatKernelStats | DsrKernelStats;

