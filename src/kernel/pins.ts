/**
 * The DSR director's pins (`flows_ID`, director.ts): which of them name a dead backend, and the nft
 * text that deletes them. Pure: the listed pins and the dead backends in, text out; the writer lists
 * the map and applies the text.
 *
 * A pin keeps an established flow on its backend whatever the slot map says now. When a backend is
 * down (health, with `onDown: close`), its pins hold its flows on a host that no longer answers;
 * deleting them sends each flow's next packet where the slot map says, which no longer names the
 * backend; the live backend that gets it has no socket for it and answers with a reset, so the client
 * learns at once instead of retransmitting into a dead host. A drained backend keeps its pins.
 *
 * nft 1.0.6 cannot delete map elements by value, hence the listing: the keys whose value is a dead
 * backend's are deleted by key.
 */
import { isIPv4 } from 'node:net';
import type { DirectorService, DsrBackend, DsrMethod } from './director-plan.js';
import { DIRECTOR_TABLE } from './director-plan.js';
import { elementLines } from './director.js';

/** Pin keys are `ADDR . PORT` as nft lists `ip saddr . tcp sport`. */
const PIN_KEY = /^(\d{1,3}(?:\.\d{1,3}){3}) \. (\d{1,5})$/;

/** Whether a listed value names `backend` under `method` (l3: its address; l2: its mark, listed as a number). */
function names(value: string, backend: DsrBackend, method: DsrMethod): boolean {
  switch (method) {
    case 'l3':
      return value === backend.address;
    case 'l2':
      return value.trim() !== '' && Number(value) === backend.mark;
    default: {
      const never: never = method;
      return never;
    }
  }
}

/**
 * The keys of `pins` (key text → value text, as nft lists flows_ID) whose value names one of
 * `dead`, in listing order. Keys that are not an IPv4 address and a port are left out: the text is
 * written back into an nft script, so only what a pin key can be goes through.
 */
export function deadPinKeys(pins: ReadonlyMap<string, string>, dead: readonly DsrBackend[], method: DsrMethod): string[] {
  if (dead.length === 0) return [];
  const keys: string[] = [];
  for (const [key, value] of pins) {
    if (!dead.some((backend) => names(value, backend, method))) continue;
    const [, address, port] = PIN_KEY.exec(key) ?? [];
    if (address === undefined || port === undefined || !isIPv4(address) || Number(port) > 65535) continue;
    keys.push(key);
  }
  return keys;
}

/**
 * One transaction deleting `keys` from the service's flows_ID ('' when there are none). Pre: each
 * key is in the map when the script is applied; one that is not (it timed out, or a SYN on its
 * source port deleted it) makes nft 1.0.6 refuse the whole script with ENOENT, and the caller lists
 * again (writer.ts).
 */
export function renderUnpin(service: Pick<DirectorService, 'id'>, keys: readonly string[]): string {
  if (keys.length === 0) return '';
  return [`delete element ip ${DIRECTOR_TABLE} flows_${service.id} {`, elementLines(keys, '\t', 8), '}', ''].join('\n');
}

/** The script that deletes the pins of `dead` among the listed `pins`, and how many it deletes. */
export function unpinDead(service: Pick<DirectorService, 'id'>, pins: ReadonlyMap<string, string>, dead: readonly DsrBackend[], method: DsrMethod): { script: string; count: number } {
  const keys = deadPinKeys(pins, dead, method);
  return { script: renderUnpin(service, keys), count: keys.length };
}

/**
 * How many of the listed `pins` name each of `backends` (by name; backends no pin names count 0),
 * what /stats shows per DSR backend. Pins naming no backend (a value the table no longer holds) are
 * left out, so the counts may sum to less than `pins.size`. Cost: O(pins + backends).
 */
export function pinsPerBackend(pins: ReadonlyMap<string, string>, backends: readonly DsrBackend[], method: DsrMethod): Map<string, number> {
  const counts = new Map(backends.map((backend) => [backend.name, 0]));
  const byValue = new Map<string, string>();
  for (const backend of backends) byValue.set(method === 'l3' ? backend.address : String(backend.mark), backend.name);
  for (const value of pins.values()) {
    const name = byValue.get(method === 'l3' ? value : String(Number(value)));
    if (name !== undefined) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}
