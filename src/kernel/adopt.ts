/**
 * Reading a DSR director table that is already loaded (`nft -j list table ip l4lb_dsr`) back into
 * what `l4lb run` needs to adopt it at start: whose table it is, whether it has the shape of the
 * plan, and the value of every slot of each `slots_ID`. The writer then rewrites only the slots
 * that differ from the gated plan (Katran's habit: write the delta), so the pins in `flows_ID`
 * survive a restart and no flow moves. Pure: a listing and a plan in, a reading out.
 */
import type { DirectorService, DsrBackend, DsrMethod } from './director-plan.js';
import { directorShape, slotValue } from './director.js';
import { mapElements, objectsOf, setElements, type NftObject } from './nft.js';
import { OWNER_SET } from './owner.js';

/**
 * - `foreign`: no set `l4lb_owner`: l4lb did not make this table and must not touch it.
 * - `other-shape`: an l4lb table that a delta cannot turn into the plan (`reason` says why): load whole.
 * - `same-shape`: `slots[i][slot]` is the value (slotValue form) slot `slot` of service i holds now,
 *   and `pins[i]` how many pins its `flows_ID` holds.
 */
export type DirectorReading =
  | { readonly kind: 'foreign' }
  | { readonly kind: 'other-shape'; readonly reason: string }
  | { readonly kind: 'same-shape'; readonly slots: readonly (readonly string[])[]; readonly pins: readonly number[] };

/** The backend a listed map value names: l3 lists an address, l2 a mark (a number, or its hex text). */
function backendOf(value: string, backends: readonly DsrBackend[], method: DsrMethod): DsrBackend | undefined {
  switch (method) {
    case 'l3':
      return backends.find((backend) => backend.address === value);
    case 'l2':
      return value.trim() === '' ? undefined : backends.find((backend) => backend.mark === Number(value));
    default: {
      const never: never = method;
      return never;
    }
  }
}

/**
 * What the listed director table holds, read against `services` (the plan, gated or not: only its
 * shape and backends are used) and `method`. Pre: `listing` is the table's objects as nft lists them.
 * Cost: one pass over every slot of every service.
 */
export function readDirector(listing: readonly NftObject[], services: readonly DirectorService[], method: DsrMethod): DirectorReading {
  const owner = objectsOf(listing, 'set').get(OWNER_SET);
  if (owner === undefined) return { kind: 'foreign' };
  const fingerprint = setElements(owner).map(Number)[0];
  if (fingerprint !== directorShape(services, method)) return { kind: 'other-shape', reason: 'its shape differs (services, VIPs, DSCP, hash, table size, backends or method)' };
  const maps = objectsOf(listing, 'map');
  const slots: string[][] = [];
  const pins: number[] = [];
  for (const service of services) {
    const name = `slots_${service.id}`;
    const elements = mapElements(maps.get(name));
    const values: string[] = [];
    for (let slot = 0; slot < service.table.size; slot++) {
      const listed = elements.get(slot);
      if (listed === undefined) return { kind: 'other-shape', reason: `${name} has no slot ${slot}` };
      const backend = backendOf(listed, service.table.backends, method);
      if (backend === undefined) return { kind: 'other-shape', reason: `${name} slot ${slot} holds ${listed}, no backend of service ${service.name}` };
      values.push(slotValue(backend, method));
    }
    slots.push(values);
    const flows = maps.get(`flows_${service.id}`)?.elem;
    pins.push(Array.isArray(flows) ? flows.length : 0);
  }
  return { kind: 'same-shape', slots, pins };
}

/** The value of every slot of a planned (gated) service, as the slot map holds it. */
export function directorSlotValues(service: DirectorService, method: DsrMethod): string[] {
  return Array.from(service.table.slots, (index) => {
    const backend = service.table.backends[index];
    return backend === undefined ? '' : slotValue(backend, method);
  });
}
