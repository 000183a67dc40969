/**
 * The one interface every balancing algorithm implements (HAProxy's lb_chash/lb_map split,
 * Envoy's load_balancing_policies): a pure `Picker` built once from a backend list.
 */

/** A backend as the hashing core sees it: identity is the name, never the position in a list. */
export interface Backend {
  readonly name: string;
  /** Relative weight, a finite number > 0. */
  readonly weight: number;
}

/**
 * What a flow is hashed on. A string is hashed as its UTF-8 bytes, so `"10.0.0.1"` and the bytes
 * of that text hash alike; a client address is normally passed as raw bytes (see `keys.ts`).
 */
export type HashKey = string | Uint8Array;

export type Algorithm = 'ring' | 'maglev' | 'rendezvous';

export const ALGORITHMS: readonly Algorithm[] = ['ring', 'maglev', 'rendezvous'];

export interface Picker<B extends Backend = Backend> {
  readonly algorithm: Algorithm;
  /** The backends the picker was built from, in canonical (name) order. */
  readonly backends: readonly B[];
  /**
   * The `attempt`-th distinct candidate for `key` (0 = the primary). Attempts 0..n-1 yield n
   * distinct backends, each backend once; past that, `undefined`. Same key and backends, same
   * answer, on any machine and in any order the backends were listed.
   */
  pick(key: HashKey, attempt?: number): B | undefined;
}
