/**
 * The slot → backend assignment a kernel table holds: slot i names the backend that new flows whose
 * `jhash KEY mod M seed S` is i go to. It is the service's Maglev table (Eisenbud et al., NSDI'16
 * §3.4) seen through the same health gate the proxy places connections with (src/services gate):
 * the gate walks the picker's candidates from the slot's owner and skips unusable backends, so a
 * down or draining backend's slots — and only those — move, each to its next usable candidate, and
 * come back when it recovers (the table itself never changes). Backups take slots only when no
 * primary is usable. With no usable backend at all a slot keeps its owner: the map always holds
 * every slot (a delta then never deletes a key it does not re-add), and a down backend's verdict
 * resets its flows.
 *
 * Pure apart from reading the state it is given.
 */
import type { Endpoint } from '../config/index.js';
import { buildMaglevTable, slotOwner, type MaglevTable, type SlotHash } from '../hashing/index.js';
import { createChooser, gateChooser, ServiceLoads, type Chooser, type ResolvedBackend, type ServiceState } from '../services/index.js';
import type { DirectorService } from './director-plan.js';

/** A backend of a kernel service: a name, a weight and where the kernel sends its flows. */
export interface KernelBackend {
  readonly name: string;
  readonly weight: number;
  readonly address: Endpoint;
}

/** The four bytes of a slot index: the "flow key" the gate is asked about for that slot. */
function slotKey(slot: number): Uint8Array {
  return new Uint8Array([slot >>> 24, (slot >>> 16) & 0xff, (slot >>> 8) & 0xff, slot & 0xff]);
}

/** Reads a slot index back from slotKey's bytes: the picker's slot is the slot asked about. */
const slotOfKey: SlotHash = (key) => (typeof key === 'string' ? 0 : ((key[0] ?? 0) * 2 ** 24 + ((key[1] ?? 0) << 16) + ((key[2] ?? 0) << 8) + (key[3] ?? 0)));

/** A kernel service's Maglev table and the ungated chooser over it, built once per configuration. */
export interface KernelSlots {
  readonly table: MaglevTable<ResolvedBackend>;
  readonly chooser: Chooser<ResolvedBackend>;
  readonly backends: readonly ResolvedBackend[];
  readonly loads: ServiceLoads;
}

/**
 * Builds the Maglev table of `backends` (M = `tableSize`) as the proxy's plan does.
 * Pre: M prime, at least the number of backends (the config checks both). Cost: one Maglev build.
 */
export function kernelSlots(backends: readonly KernelBackend[], tableSize: number): KernelSlots {
  const loads = new ServiceLoads();
  const resolved = backends.map((backend): ResolvedBackend => ({
    name: backend.name,
    weight: backend.weight,
    address: backend.address,
    configured: `${backend.address.host}:${backend.address.port}`,
    maxConnections: Infinity,
    counters: loads.of(backend.name),
  }));
  const chooser = createChooser('maglev', resolved, { tableSize, slotHash: slotOfKey, loads });
  const table = chooser.table ?? buildMaglevTable(resolved, tableSize);
  return { table, chooser, backends: resolved, loads };
}

/**
 * Slot i → the name of the backend new flows of slot i go to, as the gate over `state` decides now.
 * Cost: M gate picks; a pick walks past unusable owners (O(M/N) each), so O(M) when all are up.
 */
export function gatedSlotNames(slots: KernelSlots, state: ServiceState): string[] {
  const gate = gateChooser({ chooser: slots.chooser, backends: slots.backends, hashes: true }, state, slots.loads);
  const names = new Array<string>(slots.table.size);
  for (let slot = 0; slot < slots.table.size; slot++) {
    names[slot] = (gate.pick({ key: slotKey(slot), anchor: 0 }, 0) ?? slotOwner(slots.table, slot)).name;
  }
  return names;
}

/** Slot i → its owner in the ungated table (every backend up and active). */
export function tableSlotNames(table: MaglevTable): string[] {
  const names = new Array<string>(table.size);
  for (let slot = 0; slot < table.size; slot++) names[slot] = slotOwner(table, slot).name;
  return names;
}

/**
 * A DSR director service with its Maglev table seen through the gate over `state`: slot i holds the
 * index of the backend gatedSlotNames names for it (the table's backends and size unchanged), what
 * `l4lb run` writes into slots_ID and `l4lb route` predicts. Cost: one Maglev build and M gate picks.
 */
export function gatedDirector(service: DirectorService, state: ServiceState): DirectorService {
  const { table } = service;
  const slots = kernelSlots(table.backends.map((backend) => ({ name: backend.name, weight: backend.weight, address: { host: backend.address, port: service.port } })), table.size);
  const names = gatedSlotNames(slots, state);
  const index = new Map(table.backends.map((backend, i) => [backend.name, i]));
  return { ...service, table: { ...table, slots: Int32Array.from(names.map((name) => index.get(name) ?? 0)) } };
}
