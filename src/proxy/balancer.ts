/**
 * The balancer: every proxy service of a configuration, started, reloaded and stopped as one.
 *
 * Reload (SIGHUP) follows HAProxy's "seamless reload" goal without a new process: a listener whose
 * endpoint is unchanged is kept and only its plan swapped, so no connection is refused during the
 * swap; new endpoints are opened before old ones close; open connections keep the plan they were
 * placed with. Everything that can fail (name resolution, binding new ports) happens before
 * anything is swapped, so a failed reload leaves the running configuration untouched.
 */
import type { Logger } from 'pino';
import type { Config, Endpoint, ProxyServiceConfig } from '../config/index.js';
import { LbError } from '../errors.js';
import { formatAddress } from './access-log.js';
import type { BackendCounters } from './limits.js';
import { buildPlan, systemLookup, type Lookup, type ServicePlan } from './plan.js';
import { ProxyService, type ServiceStats } from './service.js';

export type { ServiceStats, BackendStats } from './service.js';

export interface BalancerOptions {
  /** Access log and events; each service logs through a child made once (`{ service: name }`). */
  readonly logger: Logger;
  /** Resolver for backend host names (default: the system's, once per start or reload). */
  readonly lookup?: Lookup;
}

export interface Balancer {
  /** The address service `name` is bound to (port 0 resolved to the real port). */
  address(name: string): Endpoint;
  /** Applies a new configuration; rejects with LbError and keeps the old one if it cannot. */
  reload(config: Config): Promise<void>;
  /** Stops accepting, drains open connections up to `drainMs` (default: the largest drain timeout), ends the rest. */
  close(drainMs?: number): Promise<void>;
  /** Counters of every running service. */
  stats(): ServiceStats[];
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
  private readonly loggers = new Map<string, Logger>();
  private readonly retiring = new Set<Promise<void>>();
  private drainMs = 0;
  private closing = false;
  private reloading: Promise<void> = Promise.resolve();

  constructor(
    private readonly logger: Logger,
    private readonly lookup: Lookup,
  ) {}

  private loggerFor(name: string): Logger {
    let child = this.loggers.get(name);
    if (child === undefined) {
      child = this.logger.child({ service: name });
      this.loggers.set(name, child);
    }
    return child;
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
      const plan = await buildPlan(service, where, this.countersFor(service.name), this.lookup);
      prepared.push({ config: service, plan, where });
    }
    return prepared;
  }

  async apply(config: Config): Promise<void> {
    if (this.closing) throw new LbError('LB_ERR_INVALID_ARGUMENT', 'the balancer is closing');
    const prepared = await this.prepare(config);
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
        const fresh = new ProxyService(plan, this.loggerFor(service.name));
        await fresh.listen(where);
        opened.push(fresh);
        next.set(key, fresh);
      }
    } catch (error) {
      await Promise.all(opened.map((service) => service.close(0)));
      throw error;
    }
    // Nothing can fail from here on: swap plans, retire listeners no longer configured.
    for (const { config: service, plan } of prepared) {
      const running = next.get(listenerKey(service)) as ProxyService;
      if (!opened.includes(running)) running.update(plan, this.loggerFor(service.name));
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
    await Promise.all([...[...this.services.values()].map((service) => service.close(drainMs)), ...this.retiring]);
    this.services.clear();
  }

  stats(): ServiceStats[] {
    return [...this.services.values()].map((service) => service.stats());
  }
}

/**
 * Starts every proxy service of `config` (dsr services are logged and skipped). Rejects with an
 * LbError — LB_ERR_RESOLVE for a backend name that resolves nowhere, LB_ERR_LISTEN for a port
 * that cannot be bound — after closing whatever it had opened.
 */
export async function startBalancer(config: Config, options: BalancerOptions): Promise<Balancer> {
  const balancer = new RunningBalancer(options.logger, options.lookup ?? systemLookup);
  await balancer.apply(config);
  return balancer;
}
