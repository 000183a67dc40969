/**
 * What a runtime is to the lifecycle driver (src/runtime/lifecycle.ts): something that serves a
 * configuration, can take a new one, and stops by draining. One process (src/runtime/single.ts)
 * and a cluster primary with its workers (src/cluster/runtime.ts) implement it; signals, reload
 * coalescing, the admin API and the log lines are written once, in the driver.
 */
import type { AdminTarget } from '../admin/index.js';
import type { Config, Endpoint } from '../config/index.js';
import type { HandoverSockets } from './handover.js';

/** One service's listener, for the 'listening' line. */
export interface Listening {
  readonly service: string;
  readonly listen: Endpoint;
  readonly backends: number;
}

/** Why a runtime stops: asked to (SIGTERM, SIGINT), or a new l4lb took its sockets over (upgrade). */
export type StopReason = 'stop' | 'handover';

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
   * for up to `drainMs`. A second call ends the open connections at once. `reason` 'handover': a
   * new l4lb has taken the listening sockets over (an upgrade), so whatever this runtime set up
   * outside the process for its services (kernel tables of `mode: nat`/`dsr` services) must be
   * left as it is for the new one: only this process's own sockets and connections end.
   */
  stop(drainMs: number, reason?: StopReason): Promise<void>;
  /**
   * The listening sockets of every proxy service, as fds of this process, for a new l4lb to take
   * over (src/runtime/handover.ts). Rejects with LbError when they cannot be had (no cluster
   * worker is running).
   */
  handoverSockets(): Promise<HandoverSockets>;
  /**
   * SIGUSR1, beside the driver reopening this process's log files: a cluster forwards it to its
   * workers, each of which reopens its own. One process has nothing more to do.
   */
  reopenLogs?(): void;
  /** Resolves once everything has ended: connections drained, workers exited, checks stopped. */
  stopped(): Promise<void>;
}
