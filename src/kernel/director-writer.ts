/**
 * The DSR director's side of the kernel writer (writer.ts): the table `ip l4lb_dsr`, method l3
 * (renderDirector), driven by the same health and admin decisions as nat services. Katran's habit:
 * the gated Maglev table is computed pure, only the slots that differ are written.
 *
 * - Start (or after a handover): the table in the kernel is read (adopt.ts). None: loaded whole.
 *   One l4lb made with the same shape: only the slots that differ are rewritten, so the pins in
 *   flows_ID survive and no flow moves. Another shape: loaded whole. No `l4lb_owner`: KernelError
 *   table-owned.
 * - Each health or admin change: one transaction of the moved slots; then, in a transaction of its
 *   own, the pins of backends that went down (onDown: close) are deleted (pins.ts).
 * - Reload and a changed DNS answer: same shape → delta; another shape → the whole table (that
 *   empties flows_ID). With method l3 the backends are no part of the shape (no rule names one),
 *   so adding, removing or re-addressing backends is a delta that keeps every pin.
 */
import type { Logger } from 'pino';
import type { OnDown } from '../config/index.js';
import { KernelError } from '../errors.js';
import type { ServiceStates } from '../services/index.js';
import { directorSlotValues, readDirector } from './adopt.js';
import { DIRECTOR_TABLE, type DirectorService, type DsrBackend, type DsrMethod } from './director-plan.js';
import { directorShape, renderDirector } from './director.js';
import { movedSlots, renderSlotDelta } from './nat.js';
import { mapEntries, type NftRunner } from './nft.js';
import { OWNER_SET } from './owner.js';
import { pinsPerBackend, unpinDead } from './pins.js';
import { gatedDirector } from './slots.js';
import type { DsrKernelStats } from './stats.js';

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

/** What the director writer shares with the kernel writer: nft, the log, the decisions, and its transactions. */
export interface DirectorContext {
  readonly nft: NftRunner;
  readonly logger: Logger;
  readonly states: ServiceStates;
  /** Applies one transaction to `table`, counted, timed and logged as `kernel MESSAGE`; rejects with KernelError. */
  transaction(script: string, message: string, fields: object, table: string): Promise<void>;
}

export class DirectorWriter {
  /** The planned services (ungated), and the gated tables last loaded (undefined: none yet). */
  private planned: DirectorService[] = [];
  private loaded: DirectorService[] | undefined;
  /** Per service: its onDown, and the down backends whose pins were deleted since they went down. */
  private onDown: ReadonlyMap<string, OnDown> = new Map();
  private readonly unpinned = new Map<string, Set<string>>();

  constructor(private readonly context: DirectorContext) {}

  /** Slot i → the backend name the loaded table holds for dsr service `name`; undefined when it is in no table. */
  loadedSlots(name: string): string[] | undefined {
    const service = this.loaded?.find((entry) => entry.name === name);
    return service === undefined ? undefined : Array.from(service.table.slots, (index) => service.table.backends[index]?.name ?? '');
  }

  /**
   * A health or admin change: one transaction of the moved slots, then the pins of backends now
   * down. A refused transaction leaves the previous table (and what this writer believes is loaded).
   */
  async sync(): Promise<void> {
    const loaded = this.loaded;
    if (loaded === undefined) return;
    const desired = this.gated(this.planned);
    try {
      await this.delta(loaded.map((service) => directorSlotValues(service, DSR_METHOD)), desired);
      this.loaded = desired;
    } catch (error) {
      this.context.logger.error({ table: DSR_TABLE, error: error instanceof Error ? error.message : String(error) }, 'kernel transaction refused: the previous table stays');
    }
    // Only once the slots no longer name a dead backend: a pin deleted before that would re-hash to it.
    if (this.loaded === desired) await this.unpinDown(desired);
  }

  /** Each dsr service with its Maglev table seen through the gate (slot i → its gated backend). */
  private gated(services: readonly DirectorService[]): DirectorService[] {
    return services.map((service) => gatedDirector(service, this.context.states.of(service.name)));
  }

  /**
   * The DSR director's table (renderDirector, l3). With a previous load of the same shape: one
   * transaction of the moved slots. With none (start, or after a handover): the table in the
   * kernel is read (readDirector); none there: loaded whole; one l4lb made with this shape: only
   * the slots that differ are rewritten, so the pins in flows_ID, which keep established flows on
   * their backend, survive and no flow moves; another shape: loaded whole (that empties flows_ID);
   * no `l4lb_owner` in it: KernelError table-owned, and nothing is written.
   * `onDown`: each service's onDown, by name. Post (resolved): this writer holds the plan, its onDown
   * and its gated table as loaded. Rejected: all three as before.
   */
  async program(planned: readonly DirectorService[], onDown: ReadonlyMap<string, OnDown>): Promise<void> {
    if (planned.length === 0) {
      this.onDown = onDown;
      this.planned = [];
      this.loaded = undefined;
      return;
    }
    const desired = this.gated(planned);
    const held = await this.held(desired);
    if (held.slots === undefined) {
      await this.context.transaction(renderDirector(desired, DSR_METHOD), 'table loaded', { services: desired.length, ...(held.reason === undefined ? {} : { reason: held.reason }) }, DSR_TABLE);
    } else {
      const moved = await this.delta(held.slots, desired);
      if (held.pins !== undefined) this.context.logger.info({ table: DSR_TABLE, services: desired.length, moved, pins: held.pins }, 'kernel table adopted');
    }
    this.onDown = onDown;
    this.planned = [...planned];
    this.loaded = desired;
    await this.unpinDown(desired);
  }

  /**
   * What the slot maps hold now, per service, when a delta can turn them into `desired`: from the
   * previous load if it has the same shape, or, with no previous load, read from the kernel (then
   * `pins` is the number of pins found in its flows maps). `slots` absent: load whole; `reason`
   * says why when an l4lb table of another shape is there. KernelError table-owned for a table
   * without `l4lb_owner`.
   */
  private async held(desired: readonly DirectorService[]): Promise<{ slots?: readonly (readonly string[])[]; pins?: number; reason?: string }> {
    const previous = this.loaded;
    if (previous !== undefined) {
      if (directorShape(previous, DSR_METHOD) !== directorShape(desired, DSR_METHOD)) return {};
      return { slots: previous.map((service) => directorSlotValues(service, DSR_METHOD)) };
    }
    const listing = await this.context.nft.list('ip', DIRECTOR_TABLE);
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
  private async delta(before: readonly (readonly string[])[], after: readonly DirectorService[]): Promise<number> {
    const values = after.map((service) => directorSlotValues(service, DSR_METHOD));
    const deltas = after.map((service, i) => ({ table: DSR_TABLE, map: `slots_${service.id}`, before: before[i] ?? values[i] ?? [], after: values[i] ?? [] }));
    const moved = deltas.reduce((sum, delta) => sum + movedSlots(delta.before, delta.after).length, 0);
    const script = renderSlotDelta(deltas);
    if (script !== '') await this.context.transaction(script, 'slots rewritten', { table: DSR_TABLE, moved }, DSR_TABLE);
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
  private async unpinDown(services: readonly DirectorService[]): Promise<void> {
    for (const service of services) {
      const statuses = [...this.context.states.of(service.name).statuses.values()];
      const down = new Set(statuses.filter((status) => status.health === 'down').map((status) => status.name));
      const unpinned = this.unpinned.get(service.name) ?? new Set<string>();
      this.unpinned.set(service.name, unpinned);
      for (const name of unpinned) if (!down.has(name)) unpinned.delete(name);
      if (this.onDown.get(service.name) !== 'close') continue;
      const dead = service.table.backends.filter((backend) => down.has(backend.name) && !unpinned.has(backend.name));
      if (dead.length === 0) continue;
      try {
        await this.unpin(service, dead);
        for (const backend of dead) unpinned.add(backend.name);
      } catch (error) {
        this.context.logger.error({ table: DSR_TABLE, service: service.name, error: error instanceof Error ? error.message : String(error) }, 'kernel pins not deleted: flows stay pinned to a down backend');
      }
    }
  }

  private async unpin(service: DirectorService, dead: readonly DsrBackend[]): Promise<void> {
    const backends = dead.map((backend) => backend.name);
    for (let attempt = 1; ; attempt++) {
      const pins = mapEntries(await this.context.nft.listMap('ip', DIRECTOR_TABLE, `flows_${service.id}`));
      const { script, count } = unpinDead(service, pins, dead, DSR_METHOD);
      if (script === '') return;
      try {
        await this.context.transaction(script, 'pins deleted', { service: service.name, backends, pins: count }, DSR_TABLE);
        return;
      } catch (error) {
        if (!(error instanceof KernelError && error.cause === 'not-found' && attempt < UNPIN_ATTEMPTS)) throw error;
      }
    }
  }

  /**
   * /stats rows of the loaded services: slots from the gated tables loaded, pins from one
   * `nft -j list map … flows_ID` per service, read now (cost: O(pins) each).
   */
  async stats(): Promise<DsrKernelStats[]> {
    const loaded = this.loaded;
    if (loaded === undefined) return [];
    return Promise.all(
      loaded.map(async (service) => {
        // An unreadable map leaves the pin fields out rather than reporting 0 pins.
        const listed = await this.context.nft.listMap('ip', DIRECTOR_TABLE, `flows_${service.id}`).then(
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
            const fields = this.context.states.statusFields(service.name, backend.name);
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
}
