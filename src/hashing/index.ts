/**
 * The hashing core's front door: build a picker by algorithm name.
 */
import { LbError } from '../errors.js';
import { createMaglevPicker, type MaglevOptions } from './maglev.js';
import { createRendezvousPicker } from './rendezvous.js';
import { createRingPicker } from './ring.js';
import { ALGORITHMS, type Algorithm, type Backend, type Picker } from './types.js';

export * from './types.js';
export { withBoundedLoads, type LoadView } from './bounded.js';
export { buildMaglevTable, createMaglevPicker, diffMaglevTables, slotOwner, DEFAULT_MAGLEV_TABLE_SIZE, MAX_MAGLEV_TABLE_SIZE, type MaglevTable, type SlotChange, type SlotHash } from './maglev.js';
export { jhashSlotHash, nftJhashSlot } from './jhash.js';
export { addressBytes, flowKey } from './keys.js';
export { isPrime } from './validate.js';
export { hashKey } from './murmur3.js';

export type PickerOptions = MaglevOptions;

export function isAlgorithm(value: string): value is Algorithm {
  return (ALGORITHMS as readonly string[]).includes(value);
}

/** Builds the picker of `algorithm` over `backends`; throws LbError on bad input. */
export function createPicker<B extends Backend>(algorithm: Algorithm, backends: readonly B[], options: PickerOptions = {}): Picker<B> {
  switch (algorithm) {
    case 'ring':
      return createRingPicker(backends);
    case 'maglev':
      return createMaglevPicker(backends, options);
    case 'rendezvous':
      return createRendezvousPicker(backends);
    default: {
      const never: never = algorithm;
      throw new LbError('LB_ERR_INVALID_ARGUMENT', `unknown algorithm "${String(never)}"`);
    }
  }
}
