/**
 * The balancer: every proxy service of a configuration, started, reloaded and stopped as one.
 *
 * Reload (SIGHUP) follows HAProxy's "seamless reload" goal without a new process: a listener whose
 * endpoint is unchanged is kept and only its plan swapped, so no connection is refused during the
 * swap; new endpoints are opened before old ones close; open connections keep the plan they were
 * placed with. Everything that can fail (name resolution, binding new ports) happens before
 * anything is swapped, so a failed reload leaves the running configuration untouched.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Config, Endpoint, ProxyServiceConfig } from '../config/index.js';
import type { AdminState, HealthCheckConfig } from '../config/health.js';
import { LbError } from '../errors.js';
import { performance } from 'node:perf_hooks';
import { formatAddress } from './access-log.js';
import { ServiceCounters, type BackendCounters } from './limits.js';
import { gatePlan } from './gate.js';
import { ServiceHealth, slowStartFraction, type BackendStatus, type HealthLink, type ServiceHealthEvents } from './health.js';
import { buildPlan, systemLookup, type Lookup, type ServicePlan } from './plan.js';
import { ProxyService, type BackendStats, type ServiceStats } from './service.js';

export type { HealthChange, CheckEvent, StateChange, HealthLink, SharedStatus } from './health.js';
export type { ServiceStats, BackendStats } from './service.js';

/** A backend's counters with its health and admin state (issue 4): what /stats and /metrics show. */
export interface BackendStatusStats extends BackendStats {
  health: 'up' | 'down';
  state: AdminState;
  backup: boolean;
  /** Share of its traffic a slow-starting backend may take now, 0..1 (1 when not ramping). */
  slowStart: number;
  /** Why the health last changed, and when (ISO 8601). */
  reason: string;
  since: string;
  lastCheck: { ok: boolean; source: 'active' | 'passive'; durationMs: number; detail: string; at: string } | null;
}

export interface ServiceStatusStats extends Omit<ServiceStats, 'backends'> {
  healthCheck: HealthCheckConfig | null;
  backends: BackendStatusStats[];
}

/** Outcome of a state change request: the previous and new state. */
export interface StateResult {
  service: string;
  backend: string;
  previous: AdminState;
  state: AdminState;
}

export interface BalancerOptions {
  /** Access log and events; each service logs through a child made once (`{ service: name }`). */
  readonly logger: Logger;
  /** Resolver for backend host names (default: the system's, once per start or reload). */
  readonly lookup?: Lookup;
  /**
   * Issue 7, a cluster worker: health and admin state are decided by another process (the
   * primary), which runs the checks; this balancer runs none, forwards its passive observations
   * and applies the verdicts it is sent. Absent (one process): everything is decided here.
   */
  readonly link?: HealthLink;
}

export interface Balancer {
  /** The address service `name` is bound to (port 0 resolved to the real port). */
  address(name: string): Endpoint;
  /** Applies a new configuration; rejects with LbError and keeps the old one if it cannot. */
  reload(config: Config): Promise<void>;
  /** Stops accepting, drains open connections up to `drainMs` (default: the largest drain timeout), ends the rest. */
  close(drainMs?: number): Promise<void>;
  /** Counters, health and state of every running service. */
  stats(): ServiceStatusStats[];
  /**
   * Sets a backend's admin state (draining: no new clients, open ones stay; maintenance: no new
   * clients; active). Throws LbError LB_ERR_UNKNOWN_SERVICE / LB_ERR_UNKNOWN_BACKEND naming the
   * valid names. Lasts until changed again, or until a reload changes that backend's configured state.
   */
  setState(service: string, backend: string, state: AdminState): StateResult;
  /** Health changes, check results and state changes of every service. */
  readonly events: EventEmitter<ServiceHealthEvents>;
}

/** The health and state columns of a backend's /stats row (`status` undefined: not known, shown up and active). */
export function statusFields(status: BackendStatus | undefined, now: number): Omit<BackendStatusStats, keyof BackendStats> {
  return {
    health: status?.health ?? 'up',
    state: status?.admin ?? 'active',
    backup: status?.backup ?? false,
    slowStart: status === undefined ? 1 : Math.round(slowStartFraction(status, now) * 1000) / 1000,
    reason: status?.reason ?? 'not checked',
    since: status?.since ?? '',
    lastCheck: status?.lastCheck ?? null,
  };
}

/**
 * A listener's identity across reloads: its configured endpoint. Port 0 (any free port) never
 * collides, so such listeners are told apart, and kept across reloads, by service name.
 */
function listenerKey(service: ProxyServiceConfig): string {
  const endpoint = formatAddress(service.listen.host, service.listen.port);
  return service.listen.port === 0 ? `${endpoint} ${service.name}` : endpoint;
}

interface Prepared {
  config: ProxyServiceConfig;
  plan: ServicePlan;
  where: string;
}

class RunningBalancer implements Balancer {
  /** Running services by listen endpoint (as configured). */
  private services = new Map<string, ProxyService>();
  /** Backend counters by service name, then backend name: they outlive plans. */
  private readonly counters = new Map<string, Map<string, BackendCounters>>();
  /** Service counters by service name: they outlive the ProxyService a moved listener replaces. */
  private readonly serviceCounters = new Map<string, ServiceCounters>();
  private readonly loggers = new Map<string, Logger>();
  /** Health and admin state by service name: they outlive plans. */
  private readonly healths = new Map<string, ServiceHealth>();
  readonly events = new EventEmitter<ServiceHealthEvents>();
  private readonly retiring = new Set<Promise<void>>();
  private drainMs = 0;
  private closing = false;
  private reloading: Promise<void> = Promise.resolve();
  /** The apply in progress (settled when none): close() waits for it, so none outlives close. */
  private applying: Promise<void> = Promise.resolve();

  private readonly unsubscribe: () => void;

  constructor(
    private readonly logger: Logger,
    private readonly lookup: Lookup,
    private readonly link?: HealthLink,
  ) {
    this.unsubscribe =
      link?.subscribe((statuses) => {
        for (const status of statuses) this.healths.get(status.service)?.applyShared(status);
      }) ?? (() => undefined);
  }

  private loggerFor(name: string): Logger {
    let child = this.loggers.get(name);
    if (child === undefined) {
      child = this.logger.child({ service: name });
      this.loggers.set(name, child);
    }
    return child;
  }

  private healthFor(name: string): ServiceHealth {
    let health = this.healths.get(name);
    if (health === undefined) {
      health = new ServiceHealth(name, (backend) => this.serviceNamed(name)?.closeBackend(backend), this.link);
      health.on('health', (change) => {
        this.loggerFor(name).warn({ backend: change.backend, health: change.health, previous: change.previous, reason: change.reason }, 'backend health changed');
        this.serviceNamed(name)?.healthChanged();
        this.events.emit('health', change);
      });
      health.on('check', (event) => this.events.emit('check', event));
      health.on('state', (change) => {
        this.loggerFor(name).info({ backend: change.backend, state: change.state, previous: change.previous }, 'backend state changed');
        this.serviceNamed(name)?.healthChanged();
        this.events.emit('state', change);
      });
      this.healths.set(name, health);
    }
    return health;
  }

  private serviceNamed(name: string): ProxyService | undefined {
    for (const service of this.services.values()) if (service.name === name) return service;
    return undefined;
  }

  private serviceCountersFor(name: string): ServiceCounters {
    let counters = this.serviceCounters.get(name);
    if (counters === undefined) {
      counters = new ServiceCounters();
      this.serviceCounters.set(name, counters);
    }
    return counters;
  }

  private countersFor(name: string): Map<string, BackendCounters> {
    let map = this.counters.get(name);
    if (map === undefined) {
      map = new Map();
      this.counters.set(name, map);
    }
    return map;
  }

  /** Resolves every proxy service's backends and builds its plan; nothing is started. */
  private async prepare(config: Config): Promise<Prepared[]> {
    const prepared: Prepared[] = [];
    for (const [index, service] of config.services.entries()) {
      const where = `services[${index}] (${service.name})`;
      if (service.mode === 'dsr') {
        this.logger.info({ service: service.name }, 'dsr service: rendered by `l4lb dsr`, not proxied by `l4lb run`');
        continue;
      }
      const counters = this.countersFor(service.name);
      const plan = await buildPlan(service, where, counters, this.lookup);
      const loads = { loadOf: (name: string) => counters.get(name)?.current ?? 0 };
      prepared.push({ config: service, plan: gatePlan(plan, this.healthFor(service.name), loads), where });
    }
    return prepared;
  }

  /** Throws LB_ERR_CLOSED once close() has begun: an apply must not start anything after that. */
  private assertOpen(): void {
    if (this.closing) throw new LbError('LB_ERR_CLOSED', 'the balancer is closing: configuration not applied');
  }

  /**
   * Applies `config`; one at a time (reload chains them). Rejects with LB_ERR_CLOSED, having
   * closed whatever it opened, if close() began meanwhile (checked after every await).
   */
  apply(config: Config): Promise<void> {
    const run = this.applyNow(config);
    this.applying = run.catch(() => undefined);
    return run;
  }

  private async applyNow(config: Config): Promise<void> {
    this.assertOpen();
    const prepared = await this.prepare(config);
    this.assertOpen();
    const next = new Map<string, ProxyService>();
    const opened: ProxyService[] = [];
    try {
      for (const { config: service, plan, where } of prepared) {
        const key = listenerKey(service);
        if (next.has(key)) throw new LbError('LB_ERR_LISTEN', `${where}: ${key} is already used by another service`);
        const kept = this.services.get(key);
        if (kept !== undefined) {
          next.set(key, kept);
          continue;
        }
        const fresh = new ProxyService(plan, this.loggerFor(service.name), this.serviceCountersFor(service.name));
        await fresh.listen(where);
        opened.push(fresh);
        next.set(key, fresh);
        this.assertOpen();
      }
    } catch (error) {
      await Promise.all(opened.map((service) => service.close(0)));
      throw error;
    }
    // Nothing can fail from here on: swap plans, retire listeners no longer configured.
    for (const { config: service, plan } of prepared) this.healthFor(service.name).update(service, plan.backends);
    const kept = new Set(prepared.map(({ config: service }) => service.name));
    for (const [name, health] of this.healths) {
      if (kept.has(name)) continue;
      this.healths.delete(name);
      void health.stop();
    }
    for (const { config: service, plan } of prepared) {
      const running = next.get(listenerKey(service)) as ProxyService;
      if (!opened.includes(running)) running.update(plan, this.loggerFor(service.name), this.serviceCountersFor(service.name));
    }
    for (const [key, service] of this.services) {
      if (next.get(key) === service) continue;
      const retired = service.close(this.drainMs).finally(() => this.retiring.delete(retired));
      this.retiring.add(retired);
    }
    this.services = next;
    this.drainMs = Math.max(0, ...prepared.map(({ config: service }) => service.timeouts.drain));
  }

  address(name: string): Endpoint {
    for (const service of this.services.values()) if (service.name === name) return service.address();
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `no proxy service named "${name}"`);
  }

  /** Reloads run one at a time, in call order. */
  reload(config: Config): Promise<void> {
    const next = this.reloading.then(() => this.apply(config));
    this.reloading = next.catch(() => undefined);
    return next;
  }

  async close(drainMs = this.drainMs): Promise<void> {
    this.closing = true;
    this.unsubscribe();
    // Listeners close first (synchronously, inside service.close), then checks stop alongside the drain.
    const closing = [...[...this.services.values()].map((service) => service.close(drainMs)), ...this.retiring];
    // An apply in flight sees `closing` after its next await, closes what it opened and rejects;
    // only then is the set of health checks final.
    await this.applying;
    await Promise.all([...closing, ...[...this.healths.values()].map((health) => health.stop())]);
    this.services.clear();
  }

  stats(): ServiceStatusStats[] {
    const now = performance.now();
    return [...this.services.values()].map((service) => {
      const stats = service.stats();
      const health = this.healths.get(stats.name);
      return {
        ...stats,
        healthCheck: health?.healthCheck ?? null,
        backends: stats.backends.map((backend): BackendStatusStats => ({ ...backend, ...statusFields(health?.statuses.get(backend.name), now) })),
      };
    });
  }

  setState(service: string, backend: string, state: AdminState): StateResult {
    const health = this.healths.get(service);
    if (health === undefined || this.serviceNamed(service) === undefined) {
      const names = [...this.services.values()].map((running) => running.name);
      throw new LbError('LB_ERR_UNKNOWN_SERVICE', `no service "${service}" (services: ${names.join(', ') || 'none'})`);
    }
    const status = health.statuses.get(backend);
    if (status === undefined) {
      throw new LbError('LB_ERR_UNKNOWN_BACKEND', `service "${service}" has no backend "${backend}" (backends: ${[...health.statuses.keys()].join(', ')})`);
    }
    const previous = status.admin;
    health.setState(backend, state);
    return { service, backend, previous, state };
  }
}

/**
 * Starts every proxy service of `config` (dsr services are logged and skipped). Rejects with an
 * LbError — LB_ERR_RESOLVE for a backend name that resolves nowhere, LB_ERR_LISTEN for a port
 * that cannot be bound — after closing whatever it had opened.
 */
export async function startBalancer(config: Config, options: BalancerOptions): Promise<Balancer> {
  const balancer = new RunningBalancer(options.logger, options.lookup ?? systemLookup, options.link);
  await balancer.apply(config);
  return balancer;
}
