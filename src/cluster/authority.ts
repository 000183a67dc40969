/**
 * The cluster primary's health decisions (issue 7): one ServiceHealth per proxy service — active
 * checks, the rise/fall reducer fed by every worker's passive observations, admin state — and no
 * listener. Workers apply what it decides (src/cluster/link.ts), so every worker offers the same
 * usable backends and picks the same backend for the same client, as HAProxy's master decides
 * once for all its workers.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Config, ProxyServiceConfig } from '../config/index.js';
import type { AdminState } from '../config/health.js';
import { LbError } from '../errors.js';
import { statusFields, type ServiceStatusStats, type SharedStatus, type StateResult } from '../proxy/balancer.js';
import { ServiceHealth, type ServiceHealthEvents } from '../proxy/health.js';
import { buildPlan, systemLookup, type Lookup, type ResolvedBackend } from '../proxy/plan.js';
import { noRejections } from './stats.js';

interface Decided {
  readonly health: ServiceHealth;
  readonly logger: Logger;
  /** From the last applied configuration: listen and backend addresses, for /stats rows. */
  row: { listen: ServiceStatusStats['listen']; backends: readonly ResolvedBackend[] };
}

export class HealthAuthority {
  readonly events = new EventEmitter<ServiceHealthEvents>();
  private readonly services = new Map<string, Decided>();

  constructor(
    private readonly logger: Logger,
    private readonly lookup: Lookup = systemLookup,
  ) {}

  private decided(name: string): Decided {
    let entry = this.services.get(name);
    if (entry !== undefined) return entry;
    const logger = this.logger.child({ service: name });
    // Workers end a down backend's connections themselves (onDown: close) when they apply the verdict.
    const health = new ServiceHealth(name, () => undefined);
    health.on('health', (change) => {
      logger.warn({ backend: change.backend, health: change.health, previous: change.previous, reason: change.reason }, 'backend health changed');
      this.events.emit('health', change);
    });
    health.on('check', (event) => this.events.emit('check', event));
    health.on('state', (change) => {
      logger.info({ backend: change.backend, state: change.state, previous: change.previous }, 'backend state changed');
      this.events.emit('state', change);
    });
    entry = { health, logger, row: { listen: { host: '', port: 0 }, backends: [] } };
    this.services.set(name, entry);
    return entry;
  }

  /**
   * Applies `config`: resolves every proxy service's backends first (LbError LB_ERR_RESOLVE, and
   * nothing changed, if one resolves nowhere), then updates health and state as a single-process
   * balancer does on reload, starting checks for new backends and forgetting removed services.
   */
  async apply(config: Config): Promise<void> {
    const prepared: { name: string; service: ProxyServiceConfig; backends: readonly ResolvedBackend[] }[] = [];
    for (const [index, service] of config.services.entries()) {
      if (service.mode !== 'proxy') continue;
      const plan = await buildPlan(service, `services[${index}] (${service.name})`, new Map(), this.lookup);
      prepared.push({ name: service.name, service, backends: plan.backends });
    }
    const kept = new Set(prepared.map(({ name }) => name));
    for (const [name, entry] of this.services) {
      if (kept.has(name)) continue;
      this.services.delete(name);
      void entry.health.stop();
    }
    for (const { name, service, backends } of prepared) {
      const entry = this.decided(name);
      entry.row = { listen: service.listen, backends };
      entry.health.update(service, backends);
    }
  }

  /** A worker's passive observation. O(1). */
  observe(service: string, backend: string, passed: boolean): void {
    this.services.get(service)?.health.observe(backend, passed);
  }

  /** As Balancer.setState: LbError LB_ERR_UNKNOWN_SERVICE / LB_ERR_UNKNOWN_BACKEND naming the valid names. */
  setState(service: string, backend: string, state: AdminState): StateResult {
    const entry = this.services.get(service);
    if (entry === undefined) {
      throw new LbError('LB_ERR_UNKNOWN_SERVICE', `no service "${service}" (services: ${[...this.services.keys()].join(', ') || 'none'})`);
    }
    const status = entry.health.statuses.get(backend);
    if (status === undefined) {
      throw new LbError('LB_ERR_UNKNOWN_BACKEND', `service "${service}" has no backend "${backend}" (backends: ${[...entry.health.statuses.keys()].join(', ')})`);
    }
    const previous = status.admin;
    entry.health.setState(backend, state);
    return { service, backend, previous, state };
  }

  /** Every backend's verdicts, for the workers. */
  shared(): SharedStatus[] {
    return [...this.services.values()].flatMap((entry) => entry.health.shared());
  }

  /** /stats rows with health and state and every counter 0 (the workers count: see mergeStats). */
  stats(): ServiceStatusStats[] {
    const now = performance.now();
    return [...this.services.entries()].map(([name, entry]) => ({
      name,
      listen: entry.row.listen,
      current: 0,
      queued: 0,
      total: 0,
      refused: 0,
      bytesUp: 0,
      bytesDown: 0,
      buffered: 0,
      rejected: noRejections(),
      healthCheck: entry.health.healthCheck ?? null,
      backends: entry.row.backends.map((backend) => ({
        name: backend.name,
        address: backend.configured,
        current: 0,
        total: 0,
        failures: 0,
        bytesUp: 0,
        bytesDown: 0,
        ...statusFields(entry.health.statuses.get(backend.name), now),
      })),
    }));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.services.values()].map((entry) => entry.health.stop()));
  }
}
