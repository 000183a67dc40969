/**
 * The DSR director's pin deletion as pure functions (src/kernel/pins.ts): from a listing of flows_ID
 * (as `nft -j list map` prints it on nft 1.0.6, timeouts and all) and the dead backends, the nft text
 * that deletes exactly their pins. The kernel's side is test/kernel-health.test.ts (DSR half).
 */
import { describe, expect, it } from 'vitest';
import type { DsrServiceConfig } from '../src/config/types.js';
import { deadPinKeys, mapEntries, planDirector, renderUnpin, unpinDead } from '../src/kernel/index.js';

const config: DsrServiceConfig = {
  mode: 'dsr',
  name: 'web-1',
  vip: { host: '192.0.2.200', port: 80 },
  dscp: 10,
  hashKey: 'source-ip-port',
  hashSeed: 1,
  tableSize: 31,
  onDown: 'close',
  backends: [1, 2, 3].map((i) => ({ name: `b${i}`, address: { host: `203.0.113.1${i}`, port: 80 }, weight: 1 })),
};
const [service] = planDirector([config]);
if (service === undefined) throw new Error('no plan');
const backend = (name: string) => {
  const found = service.table.backends.find((b) => b.name === name);
  if (found === undefined) throw new Error(`no ${name}`);
  return found;
};

/** flows_web_1 as nft 1.0.6 lists it with `-j` (method l3): keys wrapped with their expiry. */
const l3Listing = {
  family: 'ip', name: 'flows_web_1', table: 'l4lb_dsr', type: ['ipv4_addr', 'inet_service'], map: 'ipv4_addr', flags: ['timeout'], timeout: 3600,
  elem: [
    [{ elem: { val: { concat: ['198.51.100.10', 30000] }, expires: 3599 } }, '203.0.113.12'],
    [{ elem: { val: { concat: ['198.51.100.10', 30001] }, expires: 3599 } }, '203.0.113.11'],
    [{ elem: { val: { concat: ['198.51.100.11', 80] }, expires: 12 } }, '203.0.113.12'],
    [{ elem: { val: { concat: ['198.51.100.10', 30002] }, expires: 3599 } }, '203.0.113.13'],
  ],
};

describe('mapEntries reads a listed map with timeouts', () => {
  it('keys as `ADDR . PORT`, values as text', () => {
    expect([...mapEntries(l3Listing)]).toEqual([
      ['198.51.100.10 . 30000', '203.0.113.12'],
      ['198.51.100.10 . 30001', '203.0.113.11'],
      ['198.51.100.11 . 80', '203.0.113.12'],
      ['198.51.100.10 . 30002', '203.0.113.13'],
    ]);
  });

  it('an absent map or one without elements is empty', () => {
    expect(mapEntries(undefined).size).toBe(0);
    expect(mapEntries({ name: 'flows_web_1' }).size).toBe(0);
  });
});

describe('deadPinKeys', () => {
  const pins = mapEntries(l3Listing);

  it('l3: the keys whose value is a dead backend address, in listing order', () => {
    expect(deadPinKeys(pins, [backend('b2')], 'l3')).toEqual(['198.51.100.10 . 30000', '198.51.100.11 . 80']);
    expect(deadPinKeys(pins, [backend('b2'), backend('b3')], 'l3')).toEqual(['198.51.100.10 . 30000', '198.51.100.11 . 80', '198.51.100.10 . 30002']);
  });

  it('no dead backend, or none of its pins: nothing', () => {
    expect(deadPinKeys(pins, [], 'l3')).toEqual([]);
    expect(deadPinKeys(new Map([['198.51.100.10 . 1', '203.0.113.11']]), [backend('b2')], 'l3')).toEqual([]);
  });

  it('l2: the value is the backend mark, listed as a number', () => {
    const b2 = backend('b2');
    const l2 = new Map([
      ['198.51.100.10 . 30000', String(b2.mark)],
      ['198.51.100.10 . 30001', String(backend('b1').mark)],
      ['198.51.100.10 . 30002', ''],
    ]);
    expect(b2.mark).toBe(0xcb00710c);
    expect(deadPinKeys(l2, [b2], 'l2')).toEqual(['198.51.100.10 . 30000']);
    expect(deadPinKeys(l2, [b2], 'l3')).toEqual([]);
  });

  it('never passes on a key that is not an IPv4 address and port (the text goes into an nft script)', () => {
    const odd = new Map([
      ['198.51.100.10 . 30000 } ; flush ruleset ; {', '203.0.113.12'],
      ['198.51.100.999 . 1', '203.0.113.12'],
      ['198.51.100.10 . 70000', '203.0.113.12'],
      ['2001:db8::1 . 80', '203.0.113.12'],
      ['198.51.100.10 . 7', '203.0.113.12'],
    ]);
    expect(deadPinKeys(odd, [backend('b2')], 'l3')).toEqual(['198.51.100.10 . 7']);
  });
});

describe('renderUnpin', () => {
  it('one delete of the keys from the service flows map, in the director table', () => {
    expect(renderUnpin(service, ['198.51.100.10 . 30000', '198.51.100.11 . 80'])).toBe(
      'delete element ip l4lb_dsr flows_web_1 {\n\t198.51.100.10 . 30000, 198.51.100.11 . 80\n}\n',
    );
  });

  it('no keys: no script (an empty element list is a syntax error to nft)', () => {
    expect(renderUnpin(service, [])).toBe('');
  });

  it('many keys: eight a line, every key once', () => {
    const keys = Array.from({ length: 20 }, (_, i) => `198.51.100.10 . ${40000 + i}`);
    const script = renderUnpin(service, keys);
    const body = script.split('\n').slice(1, -2);
    expect(body).toHaveLength(3);
    expect(body.join(' ').split(',').map((key) => key.trim())).toEqual(keys);
  });

  it('unpinDead: listing and dead backends to script and count', () => {
    const { script, count } = unpinDead(service, mapEntries(l3Listing), [backend('b2')], 'l3');
    expect(count).toBe(2);
    expect(script).toBe('delete element ip l4lb_dsr flows_web_1 {\n\t198.51.100.10 . 30000, 198.51.100.11 . 80\n}\n');
  });
});
