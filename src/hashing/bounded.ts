/**
 * Consistent hashing with bounded loads: Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing
 * with Bounded Loads", SODA 2018 (arXiv 1608.01350, 2016); HAProxy's `hash-balance-factor`, Envoy's
 * `hash_balance_factor`. A wrapper over any picker, not a flag inside each algorithm.
 *
 * With total load L (connections already placed) and factor c > 1, backend i may take the next
 * connection only if load_i + 1 ≤ ceil(c · (L + 1) · w_i / W), W the sum of weights; with equal
 * weights that is ceil(c · average). The key's candidates are walked in the inner picker's own
 * deterministic order, so a key moves off its primary only while that primary is over its bound.
 * Some backend always qualifies: Σ load_i = L < c(L+1) = Σ bound_i.
 *
 * L is given, not computed: a caller that keeps it as a running count (HAProxy's per-proxy
 * `served`, which chash_server_is_eligible reads) makes a pick cost O(1) for it, instead of one
 * loadOf per backend. Without that count the picker sums the loads itself, O(n) per pick.
 */
import { LbError } from '../errors.js';
import type { Backend, HashKey, Picker } from './types.js';

/** Current loads, read at pick time (the proxy's live connection counts). */
export interface LoadView {
  /** Connections `name` holds now. */
  loadOf(name: string): number;
  /**
   * Σ loadOf(backend.name) over the backends of the picker this view is given to, kept by the
   * caller as a running count and returned in O(1). Must equal that sum whenever pick runs, or the
   * bounds move. Absent: the picker sums loadOf over its backends on every pick, O(n).
   */
  total?(): number;
}

class BoundedLoadPicker<B extends Backend> implements Picker<B> {
  readonly algorithm: Picker<B>['algorithm'];
  readonly backends: readonly B[];
  private readonly totalWeight: number;

  constructor(
    private readonly inner: Picker<B>,
    readonly factor: number,
    private readonly loads: LoadView,
  ) {
    this.algorithm = inner.algorithm;
    this.backends = inner.backends;
    this.totalWeight = inner.backends.reduce((sum, backend) => sum + backend.weight, 0);
  }

  /** The most connections `backend` may hold after taking one more, given the total load now. */
  capacity(backend: B, totalLoad: number): number {
    return Math.ceil((this.factor * (totalLoad + 1) * backend.weight) / this.totalWeight);
  }

  /** L: the caller's running count when it keeps one, else the sum over this picker's backends. */
  private totalLoad(): number {
    if (this.loads.total !== undefined) return this.loads.total();
    let total = 0;
    for (const backend of this.backends) total += this.loads.loadOf(backend.name);
    return total;
  }

  /**
   * Attempt n is the n-th candidate of the inner order that is under its bound.
   * Cost: O(1) for L with a running total (O(n) without), plus one inner pick and one loadOf per
   * candidate walked: a single one while the key's primary is under its bound.
   */
  pick(key: HashKey, attempt = 0): B | undefined {
    const total = this.totalLoad();
    let eligible = 0;
    for (let candidate = 0; candidate < this.backends.length; candidate++) {
      const backend = this.inner.pick(key, candidate);
      if (backend === undefined) return undefined;
      if (this.loads.loadOf(backend.name) + 1 > this.capacity(backend, total)) continue;
      if (eligible === attempt) return backend;
      eligible++;
    }
    return undefined;
  }
}

export function withBoundedLoads<B extends Backend>(inner: Picker<B>, factor: number, loads: LoadView): Picker<B> {
  if (!(Number.isFinite(factor) && factor > 1)) {
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `balance factor must be a number > 1, got ${factor}`);
  }
  return new BoundedLoadPicker(inner, factor, loads);
}
