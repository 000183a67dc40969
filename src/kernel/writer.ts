/**
 * The kernel writer: one more consumer of the services' health and admin decisions (src/services
 * ServiceStates, fed by the same checks and admin API as proxy services), writing the full-NAT table
 * `inet l4lb_nat` (docs/kernel.md). Katran's habit: the table is built pure (slots.ts through the gate,
 * nat.ts renders), and only the delta is programmed.
 *
 * - Start: the table in the kernel is read. None: the whole table is loaded in one transaction. One
 *   l4lb made with the same shape (set `l4lb_owner`): only the elements that differ are rewritten, so
 *   a restart moves nothing. A table of that name without the marker: KernelError table-owned.
 * - Every health / admin change: the gated table is recomputed, and one transaction rewrites the
 *   moved slots and the changed verdicts of the backends map. A refused transaction leaves the
 *   previous table (and what this writer believes is loaded) as it was; it is logged and counted,
 *   and the next change retries.
 * - Reload: same shape → delta; another shape (services, VIPs, backends' addresses) → the whole table.
 * - `dns:`/`srv:` entries (docs/kernel.md "Backends from DNS"): the same DnsWatcher as the proxy's
 *   asks them; a changed answer re-plans the service with the discovered backends (discovered.ts)
 *   and is one transaction of the moved slots, the delta a health change takes: discovered
 *   backends are not part of either table's shape. A service with no backend yet (its names not
 *   resolved) is not loaded: its VIP is in no table until a name resolves; the table is then
 *   loaded whole once, since the service is new to its shape.
 * The DSR director's table `ip l4lb_dsr` follows the same rules in director-writer.ts, which this
 * writer drives with the same decisions and whose transactions it counts.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { AdminState, BackendConfig, Config, DsrServiceConfig, KernelServiceConfig, NatServiceConfig } from '../config/index.js';
import { KernelError } from '../errors.js';
import { DnsWatcher, ServiceStates, sameBackends, type DnsClientFactory, type StateResult, type VerdictSources, type WatchedService } from '../services/index.js';
import { kernelBackendSet, type KernelBackendSet } from './discovered.js';
import { NAT_FAMILY, NAT_TABLE, OWNER_SET, backendsMap, counterName, deadFromVerdicts, natDelta, natShape, natVerdicts, natValue, planNat, renderNatTable, renderSlotDelta, type NatAssignment, type NatService } from './nat.js';
import { mapElements, mapEntries, objectsOf, setElements, type NftObject, type NftRunner } from './nft.js';
import { gatedSlotNames, kernelSlots, type KernelSlots } from './slots.js';
import { DIRECTOR_TABLE, planDirector } from './director-plan.js';
import { DirectorWriter } from './director-writer.js';
import type { KernelServiceStats, NatKernelStats } from './stats.js';

export type { DsrBackendStats, DsrKernelStats, KernelBackendStats, KernelServiceStats, NatKernelStats } from './stats.js';

/** Transactions applied and refused, and the time the last one took: what the metrics read. */
export interface KernelCounters {
  applied: number;
  refused: number;
  lastSeconds: number;
  /** Sum of the seconds of every transaction, for a histogram-less summary. */
  totalSeconds: number;
}

export interface KernelWriterOptions {
  readonly nft: NftRunner;
  readonly logger: Logger;
  readonly verdicts: VerdictSources;
  /** Counts the flows of a service in conntrack; absent: not reported. */
  readonly conntrack?: (service: NatService) => Promise<number | undefined>;
  /** How `dns:`/`srv:` entries are asked (default: c-ares, through the file's `resolvers`). */
  readonly dnsClient?: DnsClientFactory;
  /** What the DNS watcher's waits between queries run on (default: the system clock). */
  readonly clock?: Clock;
}

interface Planned {
  readonly service: NatService;
  readonly slots: KernelSlots;
}

const TABLE = `${NAT_FAMILY} ${NAT_TABLE}`;

/** The dsr services of a configuration. */
export function dsrServices(config: Config): DsrServiceConfig[] {
  return config.services.filter((service): service is DsrServiceConfig => service.mode === 'dsr');
}


/** The kernel services of `config`: nat, then dsr. */
function kernelServices(config: Config): KernelServiceConfig[] {
  return [...natServices(config), ...dsrServices(config)];
}

/** The kernel services of `config` and their `dns:`/`srv:` entries, as the DNS watcher takes them. */
function watchedKernelServices(config: Config): WatchedService[] {
  return kernelServices(config).map((service) => ({ name: service.name, entries: service.dnsBackends ?? [] }));
}

/** The nat services of a configuration. */
export function natServices(config: Config): NatServiceConfig[] {
  return config.services.filter((service): service is NatServiceConfig => service.mode === 'nat');
}

/**
 * What the loaded table holds, read back into assignments, or why a delta cannot turn it into the
 * plan: its shape differs, a slot names no backend, or a backends map holds other elements than
 * those assignments give (an element missing or left over: a delta computed from the assignments
 * would not mend it, a reload does).
 */
function readAssignments(listing: readonly NftObject[], planned: readonly Planned[]): { readonly assignments: NatAssignment[] } | { readonly reason: string } {
  const owner = objectsOf(listing, 'set').get(OWNER_SET);
  const shape = setElements(owner).map((text) => Number(text))[0];
  if (shape !== natShape(planned.map((entry) => entry.service))) {
    return { reason: 'its shape differs (services, VIPs, hashes, SNAT, backends, or the chain layout of another l4lb version)' };
  }
  const maps = objectsOf(listing, 'map');
  const verdicts = new Map((['ipv4', 'ipv6'] as const).map((family) => [family, mapEntries(maps.get(backendsMap(family)))]));
  const assignments: NatAssignment[] = [];
  for (const { service } of planned) {
    const byValue = new Map(service.backends.map((backend) => [natValue(service, backend.name), backend.name]));
    const map = `slots_${service.id}`;
    const elements = mapElements(maps.get(map));
    const slots: string[] = [];
    for (let slot = 0; slot < service.tableSize; slot++) {
      const name = byValue.get(elements.get(slot) ?? '');
      if (name === undefined) return { reason: `${map} slot ${slot} is missing or names no backend of service ${service.name}` };
      slots.push(name);
    }
    const dead = deadFromVerdicts(service, verdicts.get(service.family) ?? new Map<string, string>());
    assignments.push({ service, slots, dead });
  }
  for (const [family, listed] of verdicts) {
    const map = backendsMap(family);
    const expected = new Map(assignments.filter(({ service }) => service.family === family).flatMap((assignment) => [...natVerdicts(assignment)]));
    const wrong = [...expected].find(([key, verdict]) => listed.get(key) !== verdict)?.[0] ?? [...listed.keys()].find((key) => !expected.has(key));
    if (wrong !== undefined) return { reason: `${map} element ${wrong} is missing, left over or has another verdict` };
  }
  return { assignments };
}

export class KernelWriter {
  readonly states: ServiceStates;
  readonly counters: KernelCounters = { applied: 0, refused: 0, lastSeconds: 0, totalSeconds: 0 };
  private planned: Planned[] = [];
  /** What this writer believes the kernel holds (what it last loaded, or read at start). */
  private loaded: NatAssignment[] | undefined;
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;
  /** mode: dsr services: the director table `ip l4lb_dsr`. */
  private readonly director: DirectorWriter;
  /** The `dns:`/`srv:` entries of the kernel services; each change of a service's set re-plans it. */
  readonly dns: DnsWatcher;
  /** The configuration in force: what a DNS change is planned against. */
  private config: Config | undefined;
  /** Each service's backends as last planned (named, then discovered), to skip answers that change nothing. */
  private readonly effective = new Map<string, readonly BackendConfig[]>();
  /** A DNS change was refused by nft: the next health or admin change plans again before its delta. */
  private replanPending = false;
  /** Discovered backends already logged as dropped, by service and backend: each is logged once. */
  private readonly droppedLogged = new Set<string>();

  constructor(private readonly options: KernelWriterOptions) {
    this.states = new ServiceStates({ logger: options.logger, verdicts: options.verdicts });
    this.director = new DirectorWriter({ nft: options.nft, logger: options.logger, states: this.states, transaction: (script, message, fields, table) => this.transaction(script, message, fields, table) });
    const changed = (): void => void this.enqueue(() => this.sync()).catch(() => undefined);
    this.states.events.on('health', changed);
    this.states.events.on('state', changed);
    this.dns = new DnsWatcher({ logger: options.logger, client: options.dnsClient, clock: options.clock });
    this.dns.on('backends', ({ service }) => void this.enqueue(() => this.rediscover(service)).catch((error: unknown) => {
      options.logger.error({ service, error: error instanceof Error ? error.message : String(error) }, 'dns: the new backends could not be applied: keeping the previous ones');
    }));
  }

  /** Whether `config` has services this writer drives. */
  static wanted(config: Config): boolean {
    return natServices(config).length > 0 || dsrServices(config).length > 0;
  }

  /** Services this writer drives now: the kernel services of the configuration in force, loaded or still waiting for a DNS answer. */
  has(service: string): boolean {
    return this.config !== undefined && kernelServices(this.config).some((entry) => entry.name === service);
  }

  /**
   * Applies `config`'s nat services: at start (reads what the kernel holds) and at each reload.
   * Rejects with KernelError / LbError(LB_ERR_CONFIG); the previous table then stays in force.
   */
  apply(config: Config): Promise<void> {
    return this.enqueue(async () => {
      const watched = watchedKernelServices(config);
      await this.dns.watch(config.resolvers, watched);
      await this.load(config);
      this.config = config;
      this.dns.retain(watched);
    });
  }

  /**
   * Plans `config`'s kernel services with the backends discovered now and programs both tables:
   * as deltas of the moved slots when their shapes stay (discovered backends are no part of a
   * shape), else whole.
   */
  private async load(config: Config): Promise<void> {
    const natSets = natServices(config).map((service) => this.withDiscovered(service));
    const dsrSets = dsrServices(config).map((service) => this.withDiscovered(service));
    // A service with no backend yet is left out of the tables until one is discovered.
    const configs = natSets.filter((set) => set.service.backends.length > 0);
    const services = planNat(configs.map((set) => set.service), new Map(configs.map((set) => [set.service.name, set.discovered])));
    const planned = services.map((service) => ({ service, slots: kernelSlots(service.backends, service.tableSize) }));
    const dsrConfigs = dsrSets.filter((set) => set.service.backends.length > 0).map((set) => set.service);
    const dsrPlanned = dsrConfigs.length === 0 ? [] : planDirector(dsrConfigs);
    for (const { service } of [...natSets, ...dsrSets]) this.states.of(service.name).update(service, service.backends);
    this.states.retain(new Set([...natSets, ...dsrSets].map((set) => set.service.name)));
    const previous = this.planned;
    this.planned = planned;
    try {
      await this.program(previous);
    } catch (error) {
      this.planned = previous;
      throw error;
    }
    await this.director.program(dsrPlanned, new Map(dsrConfigs.map((service) => [service.name, service.onDown])));
    this.effective.clear();
    for (const { service } of [...natSets, ...dsrSets]) this.effective.set(service.name, service.backends);
    this.replanPending = false;
  }

  /** `service` with the backends its entries discovered; a dropped backend is logged once. */
  private withDiscovered<S extends KernelServiceConfig>(service: S): KernelBackendSet<S> {
    const set = kernelBackendSet(service, service.dnsBackends === undefined ? [] : this.dns.backends(service.name));
    for (const { backend, reason, detail } of set.dropped) {
      const key = `${service.name}\0${backend}\0${reason}`;
      if (this.droppedLogged.has(key)) continue;
      this.droppedLogged.add(key);
      this.options.logger.warn({ service: service.name, backend, reason, detail }, 'dns: discovered backend not usable by the kernel: skipped');
    }
    if (set.truncated > 0) this.options.logger.warn({ service: service.name, left: set.truncated, tableSize: service.tableSize }, 'dns: more backends than Maglev slots: the first tableSize by name are used');
    return set;
  }

  /**
   * A service's discovered set changed: re-plans the tables with it, as one transaction of the
   * moved slots (or the whole table, when the service gets its first backend). An answer that
   * leaves the service's backends as they are (a reorder, a dropped address) writes nothing.
   */
  private async rediscover(name: string): Promise<void> {
    const config = this.config;
    if (config === undefined || this.stopped) return;
    const service = kernelServices(config).find((candidate) => candidate.name === name);
    if (service === undefined) return;
    const before = this.effective.get(name) ?? [];
    if (sameBackends(before, kernelBackendSet(service, this.dns.backends(name)).service.backends)) return;
    const slotsBefore = this.loadedSlots(name);
    try {
      await this.load(config);
    } catch (error) {
      this.replanPending = true;
      throw error;
    }
    const slotsAfter = this.loadedSlots(name) ?? [];
    const moved = slotsAfter.filter((backend, slot) => slotsBefore?.[slot] !== backend).length;
    this.options.logger.info({ service: name, backends: this.effective.get(name)?.length ?? 0, moved, of: slotsAfter.length, unit: 'slots' }, 'dns: backends applied');
  }

  /** Slot i → the backend name the kernel holds now for service `name`; undefined when it is in no table. */
  private loadedSlots(name: string): string[] | undefined {
    const nat = this.loaded?.find((assignment) => assignment.service.name === name);
    return nat !== undefined ? [...nat.slots] : this.director.loadedSlots(name);
  }

  /** Loads what the decisions say, as a delta when the loaded table has the same shape. */
  private async program(previous: readonly Planned[]): Promise<void> {
    const desired = this.desired();
    let loaded = this.loaded;
    let reason: string | undefined;
    const sameShape = loaded !== undefined && natShape(previous.map((entry) => entry.service)) === natShape(this.planned.map((entry) => entry.service));
    if (!sameShape) {
      const listing = await this.options.nft.list(NAT_FAMILY, NAT_TABLE);
      if (listing !== undefined && !objectsOf(listing, 'set').has(OWNER_SET)) {
        throw new KernelError({ cause: 'table-owned', table: TABLE, detail: `no set ${OWNER_SET} in it` });
      }
      loaded = undefined;
      if (listing !== undefined) {
        const read = readAssignments(listing, this.planned);
        if ('assignments' in read) loaded = read.assignments;
        else reason = read.reason;
      }
    }
    if (loaded === undefined) {
      if (desired.length === 0) return;
      await this.transaction(renderNatTable(desired), 'table loaded', { services: desired.length, ...(reason === undefined ? {} : { reason }) });
    } else {
      const script = renderSlotDelta(loaded.map((before, index) => natDelta(before, desired[index] ?? before)));
      if (script !== '') await this.transaction(script, 'slots rewritten', { moved: countMoved(loaded, desired) });
    }
    this.loaded = desired;
  }

  /** The assignment every service should have now. */
  private desired(): NatAssignment[] {
    return this.planned.map(({ service, slots }) => {
      const state = this.states.of(service.name);
      const dead = service.onDown === 'close' ? [...state.statuses.values()].filter((status) => status.health === 'down').map((status) => status.name) : [];
      return { service, slots: gatedSlotNames(slots, state), dead };
    });
  }

  /** A health or admin change: one transaction of the moved slots and changed verdicts, per table. */
  private async sync(): Promise<void> {
    if (this.stopped) return;
    if (this.replanPending && this.config !== undefined) {
      // The tables still hold the set before a refused DNS change: plan it again, health included.
      await this.load(this.config).catch((error: unknown) => {
        this.options.logger.error({ error: error instanceof Error ? error.message : String(error) }, 'dns: the new backends could not be applied: keeping the previous ones');
      });
      return;
    }
    await this.director.sync();
    if (this.loaded === undefined) return;
    const desired = this.desired();
    const script = renderSlotDelta(this.loaded.map((before, index) => natDelta(before, desired[index] ?? before)));
    if (script === '') return;
    try {
      await this.transaction(script, 'slots rewritten', { moved: countMoved(this.loaded, desired) });
      this.loaded = desired;
    } catch (error) {
      // The kernel keeps the previous table and so does this writer; the next change retries.
      this.options.logger.error({ table: TABLE, error: error instanceof Error ? error.message : String(error) }, 'kernel transaction refused: the previous table stays');
    }
  }

  private async transaction(script: string, message: string, fields: object, table: string = TABLE): Promise<void> {
    const started = performance.now();
    try {
      await this.options.nft.apply(script, table);
    } catch (error) {
      this.counters.refused++;
      throw error;
    }
    const seconds = (performance.now() - started) / 1000;
    this.counters.applied++;
    this.counters.lastSeconds = seconds;
    this.counters.totalSeconds += seconds;
    this.options.logger.info({ table, ...fields, ms: Math.round(seconds * 1000) }, `kernel ${message}`);
  }

  /** Resolves once every change queued so far has been written (or refused). */
  settled(): Promise<void> {
    return this.queue;
  }

  setState(service: string, backend: string, state: AdminState): StateResult {
    return this.states.setState(service, backend, state);
  }

  /**
   * /stats rows, nat services first, then dsr: slots from what is loaded; nat counters read from the
   * kernel now (`nft -j list table`), dsr pins from one `nft -j list map … flows_ID` per service
   * (cost: O(pins) each, read only when asked).
   */
  async stats(): Promise<KernelServiceStats[]> {
    const [nat, dsr] = await Promise.all([this.natStats(), this.director.stats()]);
    return [...nat, ...dsr];
  }

  private async natStats(): Promise<NatKernelStats[]> {
    const loaded = this.loaded;
    if (loaded === undefined) return [];
    const listing = (await this.options.nft.list(NAT_FAMILY, NAT_TABLE).catch(() => undefined)) ?? [];
    const counters = objectsOf(listing, 'counter');
    return Promise.all(
      loaded.map(async ({ service, slots }) => {
        const conntrack = await this.options.conntrack?.(service);
        return {
          service: service.name,
          mode: 'nat' as const,
          table: TABLE,
          vip: service.family === 'ipv6' ? `[${service.vip}]:${service.port}` : `${service.vip}:${service.port}`,
          slots: service.tableSize,
          backends: service.backends.map((backend) => {
            const fields = this.states.statusFields(service.name, backend.name);
            const counter = counters.get(counterName(service, backend.name));
            return {
              name: backend.name,
              address: `${backend.address.host}:${backend.address.port}`,
              state: fields.state,
              health: fields.health,
              slots: slots.filter((name) => name === backend.name).length,
              packets: Number(counter?.packets ?? 0),
              bytes: Number(counter?.bytes ?? 0),
            };
          }),
          ...(conntrack === undefined ? {} : { conntrack }),
        };
      }),
    );
  }

  /** Stops the checks; the tables stay (SIGTERM, or a handover to a new l4lb that adopts them). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.dns.stop();
    await this.queue;
    await this.states.stop();
  }

  /** Removes the table (`--cleanup-on-exit`). */
  async remove(): Promise<void> {
    await this.stop();
    await removeTables(this.options.nft);
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.queue.then(step);
    this.queue = next.catch(() => undefined);
    return next;
  }
}

function countMoved(before: readonly NatAssignment[], after: readonly NatAssignment[]): number {
  let moved = 0;
  before.forEach((assignment, index) => {
    const next = after[index];
    if (next === undefined) return;
    for (let slot = 0; slot < assignment.slots.length; slot++) if (assignment.slots[slot] !== next.slots[slot]) moved++;
  });
  return moved;
}

/**
 * Removes l4lb's kernel tables (`l4lb kernel flush`): `inet l4lb_nat` and `ip l4lb_dsr`, each when it
 * carries l4lb's marker. Returns the tables removed. KernelError table-owned for a foreign table.
 */
export async function removeTables(nft: NftRunner): Promise<string[]> {
  const tables: [family: string, name: string][] = [[NAT_FAMILY, NAT_TABLE], ['ip', DIRECTOR_TABLE]];
  const present: string[] = [];
  // Every table is checked before any is removed: a foreign one leaves l4lb's in place too.
  for (const [family, name] of tables) {
    const listing = await nft.list(family, name);
    if (listing === undefined) continue;
    const table = `${family} ${name}`;
    if (!objectsOf(listing, 'set').has(OWNER_SET)) throw new KernelError({ cause: 'table-owned', table, detail: `no set ${OWNER_SET} in it; not removed` });
    present.push(table);
  }
  for (const table of present) await nft.apply(`delete table ${table}\n`, table);
  return present;
}

/** The conntrack entries of a service's flows, from /proc/net/nf_conntrack (undefined if unreadable). */
export function conntrackCounter(read: () => Promise<string>): (service: NatService) => Promise<number | undefined> {
  return async (service) => {
    let text: string;
    try {
      text = await read();
    } catch {
      return undefined;
    }
    const dst = ` dst=${service.vip} `;
    const dport = ` dport=${service.port} `;
    let count = 0;
    for (const line of text.split('\n')) {
      // The original direction comes first on each line: its dst and dport are the VIP's.
      const first = line.indexOf(' src=');
      const second = line.indexOf(' src=', first + 1);
      const original = second < 0 ? line : line.slice(0, second);
      if (line.includes(' tcp ') && `${original} `.includes(dst) && `${original} `.includes(dport)) count++;
    }
    return count;
  };
}
