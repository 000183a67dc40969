/**
 * Balancing strategies as the proxy asks for them: "the attempt-th distinct candidate for this
 * connection". The hashing pickers (src/hashing: maglev, ring, rendezvous, optionally wrapped in
 * bounded loads, Mirrokni et al. 2016) answer from the key alone. Round robin and least
 * connections live here rather than in src/hashing because they are not pure functions of a key:
 * they read live connection counts and turn a cursor, i.e. proxy state, and they cannot keep the
 * Picker promise "same key, same answer". Both are HAProxy's `balance roundrobin` / `leastconn`
 * for the first choice; a retry walks the backend list on from the connection's first choice
 * (`Flow.anchor`), so each retry tries a backend not tried yet, as HAProxy redispatches.
 */
import type { Balance } from '../config/index.js';
import { LbError } from '../errors.js';
import { createMaglevPicker, createPicker, withBoundedLoads, type Backend, type HashKey, type LoadView, type MaglevTable, type Picker, type SlotHash } from '../hashing/index.js';

/** What a strategy knows of one connection: its hash key and, once chosen, its first backend's index. */
export interface Flow {
  readonly key: HashKey;
  anchor: number;
}

export interface Chooser<B extends Backend> {
  readonly balance: Balance;
  readonly backends: readonly B[];
  /** Attempts 0..n-1 give n distinct backends for one flow; then undefined. Attempt 0 comes first. */
  pick(flow: Flow, attempt: number): B | undefined;
  /** balance: maglev only: the table picks read (what a kernel table and a moved-slots report are made of). */
  readonly table?: MaglevTable<B>;
}

export interface ChooserOptions {
  readonly tableSize?: number;
  readonly slotHash?: SlotHash;
  /** Bounded loads (hashing strategies only): a factor > 1. */
  readonly balanceFactor?: number;
  /** Live connection counts, by backend name. */
  readonly loads: LoadView;
}

class HashChooser<B extends Backend> implements Chooser<B> {
  readonly backends: readonly B[];
  constructor(
    readonly balance: Balance,
    private readonly picker: Picker<B>,
    readonly table: MaglevTable<B> | undefined,
  ) {
    this.backends = picker.backends;
  }

  pick(flow: Flow, attempt: number): B | undefined {
    return this.picker.pick(flow.key, attempt);
  }
}

/** Retries: the backend `attempt` places after the first choice, in list order. */
function walkFrom<B>(backends: readonly B[], flow: Flow, attempt: number): B | undefined {
  if (attempt >= backends.length) return undefined;
  return backends[(flow.anchor + attempt) % backends.length];
}

/**
 * Smooth weighted round robin (nginx's ngx_http_upstream_get_peer): every turn each backend gains
 * its weight, the richest is chosen and pays the total. Over sum(w) turns backend i is chosen w_i
 * times, spread evenly. Cost: O(n) per new connection.
 */
class RoundRobinChooser<B extends Backend> implements Chooser<B> {
  readonly balance = 'roundrobin' as const;
  private readonly current: Float64Array;
  private readonly totalWeight: number;

  constructor(readonly backends: readonly B[]) {
    this.current = new Float64Array(backends.length);
    this.totalWeight = backends.reduce((sum, backend) => sum + backend.weight, 0);
  }

  pick(flow: Flow, attempt: number): B | undefined {
    if (attempt > 0) return walkFrom(this.backends, flow, attempt);
    let best = 0;
    // createChooser refuses an empty list, so n ≥ 1; i and best stay in [0, n), n =
    // backends.length = current.length, so current[i], current[best] and backends[i] are defined.
    // An indexed loop, not forEach: a closure per pick would allocate on every new connection.
    for (let i = 0; i < this.backends.length; i++) {
      this.current[i]! += this.backends[i]!.weight;
      if (this.current[i]! > this.current[best]!) best = i;
    }
    this.current[best]! -= this.totalWeight;
    flow.anchor = best;
    return this.backends[best];
  }
}

/**
 * Least connections: the backend with the fewest live connections per unit of weight; ties go
 * round the list (a cursor turns each pick) so equal backends share new connections. O(n).
 */
class LeastConnChooser<B extends Backend> implements Chooser<B> {
  readonly balance = 'leastconn' as const;
  private cursor = 0;

  constructor(
    readonly backends: readonly B[],
    private readonly loads: LoadView,
  ) {}

  pick(flow: Flow, attempt: number): B | undefined {
    if (attempt > 0) return walkFrom(this.backends, flow, attempt);
    const count = this.backends.length;
    const start = this.cursor;
    this.cursor = (this.cursor + 1) % count;
    let best = start;
    let bestLoad = Infinity;
    // i = (start + step) mod count is in [0, count), count = backends.length ≥ 1 (createChooser
    // refuses an empty list), so backends[i] is defined.
    for (let step = 0; step < count; step++) {
      const i = (start + step) % count;
      const backend = this.backends[i]!;
      const load = this.loads.loadOf(backend.name) / backend.weight;
      if (load < bestLoad) {
        best = i;
        bestLoad = load;
      }
    }
    flow.anchor = best;
    return this.backends[best];
  }
}

/**
 * A service with no backend at all (every `dns:` name of it unresolved so far): every pick is
 * undefined, so the proxy refuses each connection as it does when no backend is usable.
 */
class EmptyChooser<B extends Backend> implements Chooser<B> {
  readonly backends: readonly B[] = [];
  constructor(readonly balance: Balance) {}

  pick(): B | undefined {
    return undefined;
  }
}

/**
 * Builds the strategy `balance` over `backends` (none: a chooser that never picks); throws LbError
 * on bad input (as createPicker does).
 */
export function createChooser<B extends Backend>(balance: Balance, backends: readonly B[], options: ChooserOptions): Chooser<B> {
  switch (balance) {
    case 'maglev':
    case 'ring':
    case 'rendezvous': {
      if (backends.length === 0) return new EmptyChooser(balance);
      const maglev = balance === 'maglev' ? createMaglevPicker(backends, { tableSize: options.tableSize, slotHash: options.slotHash }) : undefined;
      let picker: Picker<B> = maglev ?? createPicker(balance, backends);
      if (options.balanceFactor !== undefined) picker = withBoundedLoads(picker, options.balanceFactor, options.loads);
      return new HashChooser(balance, picker, maglev?.table);
    }
    case 'roundrobin':
    case 'leastconn': {
      if (backends.length === 0) return new EmptyChooser(balance);
      const sorted = [...backends].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      return balance === 'roundrobin' ? new RoundRobinChooser(sorted) : new LeastConnChooser(sorted, options.loads);
    }
    default: {
      const never: never = balance;
      throw new LbError('LB_ERR_INVALID_ARGUMENT', `unknown balance "${String(never)}"`);
    }
  }
}
