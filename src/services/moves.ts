/**
 * What a change of a service's backends moved, from the plan before to the plan after: the answer
 * of every runtime change, and the figure a DNS change is logged with. Pure.
 *
 * - maglev: exact. Slots of the two tables (the plans' own, Eisenbud et al. NSDI'16 §3.4) whose
 *   owner differs, per backend gained and lost; as Katran's `calculateHashRing` delta, this is what
 *   a kernel table writer rewrites.
 * - ring, rendezvous: measured. The first owner of SAMPLE_KEYS fixed keys (4-byte counters, hashed
 *   like IPv4 client addresses) under both pickers; the share is an estimate within about 0.4 %.
 * - roundrobin, leastconn: no client is tied to a backend, so none moves: each backend's weight
 *   before and after says how new connections will be shared.
 */
import type { Balance } from '../config/index.js';
import { createPicker, type Algorithm, type Backend, type MaglevTable } from '../hashing/index.js';
import type { ServicePlan } from './plan.js';

/** Keys sampled for ring and rendezvous. */
export const SAMPLE_KEYS = 65_536;

export interface BackendMove {
  readonly name: string;
  /** In the report's unit: slots or sampled keys owned, or the weight. */
  readonly before: number;
  readonly after: number;
  readonly gained: number;
  readonly lost: number;
}

export interface Moves {
  readonly balance: Balance;
  /** `slots` (Maglev), `keys` (sampled, ring and rendezvous), `weight` (roundrobin and leastconn). */
  readonly unit: 'slots' | 'keys' | 'weight';
  /** Slots in the table, keys sampled, or the total weight after. */
  readonly total: number;
  /** Slots or sampled keys whose backend changed (0 for weight). */
  readonly moved: number;
  /** moved / total: the share of clients that move. */
  readonly share: number;
  /** Every backend of either plan, by name. */
  readonly backends: readonly BackendMove[];
}

type Owners = (index: number) => string | undefined;

function tableOwners(table: MaglevTable | undefined): Owners {
  if (table === undefined) return () => undefined;
  return (slot) => table.backends[table.slots[slot] ?? -1]?.name;
}

function sampledOwners(balance: Algorithm, backends: readonly Backend[]): Owners {
  if (backends.length === 0) return () => undefined;
  const picker = createPicker(balance, backends);
  const key = new Uint8Array(4);
  const view = new DataView(key.buffer);
  return (index) => {
    view.setUint32(0, index);
    return picker.pick(key)?.name;
  };
}

function compare(balance: Balance, unit: 'slots' | 'keys', total: number, before: Owners, after: Owners): Moves {
  const counts = new Map<string, { before: number; after: number; gained: number; lost: number }>();
  const of = (name: string) => {
    let entry = counts.get(name);
    if (entry === undefined) counts.set(name, (entry = { before: 0, after: 0, gained: 0, lost: 0 }));
    return entry;
  };
  let moved = 0;
  for (let index = 0; index < total; index++) {
    const from = before(index);
    const to = after(index);
    if (from !== undefined) of(from).before++;
    if (to !== undefined) of(to).after++;
    if (from === to) continue;
    moved++;
    if (from !== undefined) of(from).lost++;
    if (to !== undefined) of(to).gained++;
  }
  return { balance, unit, total, moved, share: total === 0 ? 0 : moved / total, backends: sorted(counts) };
}

function sorted(counts: ReadonlyMap<string, Omit<BackendMove, 'name'>>): BackendMove[] {
  return [...counts].map(([name, entry]) => ({ name, ...entry })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * What `after` moved relative to `before` (undefined: a service that had no plan). Pre: both
 * plans are of the same service and balance. Cost: O(M) for Maglev (the tables exist already);
 * SAMPLE_KEYS picks per plan for ring and rendezvous; O(n) otherwise.
 */
export function movesBetween(before: ServicePlan | undefined, after: ServicePlan): Moves {
  const balance = after.config.balance;
  switch (balance) {
    case 'maglev':
      return compare(balance, 'slots', after.config.tableSize, tableOwners(before?.chooser.table), tableOwners(after.chooser.table));
    case 'ring':
    case 'rendezvous':
      return compare(balance, 'keys', SAMPLE_KEYS, sampledOwners(balance, before?.backends ?? []), sampledOwners(balance, after.backends));
    case 'roundrobin':
    case 'leastconn': {
      const counts = new Map<string, { before: number; after: number; gained: number; lost: number }>();
      for (const backend of before?.backends ?? []) counts.set(backend.name, { before: backend.weight, after: 0, gained: 0, lost: 0 });
      for (const backend of after.backends) counts.set(backend.name, { before: counts.get(backend.name)?.before ?? 0, after: backend.weight, gained: 0, lost: 0 });
      for (const entry of counts.values()) {
        entry.gained = Math.max(0, entry.after - entry.before);
        entry.lost = Math.max(0, entry.before - entry.after);
      }
      const total = after.backends.reduce((sum, backend) => sum + backend.weight, 0);
      return { balance, unit: 'weight', total, moved: 0, share: 0, backends: sorted(counts) };
    }
    default: {
      const never: never = balance;
      throw new Error(`unknown balance ${String(never)}`);
    }
  }
}
