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
 *
 * A service's backends may change between reloads too: its `dns:`/`srv:` entries' answers (the
 * DNS watcher) and runtime changes (`changeBackends`, the admin API's weight/add/remove). Each
 * goes through the same path as a reload: the effective backends (src/services backends.ts), the
 * plan builder, the health gate and ServiceState.update (backends that stay keep their health;
 * new ones start in the check's initial state). Reloads, DNS changes and runtime changes are
 * applied one at a time, in order.
 */
import { isIP } from 'node:net';
import type { EventEmitter } from 'node:events';
import type { Server } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { type AdminState, type BackendConfig, type Config, type Endpoint, type HealthCheckConfig, type ListenerConfig, type ProxyServiceConfig } from '../config/index.js';
import { ClosedError, LbError, UnknownServiceError } from '../errors.js';
import {
  buildPlan,
  checkResult,
  DnsWatcher,
  effectiveService,
  gatePlan,
  isEmptyOverlay,
  localChecks,
  movesBetween,
  NO_OVERLAY,
  overlaySummary,
  resolveBackends,
  resolveHost,
  sameBackends,
  withChange,
  ServiceLoads,
  ServiceStates,
  systemLookup,
  type BackendChange,
  type BackendStatusFields,
  type DnsClientFactory,
  type DnsEntryStatus,
  type Lookup,
  type Moves,
  type ResolvedAddress,
  type RuntimeOverlay,
  type ServicePlan,
  type ServiceStateEvents,
  type StateResult,
  type VerdictSources,
} from '../services/index.js';
import { systemClock, type Clock } from '../clock.js';
import { IdleSweeper } from './idle-sweeper.js';
import { ListeningSocket, socketName, type AcceptShortage, type AcceptSocket } from './listening-socket.js';
import { InspectCounters, PassthroughListener, type InspectResult, type RouteTaken } from './router.js';
import { ServiceCounters } from './queue.js';
import { DescriptorBudget, descriptorLimit } from './descriptors.js';
import { ProxyService, type BackendStats, type ProxyServiceOptions, type ServiceStats } from './service.js';

export type { ServiceStats, BackendStats } from './service.js';

/** A backend's counters with its health and admin state: what /stats and /metrics show. */
export interface BackendStatusStats extends BackendStats, BackendStatusFields {}

export interface ServiceStatusStats extends Omit<ServiceStats, 'backends'> {
  healthCheck: HealthCheckConfig | null;
  backends: BackendStatusStats[];
  /** The service's `dns:`/`srv:` entries and how their last queries went (absent: it has none). */
  dns?: DnsEntryStatus[];
  /** Runtime changes in force since the file was applied (absent: none). */
  runtime?: { added: string[]; removed: string[]; weights: Record<string, number> };
}

/** A runtime change as asked for: `add` may name a host, resolved once when the change is made. */
export type BackendChangeRequest = Exclude<BackendChange, { kind: 'add' }> | { readonly kind: 'add'; readonly backend: BackendConfig };

/** The answer to a runtime change: what it did and what moved. */
export interface BackendChangeResult {
  readonly service: string;
  readonly change: BackendChange['kind'];
  readonly backend: string;
  /** Backends of the service after the change. */
  readonly backends: number;
  readonly moves: Moves;
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
  /** What the data path's timeouts run on (idle, queue, PROXY header), and the waits between DNS queries: the system clock, or one a test drives. */
  readonly clock?: Clock;
  /**
   * At start only: the fd of a listening socket this process inherited (from a previous l4lb that
   * handed it over, or from systemd), by the socket's name (socketName) or, under systemd, by its
   * owner's (a service's name); listened on instead of binding.
   */
  readonly inherited?: (socket: InheritedName) => number | undefined;
  /** How `dns:`/`srv:` entries are asked (default: c-ares, through the file's `resolvers`). */
  readonly dnsClient?: DnsClientFactory;
}

/** A listening socket as the inherited sockets are asked for it: its name and its owner (a service's name, or `listeners[i]`). */
export interface InheritedName {
  readonly name: string;
  readonly owner: string;
}

/** One row of l4lb_sni_inspect_total. */
export interface InspectStats {
  readonly listener: string;
  readonly result: InspectResult;
  readonly route: RouteTaken;
  readonly count: number;
}

/** A passthrough listener as /stats shows it: where it listens, clients being inspected now, its inspections since start. */
export interface ListenerStats {
  /** Its socket's name (socketName): the `listener` of access lines and of l4lb_sni_inspect_total. */
  readonly listener: string;
  /** `listeners[i]`: where the configuration has it. */
  readonly owner: string;
  /** The bound address (port 0 resolved). */
  readonly listen: Endpoint;
  /** Clients whose ClientHello is being read now. */
  readonly inspecting: number;
  /** Inspections by result and route, since start (kept across reloads while the listener's name stays). */
  readonly inspections: readonly { readonly result: InspectResult; readonly route: RouteTaken; readonly count: number }[];
}

export interface Balancer {
  /** The address service `name` is reached at (its first own address, else the first listener routing to it; port 0 resolved). Throws UnknownServiceError. */
  address(name: string): Endpoint;
  /** The bound address of `listeners[index]` of the configuration in service. Throws LbError LB_ERR_LISTEN if there is none. */
  listenerAddress(index: number): Endpoint;
  /** Inspections of every passthrough listener since start, by listener, result and route. */
  inspections(): InspectStats[];
  /** The configured passthrough listeners, in file order, with their counts. Cost: O(listeners x results). */
  listenerStats(): ListenerStats[];
  /** Applies a new configuration; rejects with LbError and keeps the old one if it cannot. */
  reload(config: Config): Promise<void>;
  /** Stops accepting, drains open connections up to `drainMs` (default: the largest drain timeout), ends the rest. */
  close(drainMs?: number): Promise<void>;
  /** Counters, health and state of every running service. Cost: O(backends + open connections). */
  stats(): ServiceStatusStats[];
  /** Each listening socket's owner (a service's name, or `listeners[i]`), address and backend count. O(sockets): a reload's 'listening' lines need no more. */
  listening(): { service: string; listen: Endpoint; backends: number; socket: string }[];
  /** Sets a backend's admin state: see ServiceStates.setState. */
  setState(service: string, backend: string, state: AdminState): StateResult;
  /**
   * Sets a backend's weight, adds or removes a backend, as a runtime overlay the next reload
   * replaces (src/services/backends.ts). Rejects with UnknownServiceError, UnknownBackendError,
   * BackendExistsError, RuntimeChangeError, ResolveError (an added host that resolves nowhere),
   * or ClosedError; nothing changes then.
   */
  changeBackends(service: string, change: BackendChangeRequest): Promise<BackendChangeResult>;
  /** Resolves once every reload, DNS change and runtime change queued so far has been applied (or refused). */
  settled(): Promise<void>;
  /** The plan new connections of service `name` are placed with now. Throws UnknownServiceError. */
  plan(name: string): ServicePlan;
  /** The DNS watcher of this balancer's `dns:`/`srv:` entries: 'backends' on every change of a service's discovered set. */
  readonly dns: DnsWatcher;
  /** Health changes, check results and state changes of every service. */
  readonly events: EventEmitter<ServiceStateEvents>;
  /** Every listening socket, by its name (socketName), for a handover to a new l4lb. */
  listeners(): { readonly name: string; readonly server: Server }[];
}

/** A listening socket the configuration asks for: its name, where it binds, whose it is. */
export interface SocketPlan {
  readonly name: string;
  readonly endpoint: Endpoint;
  /** A service's name, or `listeners[i]`. */
  readonly owner: string;
  /** Where the configuration asks for it, for a ListenError (`services[0] (db).listen[1]`). */
  readonly where: string;
}

/** Every listening socket of `config`'s proxy services and passthrough listeners, in file order. Pure. */
export function socketsOf(config: Config): SocketPlan[] {
  const plans: SocketPlan[] = [];
  (config.listeners ?? []).forEach((listener, index) => {
    const owner = listenerOwner(index);
    plans.push({ name: socketName(listener.listen, owner), endpoint: listener.listen, owner, where: `${owner}.listen` });
  });
  config.services.forEach((service, index) => {
    if (service.mode !== 'proxy') return;
    service.listen.forEach((endpoint, at) => {
      const where = `services[${index}] (${service.name}).listen${service.listen.length > 1 ? `[${at}]` : ''}`;
      plans.push({ name: socketName(endpoint, service.name), endpoint, owner: service.name, where });
    });
  });
  return plans;
}

function listenerOwner(index: number): string {
  return `listeners[${index}]`;
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
  /** The file's backends' resolved addresses, by name. */
  statics: ReadonlyMap<string, Endpoint>;
}

/** Where a running service's backends come from, and the plan built from them. */
interface BackendSources {
  /** The service as the file says (its `backends` are the file's named ones). */
  readonly file: ProxyServiceConfig;
  readonly statics: ReadonlyMap<string, Endpoint>;
  overlay: RuntimeOverlay;
  plan: ServicePlan;
}

/** The services of `config` whose entries the DNS watcher asks. */
function watchedServices(services: readonly ProxyServiceConfig[]): { name: string; entries: NonNullable<ProxyServiceConfig['dnsBackends']> }[] {
  return services.map((service) => ({ name: service.name, entries: service.dnsBackends ?? [] }));
}

class RunningBalancer implements Balancer {
  /** Running services by name. */
  private services = new Map<string, ProxyService>();
  /** Services made by the apply in progress, not yet swapped in: routes of its new listeners reach them too. */
  private starting = new Map<string, ProxyService>();
  /** Listening sockets by name (socketName), and whose each is. */
  private sockets = new Map<string, { socket: ListeningSocket; owner: string }>();
  /** Passthrough listeners by socket name; `listenerNames[i]` is `listeners[i]`'s. */
  private passthrough = new Map<string, PassthroughListener>();
  private listenerNames: string[] = [];
  /** Inspection counters by listener socket name: they outlive a listener's routes. */
  private readonly inspectCounters = new Map<string, InspectCounters>();
  private readonly clock: Clock;
  /**
   * By service name: its logger, its counters (they outlive the ProxyService a moved listener
   * replaces, and a restart at 0 would freeze the Prometheus counters fed from them) and its
   * backends' counters (they outlive plans).
   */
  private readonly byService = new Map<string, KeptByService>();
  /** Health and admin state by service name: they outlive plans. */
  private readonly states: ServiceStates;
  /** By service name: what its effective backends are made of, and its plan now. */
  private sources = new Map<string, BackendSources>();
  /** The `resolvers` and proxy services of the configuration in service (a refused reload goes back to them). */
  private applied: { resolvers: Config['resolvers']; services: ProxyServiceConfig[]; listeners: ListenerConfig[] } = { resolvers: undefined, services: [], listeners: [] };
  readonly dns: DnsWatcher;
  private readonly retiring = new Set<Promise<void>>();
  private drainMs = 0;
  private closing = false;
  private reloading: Promise<void> = Promise.resolve();
  /** The apply in progress (settled when none): close() waits for it, so none outlives close. */
  private applying: Promise<void> = Promise.resolve();

  /** Every service's timers (the system clock and the process's idle sweeper, or one clock and one sweeper on it) and the process's descriptor budget. */
  private readonly timing: ProxyServiceOptions;

  constructor(
    private readonly logger: Logger,
    private readonly lookup: Lookup,
    verdicts: VerdictSources,
    clock: Clock | undefined,
    dnsClient: DnsClientFactory | undefined,
  ) {
    const descriptors = DescriptorBudget.measure();
    this.timing = clock === undefined ? { descriptors } : { clock, idleSweeper: new IdleSweeper(clock), descriptors };
    if (Number.isFinite(descriptors.capacity)) logger.info({ connections: descriptors.capacity, limit: descriptorLimit() }, 'descriptor budget');
    this.clock = clock ?? systemClock;
    this.dns = new DnsWatcher({ logger, clock, client: dnsClient });
    this.dns.on('backends', ({ service }) => void this.enqueue(() => this.replan(service)).catch((error: unknown) => {
      this.logger.error({ service, error: error instanceof Error ? error.message : String(error) }, 'dns: the new backends could not be applied: keeping the previous ones');
    }));
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
    return this.services.get(name);
  }

  /** Where a route to `name` hands its clients. */
  private readonly routeTarget = (name: string): ProxyService['accept'] | undefined => (this.services.get(name) ?? this.starting.get(name))?.accept;

  /**
   * Resolves every proxy service's backends (the file's names once; `dns:`/`srv:` entries through
   * the watcher, which keeps the answers of entries it already asks) and builds its plan; nothing
   * is started.
   */
  private async prepare(config: Config): Promise<Prepared[]> {
    const proxies: { service: ProxyServiceConfig; where: string }[] = [];
    for (const [index, service] of config.services.entries()) {
      const where = `services[${index}] (${service.name})`;
      // Kernel services (mode: dsr, nat) are the kernel writer's (src/kernel), not the proxy's.
      if (service.mode !== 'proxy') continue;
      proxies.push({ service, where });
    }
    await this.dns.watch(config.resolvers, watchedServices(proxies.map(({ service }) => service)));
    const prepared: Prepared[] = [];
    for (const { service, where } of proxies) {
      const statics = new Map((await resolveBackends(service, where, this.lookup)).map(({ name, address }) => [name, address]));
      const { service: effective, truncated } = effectiveService(service, this.dns.backends(service.name));
      if (truncated > 0) this.logger.warn({ service: service.name, left: truncated, tableSize: service.tableSize }, 'dns: more backends than Maglev slots: the first tableSize by name are used');
      const resolved = addressesOf(effective, statics);
      const { loads } = this.kept(service.name);
      const plan = buildPlan(effective, resolved, loads);
      prepared.push({ config: effective, plan: gatePlan(plan, this.states.of(service.name), loads), where, resolved, statics });
    }
    return prepared;
  }

  /** Runs `step` after every reload and change before it: one change of plans at a time. */
  private enqueue<T>(step: () => Promise<T> | T): Promise<T> {
    const next = this.reloading.then(step);
    this.reloading = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  /**
   * Puts `effective` in service for `name`: builds its plan through the plan builder and the
   * health gate, updates ServiceState (backends that stay keep their health) and swaps the
   * listener's plan. Returns what moved. Pre: `name` is running; `effective` is its file
   * configuration with effective backends.
   */
  private install(name: string, sources: BackendSources, effective: ProxyServiceConfig): Moves {
    const resolved = addressesOf(effective, sources.statics);
    const kept = this.kept(name);
    const plan = gatePlan(buildPlan(effective, resolved, kept.loads), this.states.of(name), kept.loads);
    const moves = movesBetween(sources.plan, plan);
    this.states.of(name).update(effective, resolved);
    kept.loads.setMembers(new Set(plan.backends.map((backend) => backend.name)));
    this.serviceNamed(name)?.update(plan, kept.logger, kept.counters);
    sources.plan = plan;
    return moves;
  }

  /** A service's discovered set changed: re-plans it if its effective backends did. */
  private replan(name: string): void {
    const sources = this.sources.get(name);
    if (sources === undefined || this.closing) return;
    const { service: effective, truncated } = effectiveService(sources.file, this.dns.backends(name), sources.overlay);
    if (sameBackends(effective.backends, sources.plan.config.backends)) return;
    if (truncated > 0) this.logger.warn({ service: name, left: truncated, tableSize: effective.tableSize }, 'dns: more backends than Maglev slots: the first tableSize by name are used');
    const moves = this.install(name, sources, effective);
    this.kept(name).logger.info({ backends: effective.backends.length, moved: moves.moved, of: moves.total, unit: moves.unit }, 'dns: backends applied');
  }

  /** Throws ClosedError once close() has begun: an apply must not start anything after that. */
  private assertOpen(): void {
    if (this.closing) throw new ClosedError({ component: 'balancer' }, 'the balancer is closing: configuration not applied');
  }

  /**
   * Applies `config`; one at a time (reload chains them). Rejects with ClosedError, having
   * closed whatever it opened, if close() began meanwhile (checked after every await).
   */
  apply(config: Config, inherited?: BalancerOptions['inherited']): Promise<void> {
    const run = this.applyNow(config, inherited);
    this.applying = run.catch(() => undefined);
    return run;
  }

  private async applyNow(config: Config, inherited: BalancerOptions['inherited']): Promise<void> {
    this.assertOpen();
    let prepared: Prepared[];
    try {
      prepared = await this.prepare(config);
      this.assertOpen();
    } catch (error) {
      await this.restoreWatch();
      throw error;
    }
    // Services and listeners first (cheap, nothing bound), so a socket accepts into its owner the moment it listens.
    const next = new Map<string, ProxyService>();
    for (const { config: service, plan } of prepared) {
      const { logger, counters } = this.kept(service.name);
      next.set(service.name, this.services.get(service.name) ?? new ProxyService(plan, logger, counters, this.timing));
    }
    const fresh = [...next].filter(([name, service]) => this.services.get(name) !== service).map(([, service]) => service);
    this.starting = new Map([...next].filter(([name]) => !this.services.has(name)));
    const plans = socketsOf({ ...config, services: prepared.map(({ config: service }) => service) });
    const listenerNames = plans.filter(({ owner }) => owner.startsWith('listeners[')).map(({ name }) => name);
    const nextPassthrough = new Map<string, PassthroughListener>();
    (config.listeners ?? []).forEach((listener, index) => {
      const name = listenerNames[index] ?? '';
      nextPassthrough.set(name, this.passthrough.get(name) ?? this.newListener(name, listener));
    });
    const accepterOf = (owner: string, name: string): AcceptSocket => {
      const listener = nextPassthrough.get(name);
      if (owner.startsWith('listeners[') && listener !== undefined) return listener.accept;
      const service = next.get(owner);
      if (service === undefined) throw new LbError('LB_ERR_INVALID_ARGUMENT', `socket ${name}: no service ${owner}`);
      return (socket) => service.accept(socket);
    };
    /** A service counts its sockets' accept shortages and pauses; a passthrough listener's are only logged. */
    const shortageOf = (owner: string): AcceptShortage | undefined => {
      const service = next.get(owner);
      return service === undefined ? undefined : (code) => service.localError(code, 'accept');
    };
    const nextSockets = new Map<string, { socket: ListeningSocket; owner: string }>();
    const opened: ListeningSocket[] = [];
    try {
      for (const plan of plans) {
        const owner = nextSockets.get(plan.name)?.owner;
        if (owner !== undefined) throw new LbError('LB_ERR_LISTEN', `${plan.where}: ${plan.name} is already used by ${owner}`);
        const kept = this.sockets.get(plan.name);
        if (kept !== undefined) {
          nextSockets.set(plan.name, { socket: kept.socket, owner: plan.owner });
          continue;
        }
        const socket = new ListeningSocket(plan.name, plan.endpoint, accepterOf(plan.owner, plan.name), this.loggerOf(plan.owner), shortageOf(plan.owner));
        opened.push(socket);
        await socket.listen(plan.where, inherited?.({ name: plan.name, owner: plan.owner }));
        nextSockets.set(plan.name, { socket, owner: plan.owner });
        this.assertOpen();
      }
    } catch (error) {
      await Promise.all(opened.map((socket) => socket.close()));
      for (const [name, listener] of nextPassthrough) if (this.passthrough.get(name) !== listener) listener.close();
      await Promise.all(fresh.map((service) => service.close(0)));
      this.starting = new Map();
      await this.restoreWatch();
      throw error;
    }
    // Nothing can fail from here on: swap plans, retire sockets, listeners and services no longer configured.
    const sources = new Map<string, BackendSources>();
    for (const { config: service, resolved, plan, statics } of prepared) {
      this.states.of(service.name).update(service, resolved);
      this.kept(service.name).loads.setMembers(new Set(plan.backends.map((backend) => backend.name)));
      const overlay = this.sources.get(service.name)?.overlay ?? NO_OVERLAY;
      if (!isEmptyOverlay(overlay)) this.kept(service.name).logger.info({ runtime: overlaySummary(overlay) }, 'runtime changes replaced by the reloaded file');
      const file = config.services.find((each): each is ProxyServiceConfig => each.mode === 'proxy' && each.name === service.name);
      if (file !== undefined) sources.set(service.name, { file, statics, overlay: NO_OVERLAY, plan });
    }
    this.sources = sources;
    this.applied = { resolvers: config.resolvers, services: [...sources.values()].map(({ file }) => file), listeners: config.listeners ?? [] };
    this.dns.retain(watchedServices(this.applied.services));
    this.states.retain(new Set(prepared.map(({ config: service }) => service.name)));
    for (const { config: service, plan } of prepared) {
      const running = next.get(service.name);
      if (running === undefined || fresh.includes(running)) continue;
      const { logger, counters } = this.kept(service.name);
      running.update(plan, logger, counters);
    }
    (config.listeners ?? []).forEach((listener, index) => {
      const name = listenerNames[index] ?? '';
      nextPassthrough.get(name)?.update(listener, this.logger);
    });
    for (const [name, { socket, owner }] of nextSockets) socket.retarget(accepterOf(owner, name), this.loggerOf(owner), shortageOf(owner));
    for (const [name, { socket }] of this.sockets) {
      if (nextSockets.get(name)?.socket === socket) continue;
      const retired = socket.close().finally(() => this.retiring.delete(retired));
      this.retiring.add(retired);
    }
    for (const [name, listener] of this.passthrough) if (nextPassthrough.get(name) !== listener) listener.close();
    for (const [name, service] of this.services) {
      if (next.get(name) === service) continue;
      const retired = service.close(this.drainMs).finally(() => this.retiring.delete(retired));
      this.retiring.add(retired);
    }
    this.services = next;
    this.starting = new Map();
    this.sockets = nextSockets;
    this.passthrough = nextPassthrough;
    this.listenerNames = listenerNames;
    this.drainMs = Math.max(0, ...prepared.map(({ config: service }) => service.timeouts.drain));
  }

  /** The logger of a socket's owner: a service's child, or a listener's (`{ listener: NAME }`). */
  private loggerOf(owner: string): Logger {
    return owner.startsWith('listeners[') ? this.logger.child({ listener: owner }) : this.kept(owner).logger;
  }

  private newListener(name: string, config: ListenerConfig): PassthroughListener {
    let counters = this.inspectCounters.get(name);
    if (counters === undefined) {
      counters = new InspectCounters();
      this.inspectCounters.set(name, counters);
    }
    // Its access lines carry `listener` themselves: the balancer's logger, no child.
    return new PassthroughListener(name, config, this.routeTarget, this.logger, this.clock, counters);
  }

  /** After a refused apply: the watcher asks exactly what the configuration in service needs. */
  private async restoreWatch(): Promise<void> {
    await this.dns.watch(this.applied.resolvers, watchedServices(this.applied.services));
    this.dns.retain(watchedServices(this.applied.services));
  }

  address(name: string): Endpoint {
    if (!this.services.has(name)) throw new UnknownServiceError({ service: name, known: [...this.services.keys()] });
    return this.reachedAt(name);
  }

  /** Where service `name` is reached: its first own socket, else the first listener with a route to it (bound addresses). */
  private reachedAt(name: string): Endpoint {
    for (const { socket, owner } of this.sockets.values()) if (owner === name) return socket.shownAddress;
    const routed = this.applied.listeners.findIndex((listener) => listener.routes.some((route) => ('default' in route ? route.default : route.service) === name));
    const socket = this.sockets.get(this.listenerNames[routed] ?? '')?.socket;
    return socket?.shownAddress ?? { host: '0.0.0.0', port: 0 };
  }

  listenerAddress(index: number): Endpoint {
    const socket = this.sockets.get(this.listenerNames[index] ?? '')?.socket;
    if (socket === undefined) throw new LbError('LB_ERR_LISTEN', `listeners[${index}] is not configured`);
    return socket.address();
  }

  inspections(): InspectStats[] {
    return [...this.inspectCounters].flatMap(([listener, counters]) => counters.rows().map((row) => ({ listener, ...row })));
  }

  listenerStats(): ListenerStats[] {
    return this.listenerNames.map((name, index) => ({
      listener: name,
      owner: listenerOwner(index),
      listen: this.sockets.get(name)?.socket.shownAddress ?? this.applied.listeners[index]?.listen ?? { host: '0.0.0.0', port: 0 },
      inspecting: this.passthrough.get(name)?.inspections ?? 0,
      inspections: this.inspectCounters.get(name)?.rows() ?? [],
    }));
  }

  /** Reloads (and DNS and runtime changes) run one at a time, in call order. */
  reload(config: Config): Promise<void> {
    return this.enqueue(() => this.apply(config));
  }

  /** The first apply, queued like a reload (DNS answers may arrive meanwhile), with the inherited sockets. */
  start(config: Config, inherited: BalancerOptions['inherited']): Promise<void> {
    return this.enqueue(() => this.apply(config, inherited));
  }

  settled(): Promise<void> {
    return this.reloading;
  }

  plan(name: string): ServicePlan {
    const sources = this.sources.get(name);
    if (sources === undefined) throw new UnknownServiceError({ service: name, known: [...this.sources.keys()] });
    return sources.plan;
  }

  changeBackends(service: string, change: BackendChangeRequest): Promise<BackendChangeResult> {
    return this.enqueue(() => this.changeNow(service, change));
  }

  private async changeNow(service: string, request: BackendChangeRequest): Promise<BackendChangeResult> {
    this.assertOpen();
    let change: BackendChange = request;
    if (request.kind === 'add' && isIP(request.backend.address.host) === 0) {
      const host = await resolveHost(request.backend.address.host, `runtime add ${service}/${request.backend.name}`, this.lookup);
      change = { kind: 'add', backend: { ...request.backend, address: { host, port: request.backend.address.port } } };
      this.assertOpen();
    }
    const sources = this.sources.get(service);
    if (sources === undefined) throw new UnknownServiceError({ service, known: [...this.sources.keys()] });
    const overlay = withChange(sources.plan.config, sources.overlay, change);
    const result = effectiveService(sources.file, this.dns.backends(service), overlay);
    checkResult(change, result);
    sources.overlay = overlay;
    const moves = this.install(service, sources, result.service);
    const backend = change.kind === 'add' ? change.backend.name : change.backend;
    this.kept(service).logger.info({ change: change.kind, backend, ...(change.kind === 'weight' ? { weight: change.weight } : {}), moved: moves.moved, of: moves.total, unit: moves.unit }, 'runtime change applied');
    return { service, change: change.kind, backend, backends: result.service.backends.length, moves };
  }

  async close(drainMs = this.drainMs): Promise<void> {
    this.closing = true;
    // Sockets stop accepting first, then clients under inspection end at once (they have no
    // service to drain with), then the services drain; checks stop alongside the drain.
    const sockets = [...this.sockets.values()].map(({ socket }) => socket.close());
    for (const listener of this.passthrough.values()) listener.close();
    const closing = [...sockets, ...[...this.services.values()].map((service) => service.close(drainMs)), ...this.retiring];
    // An apply in flight sees `closing` after its next await, closes what it opened and rejects;
    // only then is the set of health checks final.
    await this.applying;
    await Promise.all([...closing, this.states.stop(), this.dns.stop()]);
    this.services.clear();
    this.sockets.clear();
    this.passthrough.clear();
  }

  listening(): { service: string; listen: Endpoint; backends: number; socket: string }[] {
    return [...this.sockets].map(([name, { socket, owner }]) => ({ service: owner, listen: socket.shownAddress, backends: this.services.get(owner)?.backendCount ?? 0, socket: name }));
  }

  stats(): ServiceStatusStats[] {
    const now = performance.now();
    return [...this.services.values()].map((service) => {
      const stats = service.stats(this.reachedAt(service.name));
      const sources = this.sources.get(stats.name);
      const runtime = sources === undefined ? null : overlaySummary(sources.overlay);
      return {
        ...stats,
        healthCheck: this.states.healthCheck(stats.name),
        backends: stats.backends.map((backend): BackendStatusStats => ({ ...backend, ...this.states.statusFields(stats.name, backend.name, now) })),
        ...(sources?.file.dnsBackends === undefined ? {} : { dns: this.dns.status(stats.name) }),
        ...(runtime === null ? {} : { runtime }),
      };
    });
  }

  setState(service: string, backend: string, state: AdminState): StateResult {
    return this.states.setState(service, backend, state);
  }

  listeners(): { readonly name: string; readonly server: Server }[] {
    return [...this.sockets].map(([name, { socket }]) => ({ name, server: socket.listener }));
  }
}

/**
 * Starts every proxy service of `config` (dsr services are logged and skipped). Rejects with an
 * LbError — ResolveError for a backend name that resolves nowhere, LB_ERR_LISTEN for a port that
 * cannot be bound — after closing whatever it had opened.
 */
export async function startBalancer(config: Config, options: BalancerOptions): Promise<Balancer> {
  const balancer = new RunningBalancer(options.logger, options.lookup ?? systemLookup, options.verdicts ?? localChecks, options.clock, options.dnsClient);
  try {
    await balancer.start(config, options.inherited);
  } catch (error) {
    await balancer.dns.stop();
    throw error;
  }
  return balancer;
}

/**
 * The addresses connections to `service`'s backends go to: an IP literal as it is, a file
 * backend's host name as it was resolved when the file was applied (never per change).
 */
function addressesOf(service: ProxyServiceConfig, statics: ReadonlyMap<string, Endpoint>): ResolvedAddress[] {
  return service.backends.map((backend) => {
    const address = isIP(backend.address.host) === 0 ? statics.get(backend.name) : backend.address;
    if (address === undefined) throw new LbError('LB_ERR_INVALID_ARGUMENT', `service ${service.name}: backend ${backend.name} has no resolved address`);
    return { name: backend.name, address };
  });
}
