/**
 * Health and administrative state of one service's backends: the one owner of it in a process,
 * whichever runtime the process is (one process, a cluster primary, a cluster worker) and whatever
 * consumes it (the proxy's gate, /stats, the cluster's broadcast). Where verdicts come from is a
 * port (VerdictSource): local checks (src/services/verdicts.ts) or another process that decided
 * them (the cluster primary, src/cluster/link.ts). gobetween's middleware and HAProxy's server
 * states are the model: the balancing algorithms never learn about health; the gate around the
 * service's chooser (src/services/gate.ts) offers only usable backends.
 *
 * - Usable = health `up` (active probes plus passive observations, HAProxy's `observe layer4`,
 *   through the pure rise/fall reducer of src/health) and admin state `active`. The two are
 *   separate fields: draining/maintenance never change health, a probe never changes the admin state.
 * - Consistent hashing keeps affinity: the gate walks the picker's own candidate order
 *   (`pick(key, attempt)`, HAProxy's `chash_get_server_hash(…, avoid)`) and skips unusable
 *   backends, so only the clients of a down backend move — to their next candidate — and they come
 *   back when it recovers, because the table itself never changes.
 * - Backups (`backup: true`) are offered only when no primary is usable (HAProxy `backup`).
 * - Slow start ramps a recovered backend by admission, not by weight: during `slowStart` a flow
 *   whose candidate is the ramping backend is admitted when u < elapsed/slowStart, where u is a
 *   hash of the flow key and the backend name in [0, 1) (a random draw for roundrobin/leastconn,
 *   which have no key). Why not weights: re-weighting Maglev or a ring means rebuilding the table
 *   on every ramp step and moves other backends' clients too; a per-key threshold moves only the
 *   recovered backend's own clients back, each once (the admitted set only grows), and the
 *   expected share grows linearly like HAProxy's `slowstart` weight ramp. Flows not yet admitted
 *   walk on to their next candidate, exactly as if the backend were still down.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { AdminState, BackendConfig, HealthCheckConfig, OnDown } from '../config/index.js';
import type { CheckResult, Health, ResultSource } from '../health/index.js';
import type { HashKey } from '../hashing/index.js';
import { outOfStep, type ResolvedAddress } from './resolve.js';

/** The last probe or passive observation of a backend, as /stats shows it. */
export interface LastCheck {
  readonly ok: boolean;
  readonly source: ResultSource;
  readonly durationMs: number;
  readonly detail: string;
  readonly at: string;
}

/**
 * What a service's state reads of its configuration: a proxy service, or a kernel one (mode: nat,
 * dsr), whose backends have no slow start.
 */
export interface StatefulServiceConfig {
  readonly name: string;
  readonly healthCheck?: HealthCheckConfig;
  readonly onDown?: OnDown;
  readonly backends: readonly Pick<BackendConfig, 'name' | 'backup' | 'slowStart' | 'state'>[];
}

/** One backend's runtime status: kept by name across reloads while the backend stays configured. */
export interface BackendStatus {
  readonly name: string;
  readonly health: Health;
  readonly admin: AdminState;
  readonly backup: boolean;
  readonly slowStartMs: number;
  /** performance.now() when the backend last became usable again (slow start), or -Infinity. */
  readonly rampStart: number;
  readonly lastCheck: LastCheck | undefined;
  /** Why the health last changed, and when (ISO 8601). */
  readonly reason: string;
  readonly since: string;
}

/** What ServiceState writes: BackendStatus plus the configured state a reload compares against. */
type MutableStatus = { -readonly [K in keyof BackendStatus]: BackendStatus[K] };
type StatusRecord = MutableStatus & { configuredState: AdminState };

export interface HealthChange {
  readonly service: string;
  readonly backend: string;
  readonly health: Health;
  readonly previous: Health;
  readonly reason: string;
}

export interface CheckEvent {
  readonly service: string;
  readonly backend: string;
  readonly source: ResultSource;
  readonly result: CheckResult;
}

export interface StateChange {
  readonly service: string;
  readonly backend: string;
  readonly state: AdminState;
  readonly previous: AdminState;
}

export interface ServiceStateEvents {
  health: [HealthChange];
  check: [CheckEvent];
  state: [StateChange];
}

/**
 * One backend's verdicts as the deciding process holds them, for a process that applies them
 * instead of deciding (a cluster worker). Plain data: it crosses IPC.
 */
export interface SharedStatus {
  readonly service: string;
  readonly backend: string;
  readonly health: Health;
  readonly admin: AdminState;
  readonly reason: string;
  readonly since: string;
  /** ms since the backend last became usable again (slow start ramps from there), or null if it never did. */
  readonly usableForMs: number | null;
}

/** What a VerdictSource may write into a service's state. */
export interface VerdictSink {
  readonly service: string;
  /** Names of the backends the state holds now. */
  backendNames(): IterableIterator<string>;
  /** A decided health (the reducer's verdict, or a check removed: up). Ignored for an unknown backend. */
  applyHealth(backend: string, health: Health, reason: string): void;
  /** A raw check result, shown in /stats and emitted as a 'check' event; the verdict comes through applyHealth. */
  recordCheck(backend: string, source: ResultSource, result: CheckResult): void;
  setState(backend: string, state: AdminState): boolean;
  /** A verdict decided elsewhere, applied whole (health, admin state, slow-start clock). */
  applyShared(shared: SharedStatus): void;
}

/** A configured admin state that changed in a reload: the deciding process applies it. */
export interface ConfiguredState {
  readonly backend: string;
  readonly state: AdminState;
}

/**
 * Where a service's verdicts come from. `configure` follows every (re)applied configuration, after
 * the state's set of backends has been updated; `observe` takes the data path's passive
 * observations; `stop` ends whatever runs (checks, a subscription).
 */
export interface VerdictSource {
  /**
   * Whether this process decides the verdicts (and so logs each change at warn/info), or applies
   * what another process decided and logged (a cluster worker: logged at debug only).
   */
  readonly decides: boolean;
  configure(check: HealthCheckConfig | undefined, backends: readonly ResolvedAddress[], changed: readonly ConfiguredState[]): void;
  observe(backend: string, passed: boolean): void;
  stop(): Promise<void>;
}

/** Makes the verdict source of service `sink.service`. */
export type VerdictSources = (sink: VerdictSink) => VerdictSource;

/** 32-bit FNV-1a of the key bytes then the name: a slot-hash-independent uniform draw in [0, 1). */
export function admissionDraw(key: HashKey, name: string): number {
  let hash = 0x811c9dc5;
  if (typeof key === 'string') for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  else for (const byte of key) hash = Math.imul(hash ^ byte, 0x01000193);
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193);
  return (hash >>> 0) / 4294967296;
}

/** Fraction of its share a backend may take now: 1 unless ramping. Pure. */
export function slowStartFraction(status: Pick<BackendStatus, 'slowStartMs' | 'rampStart'>, now: number): number {
  if (status.slowStartMs <= 0) return 1;
  const elapsed = now - status.rampStart;
  return elapsed >= status.slowStartMs ? 1 : Math.max(0, elapsed / status.slowStartMs);
}

export function isUsable(status: Pick<BackendStatus, 'health' | 'admin'>): boolean {
  return status.health === 'up' && status.admin === 'active';
}

export interface ServiceStateOptions {
  /** Where verdicts come from. */
  readonly verdicts: VerdictSources;
  /** Ends a backend's established connections (onDown: close); absent where no connection is held. */
  readonly closeBackend?: (backend: string) => void;
}

/**
 * The health and admin state of one service's backends. Outlives plans (a reload updates it).
 * Every write goes through its methods: the gate reads `statuses` and `version`, nothing else
 * writes them.
 */
export class ServiceState extends EventEmitter<ServiceStateEvents> implements VerdictSink {
  private readonly records = new Map<string, StatusRecord>();
  /** Bumped whenever usability changes; gates rebuild what depends on the usable set. */
  version = 0;
  private onDown: 'keep' | 'close' = 'keep';
  private check: HealthCheckConfig | undefined;
  private readonly source: VerdictSource;

  constructor(
    readonly service: string,
    private readonly options: ServiceStateOptions,
  ) {
    super();
    this.source = options.verdicts(this);
  }

  /** Every backend's status by name (read-only: change it through the methods). */
  get statuses(): ReadonlyMap<string, BackendStatus> {
    return this.records;
  }

  /** The health check of the last applied configuration, for /stats. */
  get healthCheck(): HealthCheckConfig | undefined {
    return this.check;
  }

  backendNames(): IterableIterator<string> {
    return this.records.keys();
  }

  /**
   * Applies a (re)loaded configuration. Pre: `backends` are resolveBackends(config), in order.
   * Kept backends keep their health, and their admin state unless the configured state changed
   * (then the verdict source decides: a deciding process applies it); new ones start in the
   * check's initial health; removed ones are forgotten.
   */
  update(config: StatefulServiceConfig, backends: readonly ResolvedAddress[]): void {
    this.onDown = config.onDown ?? 'keep';
    this.check = config.healthCheck;
    const now = new Date().toISOString();
    const initial = config.healthCheck?.initial;
    const initialHealth: Health = initial === undefined || initial === 'up' || initial === 'fully-up' ? 'up' : 'down';
    const names = new Set(backends.map((backend) => backend.name));
    for (const name of [...this.records.keys()]) if (!names.has(name)) this.records.delete(name);
    const changed: ConfiguredState[] = [];
    for (const [index, backend] of backends.entries()) {
      const configured = config.backends[index];
      if (configured === undefined) throw outOfStep(config, backend.name);
      const wanted = configured.state ?? 'active';
      const existing = this.records.get(backend.name);
      if (existing === undefined) {
        this.records.set(backend.name, {
          name: backend.name,
          health: initialHealth,
          admin: wanted,
          configuredState: wanted,
          backup: configured.backup === true,
          slowStartMs: configured.slowStart ?? 0,
          rampStart: -Infinity,
          lastCheck: undefined,
          reason: config.healthCheck === undefined ? 'not checked' : `initial state ${config.healthCheck.initial}`,
          since: now,
        });
        continue;
      }
      existing.backup = configured.backup === true;
      existing.slowStartMs = configured.slowStart ?? 0;
      if (wanted !== existing.configuredState) {
        existing.configuredState = wanted;
        changed.push({ backend: backend.name, state: wanted });
      }
    }
    this.source.configure(config.healthCheck, backends, changed);
    this.version++;
  }

  applyHealth(backend: string, health: Health, reason: string): void {
    const status = this.records.get(backend);
    if (status === undefined) return;
    const previous = status.health;
    if (previous === health) return;
    const wasUsable = isUsable(status);
    status.health = health;
    status.reason = reason;
    status.since = new Date().toISOString();
    if (!wasUsable && isUsable(status)) status.rampStart = performance.now();
    this.version++;
    this.emit('health', { service: this.service, backend, health, previous, reason });
    if (health === 'down' && this.onDown === 'close') this.options.closeBackend?.(backend);
  }

  recordCheck(backend: string, source: ResultSource, result: CheckResult): void {
    const status = this.records.get(backend);
    if (status === undefined) return;
    status.lastCheck = {
      ok: result.ok,
      source,
      durationMs: Math.round(result.durationMs * 10) / 10,
      detail: result.ok ? result.detail : `${result.kind}: ${result.reason}`,
      at: new Date().toISOString(),
    };
    this.emit('check', { service: this.service, backend, source, result });
  }

  /** Sets the admin state; false if `backend` is unknown. */
  setState(backend: string, state: AdminState): boolean {
    const status = this.records.get(backend);
    if (status === undefined) return false;
    const previous = status.admin;
    if (previous === state) return true;
    const wasUsable = isUsable(status);
    status.admin = state;
    if (!wasUsable && isUsable(status)) status.rampStart = performance.now();
    this.version++;
    this.emit('state', { service: this.service, backend, state, previous });
    return true;
  }

  applyShared(shared: SharedStatus): void {
    const status = this.records.get(shared.backend);
    if (status === undefined) return;
    this.setState(shared.backend, shared.admin);
    this.applyHealth(shared.backend, shared.health, shared.reason);
    status.reason = shared.reason;
    status.since = shared.since;
    const rampStart = shared.usableForMs === null ? -Infinity : performance.now() - shared.usableForMs;
    if (rampStart !== status.rampStart && status.slowStartMs > 0) this.version++;
    status.rampStart = rampStart;
  }

  /** Every backend's verdicts, for processes that apply them (src/cluster). O(backends). */
  shared(): SharedStatus[] {
    const now = performance.now();
    return [...this.records.values()].map((status) => ({
      service: this.service,
      backend: status.name,
      health: status.health,
      admin: status.admin,
      reason: status.reason,
      since: status.since,
      usableForMs: status.rampStart === -Infinity ? null : now - status.rampStart,
    }));
  }

  /** Whether this process decides the verdicts (see VerdictSource.decides). */
  get decides(): boolean {
    return this.source.decides;
  }

  /** A connect to `backend` succeeded (true) or failed / was reset (false). O(1). */
  observe(backend: string, passed: boolean): void {
    this.source.observe(backend, passed);
  }

  stop(): Promise<void> {
    return this.source.stop();
  }
}
