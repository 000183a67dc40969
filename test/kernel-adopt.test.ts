/**
 * Reading a loaded DSR director table back (src/kernel/adopt.ts), as `l4lb run` does at start to
 * adopt it: from the objects of `nft -j list table ip l4lb_dsr` (nft 1.0.6's JSON: marks and slot
 * keys as numbers, pins wrapped with their expiry) and the plan, whose table it is, whether only
 * slot elements differ, and what each slot holds. Also the pins per backend /stats shows (pins.ts).
 * The kernel's side is test/kernel-restart.test.ts (DSR half).
 */
import { describe, expect, it } from 'vitest';
import type { DsrServiceConfig } from '../src/config/types.js';
import { directorShape, directorSlotValues, mapEntries, pinsPerBackend, planDirector, readDirector, renderDirector, type DirectorService, type DsrMethod, type NftObject } from '../src/kernel/index.js';

function config(overrides: Partial<DsrServiceConfig> = {}): DsrServiceConfig {
  return {
    mode: 'dsr', name: 'web-1', vip: { host: '192.0.2.200', port: 80 }, dscp: 10, hashKey: 'source-ip-port', hashSeed: 1, tableSize: 31, onDown: 'close',
    backends: [1, 2, 3].map((i) => ({ name: `b${i}`, address: { host: `203.0.113.1${i}`, port: 80 }, weight: 1 })),
    ...overrides,
  };
}

const plan = planDirector([config()]);
const [service] = plan;
if (service === undefined) throw new Error('no plan');

/** A pin of flows_ID as nft -j lists it. */
function pin(port: number, value: string | number): unknown[] {
  return [{ elem: { val: { concat: ['198.51.100.10', port] }, expires: 3599 } }, value];
}

/**
 * The objects of `nft -j list table ip l4lb_dsr` for one service: the owner set (its fingerprint a
 * number, as nft lists a mark), the slot map (`values[slot]`, l3 addresses or l2 marks as numbers),
 * the pins, and the other objects the renderer declares.
 */
function listing(values: readonly (string | number)[], options: { owner?: number | null; pins?: unknown[][] } = {}): NftObject[] {
  const owner = options.owner === undefined ? directorShape(plan, 'l3') : options.owner;
  const common = { family: 'ip', table: 'l4lb_dsr' };
  return [
    { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
    { table: { family: 'ip', name: 'l4lb_dsr', handle: 7 } },
    ...(owner === null ? [] : [{ set: { ...common, name: 'l4lb_owner', type: 'mark', handle: 2, elem: [owner] } }]),
    { counter: { ...common, name: 'from_vip', handle: 3, packets: 0, bytes: 0 } },
    { counter: { ...common, name: 'in_web_1', handle: 5, packets: 912, bytes: 61234 } },
    { map: { ...common, name: 'slots_web_1', type: 'mark', handle: 6, map: 'ipv4_addr', elem: values.map((value, slot) => [slot, value]) } },
    { map: { ...common, name: 'flows_web_1', type: ['ipv4_addr', 'inet_service'], handle: 7, map: 'ipv4_addr', size: 262144, flags: ['timeout', 'dynamic'], timeout: 3600, ...(options.pins === undefined ? {} : { elem: options.pins }) } },
    { chain: { ...common, name: 'prerouting', handle: 8, type: 'filter', hook: 'prerouting', prio: -300, policy: 'accept' } },
  ];
}

const values = directorSlotValues(service, 'l3');

describe('readDirector', () => {
  it('a table of the same shape: every slot value as the slot map holds it, and the pins counted', () => {
    const pins = [pin(30000, '203.0.113.12'), pin(30001, '203.0.113.11')];
    expect(readDirector(listing(values, { pins }), plan, 'l3')).toEqual({ kind: 'same-shape', slots: [values], pins: [2] });
  });

  it('slots that differ from the plan are read as they are (the writer rewrites only those)', () => {
    const moved = values.map((value, slot) => (slot % 5 === 0 ? '203.0.113.13' : value));
    const reading = readDirector(listing(moved), plan, 'l3');
    expect(reading).toEqual({ kind: 'same-shape', slots: [moved], pins: [0] });
  });

  it('no l4lb_owner set: foreign, whatever the rest holds', () => {
    expect(readDirector(listing(values, { owner: null }), plan, 'l3')).toEqual({ kind: 'foreign' });
    expect(readDirector([{ table: { family: 'ip', name: 'l4lb_dsr', handle: 1 } }], plan, 'l3')).toEqual({ kind: 'foreign' });
  });

  it('another shape: another fingerprint, seed, table size, backend address or method', () => {
    const other = (services: DirectorService[], method: DsrMethod = 'l3') => readDirector(listing(values), services, method).kind;
    expect(other(planDirector([config({ hashSeed: 2 })]))).toBe('other-shape');
    expect(other(planDirector([config({ tableSize: 37 })]))).toBe('other-shape');
    expect(other(planDirector([config({ backends: [1, 2, 4].map((i) => ({ name: `b${i}`, address: { host: `203.0.113.1${i}`, port: 80 }, weight: 1 })) })]))).toBe('other-shape');
    expect(other(plan, 'l2')).toBe('other-shape');
    expect(readDirector(listing(values, { owner: 1234 }), plan, 'l3')).toMatchObject({ kind: 'other-shape', reason: expect.stringContaining('shape differs') });
  });

  it('a slot missing, or naming no backend of the service: other-shape with the slot named', () => {
    expect(readDirector(listing(values.slice(0, 30)), plan, 'l3')).toEqual({ kind: 'other-shape', reason: 'slots_web_1 has no slot 30' });
    const stray = values.map((value, slot) => (slot === 4 ? '203.0.113.99' : value));
    expect(readDirector(listing(stray), plan, 'l3')).toEqual({ kind: 'other-shape', reason: 'slots_web_1 slot 4 holds 203.0.113.99, no backend of service web-1' });
  });

  it('l2: marks listed as numbers read back as the renderer writes them (hex)', () => {
    const marks = service.table.backends.map((backend) => backend.mark);
    const l2Values = directorSlotValues(service, 'l2');
    const listed = Array.from(service.table.slots, (index) => marks[index] ?? 0);
    const reading = readDirector(listing(listed, { owner: directorShape(plan, 'l2') }), plan, 'l2');
    expect(reading).toEqual({ kind: 'same-shape', slots: [l2Values], pins: [0] });
    expect(new Set(l2Values)).toEqual(new Set(['0xcb00710b', '0xcb00710c', '0xcb00710d']));
  });

  it('renderDirector writes the owner set with the fingerprint readDirector compares', () => {
    const text = renderDirector(plan, 'l3');
    const fingerprint = directorShape(plan, 'l3');
    expect(text).toContain(`table ip l4lb_dsr {\n\tset l4lb_owner {\n\t\ttype mark\n\t\telements = { 0x${fingerprint.toString(16).padStart(8, '0')} }\n\t}`);
    expect(directorShape(plan, 'l2')).not.toBe(fingerprint);
    expect(directorShape(planDirector([config()]), 'l3')).toBe(fingerprint);
  });
});

describe('pinsPerBackend', () => {
  const backends = service.table.backends;

  it('l3: pins per backend by address; a backend without pins counts 0; stray values are left out', () => {
    const pins = mapEntries({ elem: [pin(1, '203.0.113.12'), pin(2, '203.0.113.11'), pin(3, '203.0.113.12'), pin(4, '203.0.113.99')] });
    expect(Object.fromEntries(pinsPerBackend(pins, backends, 'l3'))).toEqual({ b1: 1, b2: 2, b3: 0 });
  });

  it('l2: pins per backend by mark, listed as numbers', () => {
    const mark = (name: string) => backends.find((backend) => backend.name === name)?.mark ?? 0;
    const pins = mapEntries({ elem: [pin(1, mark('b3')), pin(2, mark('b3')), pin(3, mark('b1'))] });
    expect(Object.fromEntries(pinsPerBackend(pins, backends, 'l2'))).toEqual({ b1: 1, b2: 0, b3: 2 });
  });
});
