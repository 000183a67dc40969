/**
 * What a runtime is to the lifecycle driver (src/runtime/lifecycle.ts): something that serves a
 * configuration, can take a new one, and stops by draining. One process (src/runtime/single.ts)
 * and a cluster primary with its workers (src/cluster/runtime.ts) implement it; signals, reload
 * coalescing, the admin API and the log lines are written once, in the driver.
 */
import type { AdminTarget } from '../admin/index.js';
import type { Config, Endpoint } from '../config/index.js';

/** One service's listener, for the 'listening' line. */
export interface Listening {
  readonly service: string;
  readonly listen: Endpoint;
  readonly backends: number;
}

/** How a reload ended when it was not refused as a whole. */
export type ReloadOutcome =
  /** Every process runs the new configuration. */
  | 'applied'
  /** Some cluster workers refused it (each logged why): they keep the previous one. */
  | 'partial';

export interface Runtime {
  /** Processes serving connections: 1, or the cluster's workers. */
  readonly workers: number;
  /** Fields every lifecycle line of this runtime carries (a cluster adds `workers`). */
  readonly logFields: Readonly<Record<string, number>>;
  /** What the admin API reads and changes. */
  readonly admin: AdminTarget;
  /** The services listening now. */
  listening(): Listening[];
  /**
   * Applies a configuration that loaded and validated. Rejects with an LbError, the running
   * configuration untouched, when it is refused as a whole (a port that cannot be bound, a name
   * that resolves nowhere).
   */
  reload(next: Config, previous: Config): Promise<ReloadOutcome>;
  /**
   * Stops accepting: resolves once no listener accepts any more, while open connections drain
   * for up to `drainMs`. A second call ends the open connections at once.
   */
  stop(drainMs: number): Promise<void>;
  /**
   * SIGUSR1, beside the driver reopening this process's log files: a cluster forwards it to its
   * workers, each of which reopens its own. One process has nothing more to do.
   */
  reopenLogs?(): void;
  /** Resolves once everything has ended: connections drained, workers exited, checks stopped. */
  stopped(): Promise<void>;
}
