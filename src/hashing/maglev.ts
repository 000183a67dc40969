/**
 * Maglev consistent hashing: Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
 * Balancer", NSDI'16, §3.4 (population, Pseudocode 1), with weights as in Envoy's maglev_lb: a
 * backend of weight w takes a turn in a round only while its share is behind w / max weight.
 *
 * Building is pure and separate from lookup (Katran's calculateHashRing habit): `buildMaglevTable`
 * returns an immutable table, `diffMaglevTables` the slots that changed, and a picker is a thin view
 * over a table. A lookup is one key hash and one array read.
 */
import { LbError } from '../errors.js';
import { hashKey, murmur3Bytes } from './murmur3.js';
import type { Backend, HashKey, Picker } from './types.js';
import { canonicalBackends, isPrime } from './validate.js';

export const DEFAULT_MAGLEV_TABLE_SIZE = 65537;
/** The largest table accepted: 2^24 slots is 64 MiB of table and seconds of build; more is a mistake. */
export const MAX_MAGLEV_TABLE_SIZE = 2 ** 24;

/** Seeds of the two name hashes that give each backend its permutation (paper: h1 and h2). */
const OFFSET_SEED = 0x4d41474c; // "MAGL"
const SKIP_SEED = 0x45563031; // "EV01"

/** One backend's permutation parameters and weight, as the paper's population step consumes them. */
export interface PermutationEntry {
  readonly offset: number;
  readonly skip: number;
  readonly weight: number;
}

/**
 * The population step of Pseudocode 1, as a pure function of each entry's (offset, skip, weight)
 * and their order. Entry i's permutation is (offset + j·skip) mod M. Returns, for every slot, the
 * index of the entry that owns it.
 *
 * Pre: M prime, 0 ≤ offset < M, 1 ≤ skip < M, weights > 0, at least one entry.
 * Cost: O(M log M) expected probes for equal weights (the paper's bound); no allocation but the result.
 */
export function populateMaglev(entries: readonly PermutationEntry[], tableSize: number): Int32Array {
  const count = entries.length;
  const table = new Int32Array(tableSize).fill(-1);
  const cursor = new Float64Array(count); // current permutation position of each entry
  const skips = new Float64Array(count);
  const weights = new Float64Array(count);
  const placed = new Float64Array(count); // slots placed so far by each lighter entry
  let maxWeight = 0;
  entries.forEach((entry, i) => {
    maxWeight = Math.max(maxWeight, entry.weight);
    cursor[i] = entry.offset;
    skips[i] = entry.skip;
    weights[i] = entry.weight;
  });
  let filled = 0;
  // i < count, the length of cursor, skips, weights and placed, so their [i] is defined. A slot
  // starts at an offset < M (pre) and steps by skip < M, wrapping at M, so 0 ≤ slot < M =
  // table.length and table[slot] is defined.
  for (let round = 1; filled < tableSize; round++) {
    for (let i = 0; i < count && filled < tableSize; i++) {
      const weight = weights[i]!;
      // Envoy's rule: an entry of weight max/k places one slot every k rounds.
      if (weight < maxWeight) {
        if (round * weight < (placed[i]! + 1) * maxWeight) continue;
        placed[i]! += 1;
      }
      const skip = skips[i]!;
      let slot = cursor[i]!;
      while (table[slot]! >= 0) {
        slot += skip;
        if (slot >= tableSize) slot -= tableSize;
      }
      table[slot] = i;
      slot += skip;
      if (slot >= tableSize) slot -= tableSize;
      cursor[i] = slot;
      filled++;
    }
  }
  return table;
}

/** A built table: slot → index into `backends` (canonical order). Immutable by convention. */
export interface MaglevTable<B extends Backend = Backend> {
  readonly size: number;
  readonly backends: readonly B[];
  readonly slots: Int32Array;
}

/** The permutation a backend gets from its name: offset = h1(name) mod M, skip = h2(name) mod (M−1) + 1. */
export function permutationOf(name: string, tableSize: number, weight = 1): PermutationEntry {
  const bytes = new TextEncoder().encode(name);
  return {
    offset: murmur3Bytes(bytes, bytes.length, OFFSET_SEED) % tableSize,
    skip: (murmur3Bytes(bytes, bytes.length, SKIP_SEED) % (tableSize - 1)) + 1,
    weight,
  };
}

export function checkTableSize(tableSize: number): void {
  if (Number.isInteger(tableSize) && tableSize > MAX_MAGLEV_TABLE_SIZE) {
    throw new LbError('LB_ERR_TABLE_SIZE', `table size must be at most ${MAX_MAGLEV_TABLE_SIZE}, got ${tableSize}`);
  }
  if (!Number.isInteger(tableSize) || !isPrime(tableSize)) {
    throw new LbError('LB_ERR_TABLE_SIZE', `table size must be a prime number, got ${tableSize}`);
  }
}

/**
 * Builds the Maglev table of `backends`. The result depends only on the set of (name, weight)
 * pairs and M, never on the order of the list.
 * Pre: M prime and at least the number of backends (else a backend could own no slot).
 */
export function buildMaglevTable<B extends Backend>(
  backends: readonly B[],
  tableSize: number = DEFAULT_MAGLEV_TABLE_SIZE,
): MaglevTable<B> {
  checkTableSize(tableSize);
  const sorted = canonicalBackends(backends);
  if (tableSize < sorted.length) {
    throw new LbError('LB_ERR_TABLE_SIZE', `table size ${tableSize} is smaller than the ${sorted.length} backends`);
  }
  const entries = sorted.map((backend) => permutationOf(backend.name, tableSize, backend.weight));
  return { size: tableSize, backends: sorted, slots: populateMaglev(entries, tableSize) };
}

/**
 * The backend that owns `slot`. Pre: 0 ≤ slot < table.size, and the table was built by
 * buildMaglevTable, whose every slot holds an index into its backends. O(1).
 */
export function slotOwner<B extends Backend>(table: MaglevTable<B>, slot: number): B {
  // slots.length = size > slot (pre), and a built table's slot values index its backends.
  return table.backends[table.slots[slot]!]!;
}

/** A slot that changed owner between two tables of the same size. */
export interface SlotChange {
  readonly slot: number;
  readonly from: string;
  readonly to: string;
}

/** The slots whose backend (by name) differs; what the DSR director rewrites and nothing else. */
export function diffMaglevTables(before: MaglevTable, after: MaglevTable): SlotChange[] {
  if (before.size !== after.size) {
    throw new LbError('LB_ERR_TABLE_SIZE', `cannot diff tables of sizes ${before.size} and ${after.size}`);
  }
  const changes: SlotChange[] = [];
  for (let slot = 0; slot < before.size; slot++) {
    const from = slotOwner(before, slot).name;
    const to = slotOwner(after, slot).name;
    if (from !== to) changes.push({ slot, from, to });
  }
  return changes;
}

/** Maps a key to a slot in [0, M). The default is the documented key hash mod M. */
export type SlotHash = (key: HashKey, tableSize: number) => number;

export const defaultSlotHash: SlotHash = (key, tableSize) => hashKey(key) % tableSize;

export interface MaglevOptions {
  readonly tableSize?: number;
  /** Replace the key → slot mapping, e.g. with the kernel-compatible jhash of the DSR director. */
  readonly slotHash?: SlotHash;
}

class MaglevPicker<B extends Backend> implements Picker<B> {
  readonly algorithm = 'maglev' as const;
  readonly backends: readonly B[];
  private readonly seen: Uint8Array;

  constructor(
    readonly table: MaglevTable<B>,
    private readonly slotHash: SlotHash,
  ) {
    this.backends = table.backends;
    this.seen = new Uint8Array(table.backends.length);
  }

  /**
   * Attempt 0 is the slot's owner. Later attempts walk the following slots and return the next
   * backends not yet returned: since slot owners are spread pseudo-randomly, the clients of a
   * backend that is skipped spread over all the others rather than onto one neighbour.
   * Cost: O(1) for attempt 0; O(attempt · M/N) expected otherwise (coupon collector for large n).
   */
  pick(key: HashKey, attempt = 0): B | undefined {
    const { slots, size, backends } = this.table;
    // A SlotHash returns a slot in [0, M) and slots.length = M, so slots[start] and slots[slot]
    // below are defined; a slot's value indexes backends, whose length is seen.length.
    const start = this.slotHash(key, size);
    if (attempt === 0) return backends[slots[start]!];
    if (attempt >= backends.length || attempt < 0) return undefined;
    const seen = this.seen;
    seen.fill(0);
    let distinct = 0;
    for (let step = 0; step < size; step++) {
      let slot = start + step;
      if (slot >= size) slot -= size;
      const index = slots[slot]!;
      if (seen[index] === 1) continue;
      if (distinct === attempt) return backends[index];
      seen[index] = 1;
      distinct++;
    }
    // A backend that owns no slot at all (only possible with extreme weights): take name order.
    for (let index = 0; index < backends.length; index++) {
      if (seen[index] === 1) continue;
      if (distinct === attempt) return backends[index];
      distinct++;
    }
    return undefined;
  }
}

export function createMaglevPicker<B extends Backend>(backends: readonly B[], options: MaglevOptions = {}): Picker<B> & { readonly table: MaglevTable<B> } {
  const table = buildMaglevTable(backends, options.tableSize ?? DEFAULT_MAGLEV_TABLE_SIZE);
  return new MaglevPicker(table, options.slotHash ?? defaultSlotHash);
}
