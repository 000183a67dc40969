/**
 * The cluster primary's health decisions: the service states of every proxy service — active
 * checks, the rise/fall reducer fed by every worker's passive observations, admin state — and no
 * listener. Workers apply what it decides (src/cluster/link.ts), so every worker offers the same
 * usable backends and picks the same backend for the same client, as HAProxy's master decides
 * once for all its workers. It resolves backend addresses (its checks need them) but builds no
 * table: only the workers place connections.
 */
import type { Logger } from 'pino';
import type { AdminState, Config, ProxyServiceConfig } from '../config/index.js';
import type { ServiceStatusStats } from '../proxy/index.js';
import {
  localChecks,
  resolveBackends,
  ServiceStates,
  systemLookup,
  type Lookup,
  type ResolvedAddress,
  type SharedStatus,
  type StateResult,
} from '../services/index.js';
import { formatEndpoint } from '../config/index.js';
import { noRejections } from './stats.js';

interface Row {
  readonly listen: ServiceStatusStats['listen'];
  readonly backends: readonly ResolvedAddress[];
  readonly config: ProxyServiceConfig;
}

export class HealthAuthority {
  private readonly states: ServiceStates;
  /** From the last applied configuration, for /stats rows, by service name in configuration order. */
  private rows = new Map<string, Row>();

  constructor(
    logger: Logger,
    private readonly lookup: Lookup = systemLookup,
  ) {
    // Workers end a down backend's connections themselves (onDown: close) when they apply the verdict.
    this.states = new ServiceStates({ logger, verdicts: localChecks });
  }

  get events(): ServiceStates['events'] {
    return this.states.events;
  }

  /**
   * Applies `config`: resolves every proxy service's backends first (ResolveError, and nothing
   * changed, if one resolves nowhere), then updates health and state as a single-process balancer
   * does on reload, starting checks for new backends and forgetting removed services.
   */
  async apply(config: Config): Promise<void> {
    const rows = new Map<string, Row>();
    for (const [index, service] of config.services.entries()) {
      if (service.mode !== 'proxy') continue;
      const backends = await resolveBackends(service, `services[${index}] (${service.name})`, this.lookup);
      rows.set(service.name, { listen: service.listen, backends, config: service });
    }
    this.states.retain(new Set(rows.keys()));
    for (const [name, row] of rows) this.states.of(name).update(row.config, row.backends);
    this.rows = rows;
  }

  /** A worker's passive observation. O(1). */
  observe(service: string, backend: string, passed: boolean): void {
    this.states.get(service)?.observe(backend, passed);
  }

  /** As Balancer.setState. */
  setState(service: string, backend: string, state: AdminState): StateResult {
    return this.states.setState(service, backend, state);
  }

  /** Every backend's verdicts, for the workers. */
  shared(): SharedStatus[] {
    return this.states.shared();
  }

  /** /stats rows with health and state and every counter 0 (the workers count: see mergeStats). */
  stats(): ServiceStatusStats[] {
    return [...this.rows.entries()].map(([name, row]) => ({
      name,
      listen: row.listen,
      current: 0,
      queued: 0,
      total: 0,
      refused: 0,
      bytesUp: 0,
      bytesDown: 0,
      buffered: 0,
      rejected: noRejections(),
      healthCheck: this.states.healthCheck(name),
      backends: row.config.backends.map((backend) => ({
        name: backend.name,
        address: formatEndpoint(backend.address),
        current: 0,
        total: 0,
        failures: 0,
        bytesUp: 0,
        bytesDown: 0,
        ...this.states.statusFields(name, backend.name),
      })),
    }));
  }

  async stop(): Promise<void> {
    await this.states.stop();
  }
}
