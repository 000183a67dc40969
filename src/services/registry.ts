/**
 * The service states of one process, by service name: made on first use, kept across reloads
 * while the service stays configured, stopped when it goes. The proxy's balancer and the cluster
 * primary hold one each, so state changes, their log lines and /stats' health columns are written
 * once for every runtime.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { AdminState, HealthCheckConfig } from '../config/index.js';
import { UnknownBackendError, UnknownServiceError } from '../errors.js';
import { ServiceState, slowStartFraction, type BackendStatus, type LastCheck, type ServiceStateEvents, type SharedStatus, type VerdictSources } from './state.js';

/** Outcome of a state change request: the previous and new state. */
export interface StateResult {
  service: string;
  backend: string;
  previous: AdminState;
  state: AdminState;
}

/** The health and state columns of a backend's /stats row. */
export interface BackendStatusFields {
  health: 'up' | 'down';
  state: AdminState;
  backup: boolean;
  /** Share of its traffic a slow-starting backend may take now, 0..1 (1 when not ramping). */
  slowStart: number;
  /** Why the health last changed, and when (ISO 8601). */
  reason: string;
  since: string;
  lastCheck: LastCheck | null;
}

/** The columns for `status` (undefined: not known, shown up and active). `now` is performance.now(). */
export function statusFields(status: BackendStatus | undefined, now: number = performance.now()): BackendStatusFields {
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

export interface ServiceStatesOptions {
  /** Logs each health and admin state change, through a child logger per service. */
  readonly logger: Logger;
  readonly verdicts: VerdictSources;
  /** Ends a backend's established connections when it goes down under onDown: close. */
  readonly closeBackend?: (service: string, backend: string) => void;
  /** Called after a backend's usability may have changed, before the event is emitted. */
  readonly changed?: (service: string) => void;
}

export class ServiceStates {
  /** Health changes, check results and state changes of every service. */
  readonly events = new EventEmitter<ServiceStateEvents>();
  private readonly byName = new Map<string, ServiceState>();

  constructor(private readonly options: ServiceStatesOptions) {}

  /** The state of service `name`, made (and wired to the log and `events`) on first use. */
  of(name: string): ServiceState {
    const existing = this.byName.get(name);
    if (existing !== undefined) return existing;
    const { logger: parent, verdicts, closeBackend, changed } = this.options;
    const logger = parent.child({ service: name });
    const state = new ServiceState(name, { verdicts, closeBackend: closeBackend && ((backend) => closeBackend(name, backend)) });
    // The process that decides logs each change once, at warn/info; one that applies another's
    // verdicts (a cluster worker) logs applying it at debug, so `workers: N` writes one line per change.
    const healthLine = state.decides ? (fields: object) => logger.warn(fields, 'backend health changed') : (fields: object) => logger.debug(fields, 'backend health applied');
    const stateLine = state.decides ? (fields: object) => logger.info(fields, 'backend state changed') : (fields: object) => logger.debug(fields, 'backend state applied');
    state.on('health', (change) => {
      healthLine({ backend: change.backend, health: change.health, previous: change.previous, reason: change.reason });
      changed?.(name);
      this.events.emit('health', change);
    });
    state.on('check', (event) => this.events.emit('check', event));
    state.on('state', (change) => {
      stateLine({ backend: change.backend, state: change.state, previous: change.previous });
      changed?.(name);
      this.events.emit('state', change);
    });
    this.byName.set(name, state);
    return state;
  }

  get(name: string): ServiceState | undefined {
    return this.byName.get(name);
  }

  /** Forgets (and stops the checks of) every service not in `names`. */
  retain(names: ReadonlySet<string>): void {
    for (const [name, state] of this.byName) {
      if (names.has(name)) continue;
      this.byName.delete(name);
      void state.stop();
    }
  }

  /**
   * Sets a backend's admin state (draining: no new clients, open ones stay; maintenance: no new
   * clients; active). Throws UnknownServiceError / UnknownBackendError naming the valid names.
   * Lasts until changed again, or until a reload changes that backend's configured state.
   */
  setState(service: string, backend: string, state: AdminState): StateResult {
    const owner = this.byName.get(service);
    if (owner === undefined) throw new UnknownServiceError({ service, known: [...this.byName.keys()] });
    const status = owner.statuses.get(backend);
    if (status === undefined) throw new UnknownBackendError({ service, backend, known: [...owner.statuses.keys()] });
    const previous = status.admin;
    owner.setState(backend, state);
    return { service, backend, previous, state };
  }

  /** The /stats columns of one backend. */
  statusFields(service: string, backend: string, now?: number): BackendStatusFields {
    return statusFields(this.byName.get(service)?.statuses.get(backend), now);
  }

  healthCheck(service: string): HealthCheckConfig | null {
    return this.byName.get(service)?.healthCheck ?? null;
  }

  /** Every backend's verdicts, for processes that apply them. */
  shared(): SharedStatus[] {
    return [...this.byName.values()].flatMap((state) => state.shared());
  }

  async stop(): Promise<void> {
    await Promise.all([...this.byName.values()].map((state) => state.stop()));
  }
}
