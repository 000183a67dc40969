/**
 * What the process lifecycle (src/runtime/lifecycle.ts) shows of itself to the admin API and to
 * /metrics: the running configuration's hash, the last reload's outcome, and a drain in progress.
 * The lifecycle writes it; the admin API and the metrics only read it (and ask for a reload).
 *
 * Metric names follow Prometheus's own (`prometheus_config_last_reload_successful`,
 * `…_last_reload_success_timestamp_seconds`), under the `l4lb_` prefix.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { UpgradeError } from '../errors.js';
import { MonotonicFeed } from './feed.js';
import type { ServiceStatusStats } from '../proxy/index.js';

/** How a reload ended: applied everywhere, refused as a whole, or refused by some cluster workers. */
export type ReloadResult = 'success' | 'failure' | 'partial';
export const RELOAD_RESULTS: readonly ReloadResult[] = ['success', 'failure', 'partial'];

export interface ReloadRecord {
  /** When it ended (ISO 8601). */
  readonly at: string;
  readonly result: ReloadResult;
  /** What asked for it. */
  readonly trigger: 'SIGHUP' | 'admin API';
  /** sha256 (hex) of the file's bytes as read; null when the file could not be read. */
  readonly hash: string | null;
  /** The error's code when refused (LB_ERR_CONFIG, LB_ERR_LISTEN, …). */
  readonly code?: string;
  /** Why it was refused, one line each; empty on success. */
  readonly problems: readonly string[];
}

/** The configuration running now. */
export interface RunningConfig {
  readonly file: string;
  /** sha256 (hex) of the file's bytes it was loaded from. */
  readonly hash: string;
  /** When it was loaded (ISO 8601): start-up or the last successful reload. */
  readonly loadedAt: string;
}

/** A stop in progress: listeners closed, open connections draining until `deadline` (epoch ms). */
export interface DrainRecord {
  readonly signal: string;
  readonly since: number;
  readonly deadline: number;
}

/** A drain as /stats shows it. */
export interface DrainStatus {
  readonly signal: string;
  readonly since: string;
  readonly deadline: string;
  /** Milliseconds until open connections are ended (0 once past). */
  readonly remainingMs: number;
  /** Connections still open, over every service. */
  readonly connections: number;
}

/** What a reload request answers when none ran: l4lb began stopping first. */
export type ReloadAbandoned = 'abandoned';

/** How an upgrade ended: a new l4lb serves (this one drains), or this one serves on. */
export type UpgradeOutcome =
  | {
      readonly result: 'success';
      /** The new l4lb's PID (the pidfile names it). */
      readonly pid: number;
      /** This process's PID: it drains and exits. */
      readonly previous: number;
      /** From starting the new l4lb to its ready message. */
      readonly readyMs: number;
    }
  | { readonly result: 'failure'; readonly error: UpgradeError };

export interface LifecycleView {
  running(): RunningConfig;
  lastReload(): ReloadRecord | null;
  /** Reloads since start, by result. */
  reloadCounts(): Readonly<Record<ReloadResult, number>>;
  /** Epoch ms of the last successful reload, or of the start if none. */
  lastSuccess(): number;
  drain(): DrainRecord | null;
  /**
   * Re-reads the file and applies it, as SIGHUP does and coalesced with it: resolves with the
   * outcome of the first reload that reads the file after this call.
   */
  reload(): Promise<ReloadRecord | ReloadAbandoned>;
  /**
   * Starts a new l4lb on this one's listening sockets, as SIGUSR2 does and coalesced with it:
   * resolves once the new one is ready (this one then drains) or has failed (this one serves on).
   */
  upgrade(): Promise<UpgradeOutcome>;
}

/** Connections still open, summed over services. */
export function openConnections(services: readonly ServiceStatusStats[]): number {
  let open = 0;
  for (const service of services) open += service.current;
  return open;
}

/** The drain as /stats shows it, at wall-clock time `now` (epoch ms). Pure. */
export function drainStatus(drain: DrainRecord, services: readonly ServiceStatusStats[], now: number): DrainStatus {
  return {
    signal: drain.signal,
    since: new Date(drain.since).toISOString(),
    deadline: new Date(drain.deadline).toISOString(),
    remainingMs: Math.max(0, drain.deadline - now),
    connections: openConnections(services),
  };
}

/** Registers the reload and drain metrics in `registry`; `refresh` sets them from one scrape's stats. */
export function lifecycleMetrics(registry: Registry, view: LifecycleView): { refresh(services: readonly ServiceStatusStats[]): void } {
  const registers = [registry];
  const reloads = new Counter({ name: 'l4lb_config_reloads_total', help: 'Configuration reloads (SIGHUP or POST /reload) by result: success, failure (refused, the previous configuration kept) or partial (some workers refused)', labelNames: ['result'] as const, registers });
  const lastSuccessful = new Gauge({ name: 'l4lb_config_last_reload_successful', help: '1 when the last reload succeeded (or none was tried), 0 when it was refused or some workers refused it', registers });
  const lastSuccess = new Gauge({ name: 'l4lb_config_last_reload_success_timestamp_seconds', help: 'Time of the last successful reload, or of the start', registers });
  const configInfo = new Gauge({ name: 'l4lb_config_info', help: 'Always 1; sha256 is the hash of the running configuration file', labelNames: ['sha256'] as const, registers });
  const draining = new Gauge({ name: 'l4lb_draining', help: '1 while stopping: listeners closed, open connections draining', registers });
  const drainConnections = new Gauge({ name: 'l4lb_drain_connections', help: 'Connections left to drain (0 when not stopping)', registers });
  const drainDeadline = new Gauge({ name: 'l4lb_drain_deadline_timestamp_seconds', help: 'When open connections are ended if still open (0 when not stopping)', registers });

  const reloadFeed = new MonotonicFeed(reloads);
  for (const result of RELOAD_RESULTS) reloadFeed.set({ result }, 0);

  return {
    refresh: (services) => {
      const counts = view.reloadCounts();
      for (const result of RELOAD_RESULTS) reloadFeed.set({ result }, counts[result]);
      const last = view.lastReload();
      lastSuccessful.set(last === null || last.result === 'success' ? 1 : 0);
      lastSuccess.set(view.lastSuccess() / 1000);
      configInfo.reset();
      configInfo.set({ sha256: view.running().hash }, 1);
      const drain = view.drain();
      draining.set(drain === null ? 0 : 1);
      drainConnections.set(drain === null ? 0 : openConnections(services));
      drainDeadline.set(drain === null ? 0 : drain.deadline / 1000);
    },
  };
}
