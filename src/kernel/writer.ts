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
 *   moved slots and the dead set. A refused transaction leaves the previous table (and what this
 *   writer believes is loaded) as it was; it is logged and counted, and the next change retries.
 * - Reload: same shape → delta; another shape (services, VIPs, backends' addresses) → the whole table.
 * The DSR director's table `ip l4lb_dsr` (method l3) follows the same rules, adopted at start through
 * its own `l4lb_owner` (adopt.ts), so the pins in its `flows_ID` maps survive a restart.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { AdminState, Config, DsrServiceConfig, NatServiceConfig, OnDown } from '../config/index.js';
import { KernelError } from '../errors.js';
import { ServiceStates, type StateResult, type VerdictSources } from '../services/index.js';
import { NAT_FAMILY, NAT_TABLE, OWNER_SET, counterName, movedSlots, natDelta, natShape, natValue, planNat, renderNatTable, renderSlotDelta, type NatAssignment, type NatService } from './nat.js';
import { mapElements, mapEntries, objectsOf, setElements, type NftObject, type NftRunner } from './nft.js';
import { gatedDirector, gatedSlotNames, kernelSlots, type KernelSlots } from './slots.js';
import { DIRECTOR_TABLE, planDirector, type DirectorService, type DsrBackend, type DsrMethod } from './director-plan.js';
import { directorShape, renderDirector } from './director.js';
import { directorSlotValues, readDirector } from './adopt.js';
import { pinsPerBackend, unpinDead } from './pins.js';

/** What every backend row of /stats `kernel` has, whatever the mode. */
interface KernelBackendRow {
  name: string;
  address: string;
  state: AdminState;
  health: 'up' | 'down';
  /** Slots of the loaded slot map that name it now. */
  slots: number;
}

/** One backend's row of a `mode: nat` service: its nft counter (client → backend). */
export interface KernelBackendStats extends KernelBackendRow {
  packets: number;
  bytes: number;
}

/**
 * One backend's row of a `mode: dsr` service. The director's ruleset has no per-backend counters
 * (a packet's backend is chosen by a map lookup in one rule), so there are no packets or bytes
 * here; `pins` is how many pinned flows in `flows_ID` name it now (absent when nft could not list it).
 */
export interface DsrBackendStats extends KernelBackendRow {
  pins?: number;
}

/** One `mode: nat` service's row of /stats `kernel`. */
export interface NatKernelStats {
  service: string;
  mode: 'nat';
  table: string;
  vip: string;
  slots: number;
  backends: KernelBackendStats[];
  conntrack?: number;
}

/** One `mode: dsr` service's row of /stats `kernel`: `pins`, the entries of its `flows_ID`. */
export interface DsrKernelStats {
  service: string;
  mode: 'dsr';
  table: string;
  vip: string;
  slots: number;
  backends: DsrBackendStats[];
  pins?: number;
}

/** One service's row of /stats `kernel`. */
export type KernelServiceStats = NatKernelStats | DsrKernelStats;

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

const DSR_TABLE = `ip ${DIRECTOR_TABLE}`;
/** `l4lb run` drives the director with L3 DSR (DSCP); l2 needs policy routes it does not write. */
const DSR_METHOD: DsrMethod = 'l3';

/**
 * Times the writer lists flows_ID and deletes a dead backend's pins before it gives up until the
 * next change. Only a race fails an attempt (a listed pin timed out, or a SYN on its source port
 * deleted it, before the delete ran), and each retry lists again; after the slot move no new pin
 * can name the dead backend, so the set to delete only shrinks.
 */
const UNPIN_ATTEMPTS = 3;

/** The nat services of a configuration. */
export function natServices(config: Config): NatServiceConfig[] {
  return config.services.filter((service): service is NatServiceConfig => service.mode === 'nat');
}

/** What the loaded table holds, read back into assignments; undefined if the shape differs. */
function readAssignments(listing: readonly NftObject[], planned: readonly Planned[]): NatAssignment[] | undefined {
  const owner = objectsOf(listing, 'set').get(OWNER_SET);
  const shape = setElements(owner).map((text) => Number(text))[0];
  if (shape !== natShape(planned.map((entry) => entry.service))) return undefined;
  const maps = objectsOf(listing, 'map');
  const sets = objectsOf(listing, 'set');
  const result: NatAssignment[] = [];
  for (const { service } of planned) {
    const byValue = new Map(service.backends.map((backend) => [natValue(service, backend.name), backend.name]));
    const elements = mapElements(maps.get(`slots_${service.id}`));
    const slots: string[] = [];
    for (let slot = 0; slot < service.tableSize; slot++) {
      const name = byValue.get(elements.get(slot) ?? '');
      if (name === undefined) return undefined; // a slot missing or naming no backend: reload whole
      slots.push(name);
    }
    const dead = setElements(sets.get(`dead_${service.id}`)).map((value) => byValue.get(value)).filter((name): name is string => name !== undefined);
    result.push({ service, slots, dead });
  }
  return result;
}

export class KernelWriter {
  readonly states: ServiceStates;
  readonly counters: KernelCounters = { applied: 0, refused: 0, lastSeconds: 0, totalSeconds: 0 };
  private planned: Planned[] = [];
  /** What this writer believes the kernel holds (what it last loaded, or read at start). */
  private loaded: NatAssignment[] | undefined;
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;
  /** mode: dsr services (table ip l4lb_dsr, method l3), and the gated tables last loaded. */
  private dsrPlanned: DirectorService[] = [];
  private dsrLoaded: DirectorService[] | undefined;
  /** Per dsr service: its onDown, and the down backends whose pins were deleted since they went down. */
  private dsrOnDown = new Map<string, OnDown>();
  private readonly dsrUnpinned = new Map<string, Set<string>>();

  constructor(private readonly options: KernelWriterOptions) {
    this.states = new ServiceStates({ logger: options.logger, verdicts: options.verdicts });
    const changed = (): void => void this.enqueue(() => this.sync()).catch(() => undefined);
    this.states.events.on('health', changed);
    this.states.events.on('state', changed);
  }

  /** Whether `config` has services this writer drives. */
  static wanted(config: Config): boolean {
    return natServices(config).length > 0 || dsrServices(config).length > 0;
  }

  /** Services this writer drives now. */
  has(service: string): boolean {
    return this.planned.some((entry) => entry.service.name === service) || this.dsrPlanned.some((entry) => entry.name === service);
  }

  /**
   * Applies `config`'s nat services: at start (reads what the kernel holds) and at each reload.
   * Rejects with KernelError / LbError(LB_ERR_CONFIG); the previous table then stays in force.
   */
  apply(config: Config): Promise<void> {
    return this.enqueue(async () => {
      const configs = natServices(config);
      const services = planNat(configs);
      const planned = services.map((service) => ({ service, slots: kernelSlots(service.backends, service.tableSize) }));
      const dsrConfigs = dsrServices(config);
      const dsrPlanned = dsrConfigs.length === 0 ? [] : planDirector(dsrConfigs);
      this.dsrOnDown = new Map(dsrConfigs.map((service) => [service.name, service.onDown]));
      configs.forEach((service) => this.states.of(service.name).update(service, service.backends));
      dsrConfigs.forEach((service) => this.states.of(service.name).update(service, service.backends));
      this.states.retain(new Set([...configs, ...dsrConfigs].map((service) => service.name)));
      const previous = this.planned;
      this.planned = planned;
      try {
        await this.program(previous);
      } catch (error) {
        this.planned = previous;
        throw error;
      }
      await this.programDsr(dsrPlanned);
    });
  }

  /** Loads what the decisions say, as a delta when the loaded table has the same shape. */
  private async program(previous: readonly Planned[]): Promise<void> {
    const desired = this.desired();
    let loaded = this.loaded;
    const sameShape = loaded !== undefined && natShape(previous.map((entry) => entry.service)) === natShape(this.planned.map((entry) => entry.service));
    if (!sameShape) {
      const listing = await this.options.nft.list(NAT_FAMILY, NAT_TABLE);
      if (listing !== undefined && !objectsOf(listing, 'set').has(OWNER_SET)) {
        throw new KernelError({ cause: 'table-owned', table: TABLE, detail: `no set ${OWNER_SET} in it` });
      }
      loaded = listing === undefined ? undefined : readAssignments(listing, this.planned);
    }
    if (loaded === undefined) {
      if (desired.length === 0) return;
      await this.transaction(renderNatTable(desired), 'table loaded', { services: desired.length });
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

  /** Each dsr service with its Maglev table seen through the gate (slot i → its gated backend). */
  private gatedDsr(services: readonly DirectorService[]): DirectorService[] {
    return services.map((service) => gatedDirector(service, this.states.of(service.name)));
  }

  /**
   * The DSR director's table (renderDirector, l3). With a previous load of the same shape: one
   * transaction of the moved slots. With none (start, or after a handover): the table in the
   * kernel is read (readDirector); none there: loaded whole; one l4lb made with this shape: only
   * the slots that differ are rewritten, so the pins in flows_ID, which keep established flows on
   * their backend, survive and no flow moves; another shape: loaded whole (that empties flows_ID);
   * no `l4lb_owner` in it: KernelError table-owned, and nothing is written.
   * Post (resolved): dsrPlanned and dsrLoaded are the plan and its gated table. Rejected: both as before.
   */
  private async programDsr(planned: readonly DirectorService[]): Promise<void> {
    if (planned.length === 0) {
      this.dsrPlanned = [];
      this.dsrLoaded = undefined;
      return;
    }
    const desired = this.gatedDsr(planned);
    const held = await this.dsrHeld(desired);
    if (held.slots === undefined) {
      await this.transaction(renderDirector(desired, DSR_METHOD), 'table loaded', { services: desired.length, ...(held.reason === undefined ? {} : { reason: held.reason }) }, DSR_TABLE);
    } else {
      const moved = await this.dsrDelta(held.slots, desired);
      if (held.pins !== undefined) this.options.logger.info({ table: DSR_TABLE, services: desired.length, moved, pins: held.pins }, 'kernel table adopted');
    }
    this.dsrPlanned = [...planned];
    this.dsrLoaded = desired;
    await this.unpinDsr(desired);
  }

  /**
   * What the slot maps hold now, per service, when a delta can turn them into `desired`: from the
   * previous load if it has the same shape, or, with no previous load, read from the kernel (then
   * `pins` is the number of pins found in its flows maps). `slots` absent: load whole; `reason`
   * says why when an l4lb table of another shape is there. KernelError table-owned for a table
   * without `l4lb_owner`.
   */
  private async dsrHeld(desired: readonly DirectorService[]): Promise<{ slots?: readonly (readonly string[])[]; pins?: number; reason?: string }> {
    const previous = this.dsrLoaded;
    if (previous !== undefined) {
      if (directorShape(previous, DSR_METHOD) !== directorShape(desired, DSR_METHOD)) return {};
      return { slots: previous.map((service) => directorSlotValues(service, DSR_METHOD)) };
    }
    const listing = await this.options.nft.list('ip', DIRECTOR_TABLE);
    if (listing === undefined) return {};
    const reading = readDirector(listing, desired, DSR_METHOD);
    switch (reading.kind) {
      case 'foreign':
        throw new KernelError({ cause: 'table-owned', table: DSR_TABLE, detail: `no set ${OWNER_SET} in it` });
      case 'other-shape':
        return { reason: reading.reason };
      case 'same-shape':
        return { slots: reading.slots, pins: reading.pins.reduce((sum, count) => sum + count, 0) };
      default: {
        const never: never = reading;
        return never;
      }
    }
  }

  /**
   * One transaction of the slots whose value differs between `before` (per service, as the slot
   * maps hold them) and the gated `after`; none when nothing differs. Returns the slots rewritten.
   */
  private async dsrDelta(before: readonly (readonly string[])[], after: readonly DirectorService[]): Promise<number> {
    const values = after.map((service) => directorSlotValues(service, DSR_METHOD));
    const deltas = after.map((service, i) => ({ table: DSR_TABLE, map: `slots_${service.id}`, before: before[i] ?? values[i] ?? [], after: values[i] ?? [] }));
    const moved = deltas.reduce((sum, delta) => sum + movedSlots(delta.before, delta.after).length, 0);
    const script = renderSlotDelta(deltas);
    if (script !== '') await this.transaction(script, 'slots rewritten', { table: DSR_TABLE, moved }, DSR_TABLE);
    return moved;
  }

  /**
   * Deletes from each dsr service's flows_ID the pins of its backends that are down (health) with
   * `onDown: close`, once per time they go down; drained or maintenance backends keep theirs.
   * Pre: the loaded slots no longer name those backends (the slot move committed), so no new pin can
   * name them. nft 1.0.6 has no `destroy element`, and one `delete element` key that is missing
   * fails the whole transaction (ENOENT), so this is a transaction of its own after the slot move,
   * not part of it: a pin that vanished between the listing and the delete (timeout, or a SYN on
   * its source port) must not undo the move. On not-found the map is listed again and the delete
   * retried, UNPIN_ATTEMPTS times at most; any other failure is logged and the next change retries.
   */
  private async unpinDsr(services: readonly DirectorService[]): Promise<void> {
    for (const service of services) {
      const statuses = [...this.states.of(service.name).statuses.values()];
      const down = new Set(statuses.filter((status) => status.health === 'down').map((status) => status.name));
      const unpinned = this.dsrUnpinned.get(service.name) ?? new Set<string>();
      this.dsrUnpinned.set(service.name, unpinned);
      for (const name of unpinned) if (!down.has(name)) unpinned.delete(name);
      if (this.dsrOnDown.get(service.name) !== 'close') continue;
      const dead = service.table.backends.filter((backend) => down.has(backend.name) && !unpinned.has(backend.name));
      if (dead.length === 0) continue;
      try {
        await this.unpin(service, dead);
        for (const backend of dead) unpinned.add(backend.name);
      } catch (error) {
        this.options.logger.error({ table: DSR_TABLE, service: service.name, error: error instanceof Error ? error.message : String(error) }, 'kernel pins not deleted: flows stay pinned to a down backend');
      }
    }
  }

  private async unpin(service: DirectorService, dead: readonly DsrBackend[]): Promise<void> {
    const backends = dead.map((backend) => backend.name);
    for (let attempt = 1; ; attempt++) {
      const pins = mapEntries(await this.options.nft.listMap('ip', DIRECTOR_TABLE, `flows_${service.id}`));
      const { script, count } = unpinDead(service, pins, dead, DSR_METHOD);
      if (script === '') return;
      try {
        await this.transaction(script, 'pins deleted', { service: service.name, backends, pins: count }, DSR_TABLE);
        return;
      } catch (error) {
        if (!(error instanceof KernelError && error.cause === 'not-found' && attempt < UNPIN_ATTEMPTS)) throw error;
      }
    }
  }

  /** A health or admin change: one transaction of the moved slots and dead set. */
  private async sync(): Promise<void> {
    if (this.stopped) return;
    const dsrLoaded = this.dsrLoaded;
    if (dsrLoaded !== undefined) {
      const desired = this.gatedDsr(this.dsrPlanned);
      try {
        await this.dsrDelta(dsrLoaded.map((service) => directorSlotValues(service, DSR_METHOD)), desired);
        this.dsrLoaded = desired;
      } catch (error) {
        this.options.logger.error({ table: DSR_TABLE, error: error instanceof Error ? error.message : String(error) }, 'kernel transaction refused: the previous table stays');
      }
      // Only once the slots no longer name a dead backend: a pin deleted before that would re-hash to it.
      if (this.dsrLoaded === desired) await this.unpinDsr(desired);
    }
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
    const [nat, dsr] = await Promise.all([this.natStats(), this.dsrStats()]);
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

  private async dsrStats(): Promise<DsrKernelStats[]> {
    const loaded = this.dsrLoaded;
    if (loaded === undefined) return [];
    return Promise.all(
      loaded.map(async (service) => {
        // An unreadable map leaves the pin fields out rather than reporting 0 pins.
        const listed = await this.options.nft.listMap('ip', DIRECTOR_TABLE, `flows_${service.id}`).then(
          (body) => mapEntries(body),
          () => undefined,
        );
        const perBackend = listed === undefined ? undefined : pinsPerBackend(listed, service.table.backends, DSR_METHOD);
        const slotCounts = new Array<number>(service.table.backends.length).fill(0);
        for (const index of service.table.slots) slotCounts[index] = (slotCounts[index] ?? 0) + 1;
        return {
          service: service.name,
          mode: 'dsr' as const,
          table: DSR_TABLE,
          vip: `${service.vip}:${service.port}`,
          slots: service.table.size,
          backends: service.table.backends.map((backend, index) => {
            const fields = this.states.statusFields(service.name, backend.name);
            const pins = perBackend?.get(backend.name);
            return {
              name: backend.name,
              address: `${backend.address}:${service.port}`,
              state: fields.state,
              health: fields.health,
              slots: slotCounts[index] ?? 0,
              ...(pins === undefined ? {} : { pins }),
            };
          }),
          ...(listed === undefined ? {} : { pins: listed.size }),
        };
      }),
    );
  }

  /** Stops the checks; the tables stay (SIGTERM, or a handover to a new l4lb that adopts them). */
  async stop(): Promise<void> {
    this.stopped = true;
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
