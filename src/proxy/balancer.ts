/**
 * The balancer: every proxy service of a configuration, started, reloaded and stopped as one.
 *
 * Reload (SIGHUP) follows HAProxy's "seamless reload" goal without a new process: a listener whose
 * endpoint is unchanged is kept and only its plan swapped, so no connection is refused during the
 * swap; new endpoints are opened before old ones close; open connections keep the plan they were
 * placed with. Everything that can fail (name resolution, binding new ports) happens before
 * anything is swapped, so a failed reload leaves the running configuration untouched.
 * Health and admin state live in src/services (one ServiceStates per process); verdicts come from
 * local checks, or from the cluster primary in a worker (`verdicts`).
 */
import type { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { formatEndpoint, type AdminState, type Config, type Endpoint, type HealthCheckConfig, type ProxyServiceConfig } from '../config/index.js';
import { ClosedError, LbError, UnknownServiceError } from '../errors.js';
import {
  buildPlan,
  gatePlan,
  localChecks,
  resolveBackends,
  ServiceLoads,
  ServiceStates,
  systemLookup,
  type BackendStatusFields,
  type Lookup,
  type ResolvedAddress,
  type ServicePlan,
  type ServiceStateEvents,
  type StateResult,
  type VerdictSources,
} from '../services/index.js';
import { systemClock, type Clock } from '../clock.js';
import type { Dial } from './connection.js';
import { LocalErrors } from './local-errors.js';
import { IdleSweeper } from './idle-sweeper.js';
import { ServiceCounters } from './queue.js';
import { ProxyService, type BackendStats, type ProxyServiceOptions, type ServiceStats } from './service.js';

export type { ServiceStats, BackendStats } from './service.js';

/** A backend's counters with its health and admin state: what /stats and /metrics show. */
export interface BackendStatusStats extends BackendStats, BackendStatusFields {}

export interface ServiceStatusStats extends Omit<ServiceStats, 'backends'> {
  healthCheck: HealthCheckConfig | null;
  backends: BackendStatusStats[];
}

export interface BalancerOptions {
  /** Access log and events; each service logs through a child made once (`{ service: name }`). */
  readonly logger: Logger;
  /** Resolver for backend host names (default: the system's, once per start or reload). */
  readonly lookup?: Lookup;
  /**
   * Where health and admin verdicts come from: checks run here (the default), or another process
   * that decides them (a cluster worker follows its primary: src/cluster/link.ts).
   */
  readonly verdicts?: VerdictSources;
  /** What the data path's timeouts run on (idle, queue, PROXY header, drain, local-error pauses): the system clock, or one a test drives. */
  readonly clock?: Clock;
  /** Opens backend connections: `net.connect` (the default), or one a test makes fail. */
  readonly dial?: Dial;
}

export interface Balancer {
  /** The address service `name` is bound to (port 0 resolved to the real port). Throws UnknownServiceError. */
  address(name: string): Endpoint;
  /** Applies a new configuration; rejects with LbError and keeps the old one if it cannot. */
  reload(config: Config): Promise<void>;
  /** Stops accepting, drains open connections up to `drainMs` (default: the largest drain timeout), ends the rest. */
  close(drainMs?: number): Promise<void>;
  /** Counters, health and state of every running service. */
  stats(): ServiceStatusStats[];
  /** Sets a backend's admin state: see ServiceStates.setState. */
  setState(service: string, backend: string, state: AdminState): StateResult;
  /** Health changes, check results and state changes of every service. */
  readonly events: EventEmitter<ServiceStateEvents>;
}

/**
 * A listener's identity across reloads: its configured endpoint. Port 0 (any free port) never
 * collides, so such listeners are told apart, and kept across reloads, by service name.
 */
function listenerKey(service: ProxyServiceConfig): string {
  const endpoint = formatEndpoint(service.listen);
  return service.listen.port === 0 ? `${endpoint} ${service.name}` : endpoint;
}

interface KeptByService {
  readonly logger: Logger;
  readonly counters: ServiceCounters;
  readonly loads: ServiceLoads;
}

interface Prepared {
  config: ProxyServiceConfig;
  resolved: readonly ResolvedAddress[];
  plan: ServicePlan;
  where: string;
}

class RunningBalancer implements Balancer {
  /** Running services by listen endpoint (as configured). */
  private services = new Map<string, ProxyService>();
  /**
   * By service name: its logger, its counters (they outlive the ProxyService a moved listener
   * replaces, and a restart at 0 would freeze the Prometheus counters fed from them) and its
   * backends' counters (they outlive plans).
   */
  private readonly byService = new Map<string, KeptByService>();
  /** Health and admin state by service name: they outlive plans. */
  private readonly states: ServiceStates;
  private readonly retiring = new Set<Promise<void>>();
  private drainMs = 0;
  private closing = false;
  private reloading: Promise<void> = Promise.resolve();
  /** The apply in progress (settled when none): close() waits for it, so none outlives close. */
  private applying: Promise<void> = Promise.resolve();

  /** Every service's timers (the system clock and the process's idle sweeper, or one clock and one sweeper on it) and local-error state. */
  private readonly timing: ProxyServiceOptions;
  private readonly localErrors: LocalErrors;

  constructor(
    private readonly logger: Logger,
    private readonly lookup: Lookup,
    verdicts: VerdictSources,
    clock: Clock | undefined,
    dial: Dial | undefined,
  ) {
    // One local-error state for every service: a shortage of descriptors is the process's.
    this.localErrors = new LocalErrors({ logger, clock: clock ?? systemClock });
    const shared = { localErrors: this.localErrors, ...(dial === undefined ? {} : { dial }) };
    this.timing = clock === undefined ? shared : { ...shared, clock, idleSweeper: new IdleSweeper(clock) };
    this.states = new ServiceStates({
      logger,
      verdicts,
      closeBackend: (service, backend) => this.serviceNamed(service)?.closeBackend(backend),
      changed: (service) => this.serviceNamed(service)?.healthChanged(),
    });
  }

  get events(): EventEmitter<ServiceStateEvents> {
    return this.states.events;
  }

  /** What a service keeps across reloads, by name: made on first use. */
  private kept(name: string): KeptByService {
    let kept = this.byService.get(name);
    if (kept === undefined) {
      kept = { logger: this.logger.child({ service: name }), counters: new ServiceCounters(), loads: new ServiceLoads() };
      this.byService.set(name, kept);
    }
    return kept;
  }

  private serviceNamed(name: string): ProxyService | undefined {
    for (const service of this.services.values()) if (service.name === name) return service;
    return undefined;
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
      const resolved = await resolveBackends(service, where, this.lookup);
      const { loads } = this.kept(service.name);
      const plan = buildPlan(service, resolved, loads);
      prepared.push({ config: service, plan: gatePlan(plan, this.states.of(service.name), loads), where, resolved });
    }
    return prepared;
  }

  /** Throws ClosedError once close() has begun: an apply must not start anything after that. */
  private assertOpen(): void {
    if (this.closing) throw new ClosedError({ component: 'balancer' }, 'the balancer is closing: configuration not applied');
  }

  /**
   * Applies `config`; one at a time (reload chains them). Rejects with ClosedError, having
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
        const { logger, counters } = this.kept(service.name);
        const fresh = new ProxyService(plan, logger, counters, this.timing);
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
    for (const { config: service, resolved, plan } of prepared) {
      this.states.of(service.name).update(service, resolved);
      this.kept(service.name).loads.setMembers(new Set(plan.backends.map((backend) => backend.name)));
    }
    this.states.retain(new Set(prepared.map(({ config: service }) => service.name)));
    for (const { config: service, plan } of prepared) {
      const running = next.get(listenerKey(service));
      if (running === undefined || opened.includes(running)) continue;
      const { logger, counters } = this.kept(service.name);
      running.update(plan, logger, counters);
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
    const service = this.serviceNamed(name);
    if (service === undefined) throw new UnknownServiceError({ service: name, known: [...this.services.values()].map((running) => running.name) });
    return service.address();
  }

  /** Reloads run one at a time, in call order. */
  reload(config: Config): Promise<void> {
    const next = this.reloading.then(() => this.apply(config));
    this.reloading = next.catch(() => undefined);
    return next;
  }

  async close(drainMs = this.drainMs): Promise<void> {
    this.closing = true;
    // Listeners close first (synchronously, inside service.close), then checks stop alongside the drain.
    const closing = [...[...this.services.values()].map((service) => service.close(drainMs)), ...this.retiring];
    // An apply in flight sees `closing` after its next await, closes what it opened and rejects;
    // only then is the set of health checks final.
    await this.applying;
    await Promise.all([...closing, this.states.stop()]);
    this.localErrors.close();
    this.services.clear();
  }

  stats(): ServiceStatusStats[] {
    const now = performance.now();
    return [...this.services.values()].map((service) => {
      const stats = service.stats();
      return {
        ...stats,
        healthCheck: this.states.healthCheck(stats.name),
        backends: stats.backends.map((backend): BackendStatusStats => ({ ...backend, ...this.states.statusFields(stats.name, backend.name, now) })),
      };
    });
  }

  setState(service: string, backend: string, state: AdminState): StateResult {
    return this.states.setState(service, backend, state);
  }
}

/**
 * Starts every proxy service of `config` (dsr services are logged and skipped). Rejects with an
 * LbError — ResolveError for a backend name that resolves nowhere, LB_ERR_LISTEN for a port that
 * cannot be bound — after closing whatever it had opened.
 */
export async function startBalancer(config: Config, options: BalancerOptions): Promise<Balancer> {
  const balancer = new RunningBalancer(options.logger, options.lookup ?? systemLookup, options.verdicts ?? localChecks, options.clock, options.dial);
  await balancer.apply(config);
  return balancer;
}
