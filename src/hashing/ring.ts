/**
 * Ketama consistent hashing (libketama, as used by memcached clients), in the exact variant of the
 * npm `hashring` package's default mode, so that a server list that worked with `hashring` keeps
 * every key on the same server here:
 * - each server gets floor(weight / Σweight · 40 · n) point groups; group i is md5("NAME-i"), and its
 *   16 digest bytes give 4 points, each a little-endian uint32;
 * - a key's point is the first little-endian uint32 of md5(key); it belongs to the first ring point
 *   ≥ it, wrapping to the first point.
 * Ties between equal points of different servers (hashring keeps list order; libketama's qsort
 * leaves it undefined) are broken by name here, so the ring does not depend on list order.
 */
import { md5Key, md5Words } from './md5.js';
import type { Backend, HashKey, Picker } from './types.js';
import { canonicalBackends } from './validate.js';

export const KETAMA_POINT_GROUPS = 40;
export const KETAMA_POINTS_PER_GROUP = 4;

export interface RingPoints {
  /** Sorted ring positions. */
  readonly points: Uint32Array;
  /** owners[i] is the index (canonical order) of the backend that owns points[i]. */
  readonly owners: Uint32Array;
}

/** Lays out the ketama points of `backends` (canonical order). Cost: O(P log P), P ≈ 160 · n points. */
export function buildRing(backends: readonly Backend[]): RingPoints {
  const total = backends.reduce((sum, backend) => sum + backend.weight, 0);
  const counts = backends.map((backend) => Math.floor((backend.weight / total) * KETAMA_POINT_GROUPS * backends.length));
  const size = counts.reduce((sum, count) => sum + count, 0) * KETAMA_POINTS_PER_GROUP;
  const rawPoints = new Uint32Array(size);
  const rawOwners = new Uint32Array(size);
  const digest = new Uint32Array(4);
  const encoder = new TextEncoder();
  let next = 0;
  counts.forEach((count, index) => {
    const name = backends[index]!.name; // counts is backends.map(…): same length
    for (let group = 0; group < count; group++) {
      const bytes = encoder.encode(`${name}-${group}`);
      md5Words(bytes, bytes.length, digest);
      // j < KETAMA_POINTS_PER_GROUP = 4 = digest.length, so digest[j] is defined.
      for (let j = 0; j < KETAMA_POINTS_PER_GROUP; j++) {
        rawPoints[next] = digest[j]!;
        rawOwners[next] = index;
        next++;
      }
    }
  });
  // Sort by (point, owner): owner indices are in name order, hence the name tie-break.
  // order holds a permutation of 0..size−1 and rawPoints, rawOwners, points, owners all have
  // length size, so every [a], [b], [i] and [order[i]] below is defined.
  const order = new Uint32Array(size);
  for (let i = 0; i < size; i++) order[i] = i;
  order.sort((a, b) => rawPoints[a]! - rawPoints[b]! || rawOwners[a]! - rawOwners[b]!);
  const points = new Uint32Array(size);
  const owners = new Uint32Array(size);
  for (let i = 0; i < size; i++) {
    const from = order[i]!;
    points[i] = rawPoints[from]!;
    owners[i] = rawOwners[from]!;
  }
  return { points, owners };
}

/** Index of the first point ≥ `position`, or 0 past the last point (the ring wraps). O(log P). */
export function findPoint(points: Uint32Array, position: number): number {
  let low = 0;
  let high = points.length;
  // 0 ≤ low ≤ mid < high ≤ points.length, so points[mid] is defined.
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (points[mid]! < position) low = mid + 1;
    else high = mid;
  }
  return low === points.length ? 0 : low;
}

class RingPicker<B extends Backend> implements Picker<B> {
  readonly algorithm = 'ring' as const;
  private readonly digest = new Uint32Array(4);
  private readonly seen: Uint8Array;

  constructor(
    readonly backends: readonly B[],
    readonly ring: RingPoints,
  ) {
    this.seen = new Uint8Array(backends.length);
  }

  /** Ring position of a key: the first little-endian word of md5(key). */
  position(key: HashKey): number {
    return md5Key(key, this.digest)[0]!; // digest is a Uint32Array(4)
  }

  /**
   * Attempt n walks clockwise from the key's point to the n-th distinct owner (hashring's
   * `range()`, HAProxy's chash "next server"). Cost: O(log P) for attempt 0.
   */
  pick(key: HashKey, attempt = 0): B | undefined {
    const { points, owners } = this.ring;
    if (points.length === 0) return attempt === 0 ? this.backends[0] : undefined;
    // findPoint returns an index < points.length = owners.length, and i below wraps into the same
    // range, so owners[start] and owners[i] are defined; an owner indexes backends (seen.length).
    const start = findPoint(points, this.position(key));
    if (attempt === 0) return this.backends[owners[start]!];
    if (attempt < 0 || attempt >= this.backends.length) return undefined;
    const seen = this.seen;
    seen.fill(0);
    let distinct = 0;
    for (let step = 0; step < points.length; step++) {
      let i = start + step;
      if (i >= points.length) i -= points.length;
      const owner = owners[i]!;
      if (seen[owner] === 1) continue;
      if (distinct === attempt) return this.backends[owner];
      seen[owner] = 1;
      distinct++;
    }
    // Servers whose weight share rounded down to zero point groups own no point: name order.
    for (let owner = 0; owner < this.backends.length; owner++) {
      if (seen[owner] === 1) continue;
      if (distinct === attempt) return this.backends[owner];
      distinct++;
    }
    return undefined;
  }
}

export function createRingPicker<B extends Backend>(backends: readonly B[]): Picker<B> {
  const sorted = canonicalBackends(backends);
  return new RingPicker(sorted, buildRing(sorted));
}
