/**
 * Rendezvous (highest random weight) hashing: Thaler and Ravishankar, "Using name-based mappings to
 * increase hit rates", IEEE/ACM ToN 1998; weighted by the logarithmic method (Schindelhauer and
 * Schomaker 2005; "Weighted distributed hash tables"): backend i scores −w_i / ln(u_i), where
 * u_i ∈ (0,1) is the pair hash of (key hash, name hash), and the highest score wins.
 *
 * Removing a backend moves only its own keys; adding one moves keys only onto it; no table at all.
 * Cost: O(n) a lookup (one pair hash, and with unequal weights one logarithm, per backend).
 */
import { hashKey, hashPair } from './murmur3.js';
import type { Backend, HashKey, Picker } from './types.js';
import { canonicalBackends } from './validate.js';

/** u ∈ (0,1) from a 32-bit hash: never 0 or 1, so the logarithm is finite and negative. */
function unit(hash: number): number {
  return (hash + 0.5) / 4294967296;
}

class RendezvousPicker<B extends Backend> implements Picker<B> {
  readonly algorithm = 'rendezvous' as const;
  private readonly nameHashes: Uint32Array;
  private readonly weights: Float64Array;
  private readonly uniform: boolean;
  private readonly scores: Float64Array;
  private readonly order: Uint32Array;

  constructor(readonly backends: readonly B[]) {
    const n = backends.length;
    this.nameHashes = new Uint32Array(n);
    this.weights = new Float64Array(n);
    backends.forEach((backend, i) => {
      this.nameHashes[i] = hashKey(backend.name);
      this.weights[i] = backend.weight;
    });
    const first = backends[0];
    this.uniform = first === undefined || backends.every((backend) => backend.weight === first.weight);
    this.scores = new Float64Array(n);
    this.order = new Uint32Array(n);
  }

  /**
   * Score of backend i for a key hash; with equal weights the raw hash orders the same way.
   * Pre: 0 ≤ i < n = nameHashes.length = weights.length (every caller loops i < n), so both reads are defined.
   */
  private score(keyHash: number, i: number): number {
    const hash = hashPair(keyHash, this.nameHashes[i]!);
    return this.uniform ? hash : -this.weights[i]! / Math.log(unit(hash));
  }

  /** Attempt n is the backend with the (n+1)-th highest score; ties go to the earlier name. */
  pick(key: HashKey, attempt = 0): B | undefined {
    const n = this.backends.length;
    if (attempt < 0 || attempt >= n) return undefined;
    const keyHash = hashKey(key);
    if (attempt === 0) {
      let best = 0;
      let bestScore = this.score(keyHash, 0);
      for (let i = 1; i < n; i++) {
        const s = this.score(keyHash, i);
        if (s > bestScore) {
          bestScore = s;
          best = i;
        }
      }
      return this.backends[best];
    }
    const { scores, order } = this;
    for (let i = 0; i < n; i++) {
      scores[i] = this.score(keyHash, i);
      order[i] = i;
    }
    // order is a permutation of 0..n−1 (scores.length = n) and 0 < attempt < n was checked above.
    order.sort((a, b) => scores[b]! - scores[a]! || a - b);
    return this.backends[order[attempt]!];
  }
}

export function createRendezvousPicker<B extends Backend>(backends: readonly B[]): Picker<B> {
  return new RendezvousPicker(canonicalBackends(backends));
}
