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

export class HealthAuthority {
  private readonly states: ServiceStates;
  /** The proxy services of the last applied configuration, in its order: /stats rows. */
  private services: readonly ProxyServiceConfig[] = [];

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
    const resolved: { service: ProxyServiceConfig; backends: readonly ResolvedAddress[] }[] = [];
    for (const [index, service] of config.services.entries()) {
      if (service.mode !== 'proxy') continue;
      resolved.push({ service, backends: await resolveBackends(service, `services[${index}] (${service.name})`, this.lookup) });
    }
    this.states.retain(new Set(resolved.map(({ service }) => service.name)));
    for (const { service, backends } of resolved) this.states.of(service.name).update(service, backends);
    this.services = resolved.map(({ service }) => service);
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
    return this.services.map((service) => ({
      name: service.name,
      listen: service.listen[0] ?? { host: '0.0.0.0', port: 0 }, // a worker's row says where it is reached (mergeStats)
      current: 0,
      queued: 0,
      total: 0,
      refused: 0,
      bytesUp: 0,
      bytesDown: 0,
      buffered: 0,
      rejected: noRejections(),
      localErrors: {},
      pausedRefused: 0,
      healthCheck: this.states.healthCheck(service.name),
      backends: service.backends.map((backend) => ({
        name: backend.name,
        address: formatEndpoint(backend.address),
        current: 0,
        total: 0,
        failures: 0,
        bytesUp: 0,
        bytesDown: 0,
        ...this.states.statusFields(service.name, backend.name),
      })),
    }));
  }

  async stop(): Promise<void> {
    await this.states.stop();
  }
}
