/**
 * Health and administrative state of a service's backends (issue 4), as gobetween's middleware
 * and HAProxy's server states do it: the balancing algorithms never learn about health; the gate
 * around the service's chooser (src/proxy/gate.ts) offers only usable backends.
 *
 * - Usable = health `up` (from src/health's scheduler and pure reducer, active probes plus passive
 *   observations, HAProxy's `observe layer4`) and admin state `active`. The two are separate
 *   fields: draining/maintenance never change health, a probe never changes the admin state.
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
import type { ProxyServiceConfig } from '../config/index.js';
import { checkSpecOfConfig, type AdminState, type HealthCheckConfig } from '../config/health.js';
import { createChecker, createHealthScheduler, type CheckResult, type Health, type HealthScheduler, type ResultSource } from '../health/index.js';
import type { HashKey } from '../hashing/index.js';
import type { ResolvedBackend } from './plan.js';

/** One backend's runtime status: kept by name across reloads while the backend stays configured. */
export interface BackendStatus {
  readonly name: string;
  health: Health;
  admin: AdminState;
  /** The state the configuration last asked for; a reload applies a new one only if it changed. */
  configuredState: AdminState;
  backup: boolean;
  slowStartMs: number;
  /** performance.now() when the backend last became usable again (slow start), or -Infinity. */
  rampStart: number;
  /** Last probe or passive observation, for /stats. */
  lastCheck: { ok: boolean; source: ResultSource; durationMs: number; detail: string; at: string } | undefined;
  /** Why the health last changed. */
  reason: string;
  since: string;
}

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

/**
 * One backend's verdicts as another process decided them (the cluster primary, src/cluster), for a
 * process that applies them instead of checking itself. Plain data: it crosses IPC.
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

/**
 * Where verdicts come from when another process decides them (the seam issue 7 needs): with a
 * link, a ServiceHealth runs no checks and no reducer; it forwards passive observations and
 * applies the link's statuses. Without one (a single process) nothing changes.
 */
export interface HealthLink {
  /** A passive observation (connect failed / succeeded / reset), for the deciding process's reducer. */
  observe(service: string, backend: string, passed: boolean): void;
  /** The latest verdict known for a backend, if any. */
  current(service: string, backend: string): SharedStatus | undefined;
  /** Calls `listener` with every batch of new verdicts; returns the unsubscribe function. */
  subscribe(listener: (statuses: readonly SharedStatus[]) => void): () => void;
}

export interface ServiceHealthEvents {
  health: [HealthChange];
  check: [CheckEvent];
  state: [StateChange];
}

/** 32-bit FNV-1a of the key bytes then the name: a slot-hash-independent uniform draw in [0, 1). */
export function admissionDraw(key: HashKey, name: string): number {
  let hash = 0x811c9dc5;
  if (typeof key === 'string') for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  else for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key[i], 0x01000193);
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

/**
 * The health and admin state of one service's backends, and its health scheduler. Outlives plans
 * (a reload updates it); `closeBackend` ends a backend's established connections (onDown: close).
 */
export class ServiceHealth extends EventEmitter<ServiceHealthEvents> {
  readonly statuses = new Map<string, BackendStatus>();
  /** Bumped whenever usability changes; gates rebuild what depends on the usable set. */
  version = 0;
  private scheduler: HealthScheduler | undefined;
  private checkKey = '';
  private targets = new Map<string, string>();
  private onDown: 'keep' | 'close' = 'keep';

  constructor(
    readonly service: string,
    private readonly closeBackend: (backend: string) => void,
    /** Set in a cluster worker: verdicts come from the primary (see HealthLink). */
    private readonly link?: HealthLink,
  ) {
    super();
  }

  get healthCheck(): HealthCheckConfig | undefined {
    return this.checkConfig;
  }

  private checkConfig: HealthCheckConfig | undefined;

  /**
   * Applies a (re)loaded configuration. Pre: `backends` are the plan's resolved backends of
   * `config`. Kept backends keep their health, and their admin state unless the configured state
   * changed; new ones start in the check's initial health; removed ones are forgotten.
   */
  update(config: ProxyServiceConfig, backends: readonly ResolvedBackend[]): void {
    this.onDown = config.onDown ?? 'keep';
    const now = new Date().toISOString();
    const initialHealth: Health = config.healthCheck === undefined || config.healthCheck.initial === 'up' || config.healthCheck.initial === 'fully-up' ? 'up' : 'down';
    const names = new Set(backends.map((backend) => backend.name));
    for (const name of [...this.statuses.keys()]) {
      if (!names.has(name)) {
        this.statuses.delete(name);
        this.scheduler?.remove(name);
        this.targets.delete(name);
      }
    }
    for (const [index, backend] of backends.entries()) {
      const wanted = config.backends[index].state ?? 'active';
      const existing = this.statuses.get(backend.name);
      if (existing === undefined) {
        // With a link, a new backend starts as configured and takes the primary's verdict below.
        this.statuses.set(backend.name, {
          name: backend.name,
          health: initialHealth,
          admin: wanted,
          configuredState: wanted,
          backup: config.backends[index].backup === true,
          slowStartMs: config.backends[index].slowStart ?? 0,
          rampStart: -Infinity,
          lastCheck: undefined,
          reason: config.healthCheck === undefined ? 'not checked' : `initial state ${config.healthCheck.initial}`,
          since: now,
        });
      } else {
        existing.backup = config.backends[index].backup === true;
        existing.slowStartMs = config.backends[index].slowStart ?? 0;
        if (wanted !== existing.configuredState) {
          existing.configuredState = wanted;
          // With a link the primary applies the configured state and says so (applyShared below).
          if (this.link === undefined) this.setState(backend.name, wanted);
        }
      }
    }
    this.syncScheduler(config.healthCheck, backends);
    if (this.link !== undefined) {
      for (const name of this.statuses.keys()) {
        const shared = this.link.current(this.service, name);
        if (shared !== undefined) this.applyShared(shared);
      }
    }
    this.version++;
  }

  /**
   * Applies a verdict decided elsewhere (HealthLink): admin state, health (with the events and
   * onDown handling a local verdict has) and the slow-start clock. Ignored for an unknown backend.
   */
  applyShared(shared: SharedStatus): void {
    const status = this.statuses.get(shared.backend);
    if (status === undefined) return;
    this.setState(shared.backend, shared.admin);
    this.applyHealth(status, shared.health, shared.reason);
    status.reason = shared.reason;
    status.since = shared.since;
    const rampStart = shared.usableForMs === null ? -Infinity : performance.now() - shared.usableForMs;
    if (rampStart !== status.rampStart && status.slowStartMs > 0) this.version++;
    status.rampStart = rampStart;
  }

  /** Every backend's verdicts, for processes that apply them (src/cluster). O(backends). */
  shared(): SharedStatus[] {
    const now = performance.now();
    return [...this.statuses.values()].map((status) => ({
      service: this.service,
      backend: status.name,
      health: status.health,
      admin: status.admin,
      reason: status.reason,
      since: status.since,
      usableForMs: status.rampStart === -Infinity ? null : now - status.rampStart,
    }));
  }

  private syncScheduler(check: HealthCheckConfig | undefined, backends: readonly ResolvedBackend[]): void {
    if (this.link !== undefined) {
      this.checkConfig = check; // shown in /stats; the checks themselves run where verdicts are decided
      return;
    }
    const key = check === undefined ? '' : JSON.stringify(check);
    if (key !== this.checkKey) {
      void this.scheduler?.stop();
      this.scheduler = undefined;
      this.targets.clear();
      this.checkKey = key;
      this.checkConfig = check;
      if (check === undefined) {
        for (const status of this.statuses.values()) this.applyHealth(status, 'up', 'health check removed from the configuration');
        return;
      }
      this.scheduler = createHealthScheduler({
        checker: createChecker(checkSpecOfConfig(check)),
        intervalMs: check.interval,
        timeoutMs: check.timeout,
        rise: check.rise,
        fall: check.fall,
        initial: check.initial,
      });
      this.scheduler.on('result', ({ backend, source, result, state }) => {
        const status = this.statuses.get(backend);
        if (status === undefined) return;
        status.lastCheck = {
          ok: result.ok,
          source,
          durationMs: Math.round(result.durationMs * 10) / 10,
          detail: result.ok ? result.detail : `${result.kind}: ${result.reason}`,
          at: new Date().toISOString(),
        };
        this.emit('check', { service: this.service, backend, source, result });
        // The reducer's verdict is the truth; reconciling on every result (not only on 'change')
        // also realigns a backend whose checks restarted after a reload changed the check settings.
        this.applyHealth(status, state.health, status.lastCheck.detail);
      });
    }
    const scheduler = this.scheduler;
    if (scheduler === undefined) return;
    for (const backend of backends) {
      const target = `${backend.address.host}:${backend.address.port}`;
      if (this.targets.get(backend.name) === target) continue;
      if (this.targets.has(backend.name)) scheduler.remove(backend.name);
      this.targets.set(backend.name, target);
      scheduler.add({ id: backend.name, target: backend.address });
    }
  }

  private applyHealth(status: BackendStatus, health: Health, reason: string): void {
    const previous = status.health;
    if (previous === health) return;
    const wasUsable = isUsable(status);
    status.health = health;
    status.reason = reason;
    status.since = new Date().toISOString();
    if (!wasUsable && isUsable(status)) status.rampStart = performance.now();
    this.version++;
    this.emit('health', { service: this.service, backend: status.name, health, previous, reason });
    if (health === 'down' && this.onDown === 'close') this.closeBackend(status.name);
  }

  /** A connect to `backend` succeeded (true) or failed / was reset (false). O(1). */
  observe(backend: string, passed: boolean): void {
    if (this.link !== undefined) this.link.observe(this.service, backend, passed);
    else this.scheduler?.observe(backend, passed);
  }

  /** Sets the admin state; false if `backend` is unknown. */
  setState(backend: string, state: AdminState): boolean {
    const status = this.statuses.get(backend);
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

  async stop(): Promise<void> {
    await this.scheduler?.stop();
    this.scheduler = undefined;
  }
}
