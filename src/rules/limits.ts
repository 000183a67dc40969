/**
 * Per-source limits: concurrent connections and new-connection rate ("N/s", "N/m"), in bounded
 * memory. The clock is injected: every call takes `now` (milliseconds, monotonic — the caller passes
 * performance.now()), so the logic is pure and tests drive time.
 *
 * Rate: a token bucket per source (capacity N, refilled at N per second or minute), so a source may
 * open N at once and then N per period; a refused attempt costs no token.
 *
 * Memory: a fixed table of `maxSources` slots (typed arrays, allocated once) plus a Map from source
 * key to slot. Sources with open connections are pinned; the others sit in a least-recently-seen
 * list and the oldest is forgotten when a new source needs a slot. If every slot is pinned, a new
 * source is refused ('table-full'). IPv6 sources are keyed by their /64 by default (one host
 * usually owns a whole /64, and could otherwise rotate through 2^64 addresses); IPv4-mapped IPv6
 * is keyed as IPv4.
 *
 * Why an LRU of exact entries and not hashed buckets (a count-min sketch): with hashed buckets an
 * innocent client that shares buckets with an abuser is refused for the abuser's traffic, and a
 * flood of addresses heats every bucket until everyone is refused. Here an entry is only ever
 * forgotten, never shared, so the limits can only err towards admitting: an attacker with more
 * than `maxSources` addresses in rotation can make the limiter forget idle sources' rate state
 * (theirs included, so each of their addresses gets a fresh burst), but cannot grow memory, cannot
 * get a well-behaved client refused, and cannot open more than `perSourceConnections` at once from
 * one source (its entry stays pinned while it has connections open). To hold every slot pinned it
 * needs `maxSources` sources with open connections, which the service's own connection cap stops
 * first when maxSources is above it.
 */
import { LbError } from '../errors.js';
import { AddressKey } from './cidr.js';

export interface RateLimit {
  /** Connections allowed per period, and the burst size. */
  readonly count: number;
  readonly periodMs: number;
}

const RATE = /^([1-9][0-9]{0,8})\/(s|m)$/;

/** What is wrong with `text` as a rate, for a caller that names the field itself; undefined when it is one. */
export function rateProblem(text: string): string | undefined {
  return RATE.test(text) ? undefined : `${JSON.stringify(text)}: expected "N/s" or "N/m" with N a whole number 1–999999999, e.g. "20/s"`;
}

/** Parses "N/s" or "N/m" (N a whole number 1–999999999). Throws LbError LB_ERR_INVALID_ARGUMENT. */
export function parseRate(text: string): RateLimit {
  const match = RATE.exec(text);
  if (!match) throw new LbError('LB_ERR_INVALID_ARGUMENT', `rate ${rateProblem(text) ?? JSON.stringify(text)}`);
  return { count: Number(match[1]), periodMs: match[2] === 's' ? 1000 : 60_000 };
}

export interface SourceLimitOptions {
  /** Most connections open at once from one source; undefined = no limit. */
  readonly perSourceConnections?: number;
  /** New connections per period from one source ("N/s", "N/m", or parsed); undefined = no limit. */
  readonly perSourceRate?: string | RateLimit;
  /** Sources tracked at most; default 65536 (measured about 9 MB when full of IPv6 sources, keys included). */
  readonly maxSources?: number;
  /** Bits of an IPv4 source that form its key; default 32. */
  readonly ipv4PrefixLength?: number;
  /** Bits of an IPv6 source that form its key; default 64. */
  readonly ipv6PrefixLength?: number;
}

export type LimitRefusal = 'over-connections' | 'over-rate' | 'table-full' | 'bad-address';

export type Admission = { readonly verdict: 'admitted'; readonly lease: SourceLease } | { readonly verdict: LimitRefusal };

/** Held for the life of an admitted connection; release it when the connection closes. */
export interface SourceLease {
  /** Idempotent: a second call does nothing. */
  release(): void;
}

export interface SourceLimiterStats {
  readonly tracked: number;
  readonly pinned: number;
  /** Idle sources forgotten to make room, since creation. */
  readonly evictions: number;
}

export const DEFAULT_MAX_SOURCES = 65_536;

const REFUSED: Record<LimitRefusal, Admission> = {
  'over-connections': Object.freeze({ verdict: 'over-connections' }),
  'over-rate': Object.freeze({ verdict: 'over-rate' }),
  'table-full': Object.freeze({ verdict: 'table-full' }),
  'bad-address': Object.freeze({ verdict: 'bad-address' }),
};

const NONE = -1;

function integerIn(value: number, min: number, max: number, name: string): number {
  if (!(Number.isInteger(value) && value >= min && value <= max)) {
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `${name} must be a whole number ${min}–${max}, got ${value}`);
  }
  return value;
}

/** The top `bits` bits of a 32-bit word (all of it from 32 up, none from 0 down). */
function masked(word: number, bits: number): number {
  if (bits >= 32) return word;
  if (bits <= 0) return 0;
  return (word & ~(0xffffffff >>> bits)) >>> 0;
}

class Lease implements SourceLease {
  released = false;
  constructor(
    private readonly limiter: SourceLimiter,
    readonly slot: number,
  ) {}

  release(): void {
    if (this.released) return;
    this.released = true;
    this.limiter.releaseSlot(this.slot);
  }
}

export class SourceLimiter {
  private readonly maxConnections: number;
  private readonly rate: RateLimit | undefined;
  private readonly ipv4Bits: number;
  private readonly ipv6Bits: number;
  readonly capacity: number;

  private readonly addressKey = new AddressKey();
  /**
   * Slot invariant: every slot number this class holds (a value of `slots`, an entry of `free`
   * below freeCount, a link of the idle list other than NONE, a Lease's slot) is in [0, capacity),
   * the length of every per-slot array, so `array[slot]!` below reads a defined element.
   */
  private readonly slots = new Map<string, number>();
  private readonly keys: (string | undefined)[];
  private readonly active: Int32Array;
  private readonly tokens: Float64Array;
  private readonly stamps: Float64Array;
  /** Doubly linked list of idle slots, oldest at head. */
  private readonly previous: Int32Array;
  private readonly next: Int32Array;
  private idleHead = NONE;
  private idleTail = NONE;
  private readonly free: Int32Array;
  private freeCount: number;
  private pinnedCount = 0;
  private evictionCount = 0;

  /** Throws LbError LB_ERR_INVALID_ARGUMENT for out-of-range options. */
  constructor(options: SourceLimitOptions) {
    this.maxConnections = options.perSourceConnections === undefined
      ? Number.POSITIVE_INFINITY
      : integerIn(options.perSourceConnections, 1, 2 ** 31 - 1, 'perSourceConnections');
    this.rate = typeof options.perSourceRate === 'string' ? parseRate(options.perSourceRate) : options.perSourceRate;
    if (this.rate) {
      integerIn(this.rate.count, 1, 999_999_999, 'rate count');
      if (!(this.rate.periodMs > 0)) throw new LbError('LB_ERR_INVALID_ARGUMENT', `rate period must be > 0 ms, got ${this.rate.periodMs}`);
    }
    this.capacity = integerIn(options.maxSources ?? DEFAULT_MAX_SOURCES, 1, 1 << 24, 'maxSources');
    this.ipv4Bits = integerIn(options.ipv4PrefixLength ?? 32, 0, 32, 'ipv4PrefixLength');
    this.ipv6Bits = integerIn(options.ipv6PrefixLength ?? 64, 0, 128, 'ipv6PrefixLength');
    const n = this.capacity;
    this.keys = new Array<string | undefined>(n).fill(undefined);
    this.active = new Int32Array(n);
    this.tokens = new Float64Array(n);
    this.stamps = new Float64Array(n);
    this.previous = new Int32Array(n).fill(NONE);
    this.next = new Int32Array(n).fill(NONE);
    this.free = new Int32Array(n);
    for (let i = 0; i < n; i++) this.free[i] = n - 1 - i;
    this.freeCount = n;
  }

  /**
   * The key a source is tracked under: its address masked to the configured prefix, IPv4-mapped
   * IPv6 as IPv4. Undefined if `address` is not an IP address (a zone index is ignored).
   */
  sourceKey(address: string): string | undefined {
    const key = this.addressKey;
    if (!key.set(address)) return undefined;
    // Compact keys (one UTF-16 unit per 16 bits) keep the Map small: 3 or 9 units.
    // key.words is a Uint32Array(4).
    if (key.family === 4) {
      const word = masked(key.words[0]!, this.ipv4Bits);
      return String.fromCharCode(4, word >>> 16, word & 0xffff);
    }
    const b = this.ipv6Bits;
    const w0 = masked(key.words[0]!, b);
    const w1 = masked(key.words[1]!, b - 32);
    const w2 = masked(key.words[2]!, b - 64);
    const w3 = masked(key.words[3]!, b - 96);
    return String.fromCharCode(6, w0 >>> 16, w0 & 0xffff, w1 >>> 16, w1 & 0xffff, w2 >>> 16, w2 & 0xffff, w3 >>> 16, w3 & 0xffff);
  }

  /**
   * Decides on a new connection from `address` at time `now` (ms). On 'admitted' the caller must
   * release the lease when the connection closes. Cost O(1) amortised; allocates the key string
   * and, when admitted, the lease.
   */
  admit(address: string, now: number): Admission {
    const key = this.sourceKey(address);
    if (key === undefined) return REFUSED['bad-address'];
    let slot = this.slots.get(key);
    if (slot === undefined) {
      slot = this.claimSlot(key, now);
      if (slot === NONE) return REFUSED['table-full'];
    } else {
      this.refill(slot, now);
    }
    if (this.active[slot]! >= this.maxConnections) return this.refuse(slot, 'over-connections');
    if (this.rate) {
      if (this.tokens[slot]! < 1) return this.refuse(slot, 'over-rate');
      this.tokens[slot]! -= 1;
    }
    if (this.active[slot] === 0) {
      this.unlinkIdle(slot);
      this.pinnedCount++;
    }
    this.active[slot]!++;
    return { verdict: 'admitted', lease: new Lease(this, slot) };
  }

  /** Open connections counted for the source of `address` (0 if untracked). */
  connections(address: string): number {
    const key = this.sourceKey(address);
    const slot = key === undefined ? undefined : this.slots.get(key);
    return slot === undefined ? 0 : this.active[slot]!;
  }

  stats(): SourceLimiterStats {
    return { tracked: this.slots.size, pinned: this.pinnedCount, evictions: this.evictionCount };
  }

  /** @internal Called by a lease, once. */
  releaseSlot(slot: number): void {
    this.active[slot]!--;
    if (this.active[slot]! > 0) return;
    this.pinnedCount--;
    if (this.rate) this.appendIdle(slot);
    else this.forget(slot); // without a rate, an idle source carries no state worth keeping
  }

  private refuse(slot: number, verdict: LimitRefusal): Admission {
    if (this.active[slot] === 0) {
      // Seen again: move to the young end of the idle list.
      this.unlinkIdle(slot);
      this.appendIdle(slot);
    }
    return REFUSED[verdict];
  }

  private refill(slot: number, now: number): void {
    if (!this.rate) return;
    const elapsed = now - this.stamps[slot]!;
    if (!(elapsed > 0)) return; // a clock that stood still or went back refills nothing
    this.tokens[slot] = Math.min(this.rate.count, this.tokens[slot]! + (elapsed * this.rate.count) / this.rate.periodMs);
    this.stamps[slot] = now;
  }

  /** A slot for a new source (free, else the oldest idle one), initialised; NONE if all are pinned. */
  private claimSlot(key: string, now: number): number {
    let slot: number;
    if (this.freeCount > 0) {
      slot = this.free[--this.freeCount]!; // 0 ≤ freeCount − 1 < capacity = free.length
    } else if (this.idleHead !== NONE) {
      slot = this.idleHead;
      this.unlinkIdle(slot);
      this.slots.delete(this.keys[slot] as string);
      this.evictionCount++;
    } else {
      return NONE;
    }
    this.keys[slot] = key;
    this.slots.set(key, slot);
    this.active[slot] = 0;
    this.tokens[slot] = this.rate ? this.rate.count : 0;
    this.stamps[slot] = now;
    this.appendIdle(slot);
    return slot;
  }

  private forget(slot: number): void {
    this.slots.delete(this.keys[slot] as string);
    this.keys[slot] = undefined;
    this.free[this.freeCount++] = slot;
  }

  private appendIdle(slot: number): void {
    this.previous[slot] = this.idleTail;
    this.next[slot] = NONE;
    if (this.idleTail !== NONE) this.next[this.idleTail] = slot;
    else this.idleHead = slot;
    this.idleTail = slot;
  }

  private unlinkIdle(slot: number): void {
    const before = this.previous[slot]!;
    const after = this.next[slot]!;
    if (before !== NONE) this.next[before] = after;
    else this.idleHead = after;
    if (after !== NONE) this.previous[after] = before;
    else this.idleTail = before;
    this.previous[slot] = NONE;
    this.next[slot] = NONE;
  }
}
