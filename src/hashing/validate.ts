/**
 * Checks shared by every picker builder, so each algorithm rejects bad input with the same codes.
 */
import { LbError } from '../errors.js';
import type { Backend } from './types.js';

/**
 * Returns the backends sorted by name (the canonical order every algorithm iterates in), after
 * checking that there is at least one, that names are unique and non-empty, and weights are > 0.
 */
export function canonicalBackends<B extends Backend>(backends: readonly B[]): B[] {
  if (backends.length === 0) throw new LbError('LB_ERR_NO_BACKENDS', 'no backends given');
  const seen = new Set<string>();
  for (const backend of backends) {
    if (backend.name.length === 0) throw new LbError('LB_ERR_INVALID_ARGUMENT', 'a backend name is empty');
    if (seen.has(backend.name)) {
      throw new LbError('LB_ERR_DUPLICATE_BACKEND', `duplicate backend name "${backend.name}"`);
    }
    seen.add(backend.name);
    if (!(Number.isFinite(backend.weight) && backend.weight > 0)) {
      throw new LbError('LB_ERR_BAD_WEIGHT', `backend "${backend.name}": weight must be a number > 0, got ${backend.weight}`);
    }
  }
  return [...backends].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}
