/**
 * The DSR renderers (src/kernel/) as pure functions: what the director's ruleset, a backend's script and
 * a diff contain, and the one-line errors for input the director cannot serve. The kernel's side of
 * the story (that the rules do what they say) is test/lab.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { DsrServiceConfig } from '../src/config/types.js';
import { buildMaglevTable, diffMaglevTables } from '../src/hashing/maglev.js';
import { planDirector, renderBackend, renderDiff, renderDirector, renderDirectorRoutes, selectDsrServices } from '../src/kernel/index.js';
import { errorOf } from './helpers/lb-error.js';

function service(overrides: Partial<DsrServiceConfig> = {}, count = 3): DsrServiceConfig {
  return {
    mode: 'dsr',
    name: 'web',
    vip: { host: '192.0.2.200', port: 80 },
    dscp: 10,
    hashKey: 'source-ip-port',
    hashSeed: 0x4c34,
    tableSize: 251,
    onDown: 'close',
    backends: Array.from({ length: count }, (_, i) => ({ name: `be${i + 1}`, address: { host: `203.0.113.${11 + i}`, port: 80 }, weight: 1 })),
    ...overrides,
  };
}

/** The `slot : value` elements of map `name` in a rendered ruleset. */
function mapElements(text: string, name: string): Map<number, string> {
  const start = text.indexOf(`map ${name} {`);
  const open = text.indexOf('elements = {', start);
  const body = text.slice(open, text.indexOf('}', open + 12));
  return new Map([...body.matchAll(/(\d+) : (0x[0-9a-f]+|[0-9.]+)/g)].map((m) => [Number(m[1]), m[2]]));
}

describe('renderDirector', () => {
  const plan = planDirector([service()]);
  const l3 = renderDirector(plan, 'l3');

  it('replaces its own table in one nft file: declare, delete, rebuild', () => {
    const lines = l3.split('\n');
    const declare = lines.indexOf('table ip l4lb_dsr {}');
    expect(declare).toBeGreaterThan(0);
    expect(lines[declare + 1]).toBe('delete table ip l4lb_dsr');
    expect(lines[declare + 2]).toBe('table ip l4lb_dsr {');
    expect(l3.match(/^table /gm)).toHaveLength(2);
  });

  it('fills the slot map with every slot of the Maglev table, as backend addresses (l3)', () => {
    const table = buildMaglevTable(service().backends.map((b) => ({ ...b, address: b.address.host })), 251);
    const elements = mapElements(l3, 'slots_web');
    expect(elements.size).toBe(251);
    for (let slot = 0; slot < 251; slot++) expect(elements.get(slot)).toBe(table.backends[table.slots[slot]].address);
  });

  it('hashes as the config says, marks the DSCP, rewrites the destination and pins flows', () => {
    expect(l3).toContain('meta mark set jhash ip saddr . tcp sport mod 251 seed 0x00004c34');
    expect(l3).toContain('ip dscp set 10');
    expect(l3).toContain('ip daddr set meta mark map @slots_web update @flows_web { ip saddr . tcp sport : ip daddr } accept');
    expect(l3).toContain('tcp flags & (syn | ack) == syn delete @flows_web');
    expect(l3).toContain('notrack');
    const byIp = renderDirector(planDirector([service({ hashKey: 'source-ip' })]), 'l3');
    expect(byIp).toContain('meta mark set jhash ip saddr mod 251 seed 0x00004c34');
  });

  it('l2 rewrites nothing in the packet: the map yields marks (backend address as u32), not addresses', () => {
    const l2 = renderDirector(plan, 'l2');
    expect(l2).not.toContain('ip daddr set');
    expect(l2).not.toContain('ip dscp set');
    expect(new Set(mapElements(l2, 'slots_web').values())).toEqual(new Set(['0xcb00710b', '0xcb00710c', '0xcb00710d']));
    const routes = renderDirectorRoutes(plan, 'd-lan');
    expect(routes).toContain('route replace default via 203.0.113.11 dev d-lan table 3405803787');
    expect(routes).toContain('rule add fwmark 0xcb00710b table 3405803787');
  });

  it('drops other ports of the VIP instead of routing them back to the router', () => {
    expect(l3).toMatch(/ip daddr 192\.0\.2\.200 tcp dport 80 counter name in_web goto svc_web\n\t\tip saddr 192\.0\.2\.200 counter name from_vip\n\t\tip daddr 192\.0\.2\.200 counter name other_to_vip drop/);
  });
});

describe('planDirector refuses what the director cannot serve, in one line naming the service', () => {
  it.each([
    ['no service', [], /no service with mode: dsr/],
    ['an IPv6 VIP', [service({ vip: { host: '2001:db8::1', port: 80 } })], /service "web": the VIP must be an IPv4 address/],
    ['a backend on another port', [service({ backends: [{ name: 'a', address: { host: '203.0.113.11', port: 8080 }, weight: 1 }] })], /backend "a": port 8080 differs from the VIP port 80/],
    ['a DSCP naming two VIPs', [service(), service({ name: 'api', vip: { host: '192.0.2.201', port: 80 } })], /service "api": dscp 10 already names VIP 192\.0\.2\.200/],
    ['two services on one VIP:port', [service(), service({ name: 'web2' })], /another dsr service already uses 192\.0\.2\.200:80/],
    ['a table too large for nft', [service({ tableSize: 16777213 })], /tableSize 16777213 is too large for the nft director \(at most 262144\)/],
    ['names that clash as nft identifiers', [service({ name: 'a-b' }), service({ name: 'a.b', vip: { host: '192.0.2.200', port: 81 } })], /same nft identifier "a_b"/],
    ['a table smaller than the backends', [service({ tableSize: 2 })], /service "web": table size 2 is smaller than the 3 backends/],
    ['two backends on one address', [service({ backends: [{ name: 'a', address: { host: '203.0.113.11', port: 80 }, weight: 1 }, { name: 'b', address: { host: '203.0.113.11', port: 80 }, weight: 1 }] })], /share the address 203\.0\.113\.11/],
  ])('%s', (_, services, message) => {
    const text = errorOf(() => planDirector(services));
    expect(text).toMatch(/^LB_ERR_CONFIG: /);
    expect(text).toMatch(message);
    expect(text).not.toContain('\n');
  });

  it('two services may share a VIP (other port) and its DSCP', () => {
    const bulk = service({ name: 'bulk', vip: { host: '192.0.2.200', port: 5201 }, hashKey: 'source-ip' });
    bulk.backends = bulk.backends.map((b) => ({ ...b, address: { ...b.address, port: 5201 } }));
    expect(planDirector([service(), bulk])).toHaveLength(2);
  });

  it('selects dsr services by name, or says which exist', () => {
    const services = [service(), { mode: 'proxy' as const, name: 'p' }];
    expect(selectDsrServices(services).map((s) => s.name)).toEqual(['web']);
    expect(errorOf(() => selectDsrServices(services, 'nope'))).toBe('LB_ERR_CONFIG: no dsr service named "nope" (dsr services: web)');
    expect(errorOf(() => selectDsrServices([{ mode: 'proxy', name: 'p' }]))).toMatch(/has no service with mode: dsr/);
  });
});

describe('renderBackend', () => {
  const plan = planDirector([service(), service({ name: 'bulk', vip: { host: '192.0.2.200', port: 5201 }, backends: service().backends.slice(0, 2).map((b) => ({ ...b, address: { ...b.address, port: 5201 } })) })]);

  it('l3: restores the VIP statelessly for each service the backend serves', () => {
    const script = renderBackend(plan, 'be1', 'l3');
    expect(script).toContain('ip addr replace 192.0.2.200/32 dev lo');
    expect(script).toContain('sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2');
    expect(script).toContain('ip daddr 203.0.113.11 ip dscp 10 tcp dport 80 notrack ip dscp set cs0 ip daddr set 192.0.2.200');
    expect(script).toContain('ip daddr 203.0.113.11 ip dscp 10 tcp dport 5201 notrack ip dscp set cs0 ip daddr set 192.0.2.200');
    expect(script).toContain('ip saddr 192.0.2.200 tcp sport 80 notrack');
    expect(script.match(/ip addr replace/g)).toHaveLength(1);
  });

  it('only the services a backend belongs to', () => {
    const script = renderBackend(plan, 'be3', 'l3');
    expect(script).toContain('tcp dport 80 ');
    expect(script).not.toContain('5201');
  });

  it('l2: no rewrite, only notrack', () => {
    const script = renderBackend(plan, 'be1', 'l2');
    expect(script).not.toContain('daddr set');
    expect(script).toContain('ip daddr 192.0.2.200 tcp dport 80 notrack');
  });

  it('an unknown backend is one line listing the known ones', () => {
    expect(errorOf(() => renderBackend(plan, 'be9', 'l3'))).toBe('LB_ERR_CONFIG: no dsr service has a backend named "be9" (backends: be1, be2, be3)');
  });
});

describe('renderDiff', () => {
  const before = planDirector([service({}, 4)]);

  it('removing a backend rewrites exactly the slots the hashing core moved, in one transaction', () => {
    const after = planDirector([service({}, 3)]);
    const moved = diffMaglevTables(before[0].table, after[0].table);
    for (const method of ['l3', 'l2'] as const) {
      const diff = renderDiff(before, after, method);
      expect(diff.deltas[0].moved).toEqual(moved);
      expect(diff.deltas[0].rewritten).toBe(moved.length);
      const deleted = diff.text.match(/delete element ip l4lb_dsr slots_web \{\n([^}]*)\}/)?.[1] ?? '';
      expect(deleted.split(',').map((s) => Number(s.trim())).sort((a, b) => a - b)).toEqual(moved.map((c) => c.slot));
      const added = mapElementsOf(diff.text);
      expect(added.size).toBe(moved.length);
      const fullAfter = mapElements(renderDirector(after, method), 'slots_web');
      for (const [slot, value] of added) expect(value).toBe(fullAfter.get(slot));
    }
  });

  it('a backend that changes address keeps its slots but they are rewritten', () => {
    const moved = service({}, 4);
    moved.backends[1] = { ...moved.backends[1], address: { host: '203.0.113.99', port: 80 } };
    const diff = renderDiff(before, planDirector([moved]), 'l3');
    expect(diff.deltas[0].moved).toHaveLength(0);
    const owned = [...before[0].table.slots].filter((index) => before[0].table.backends[index].name === 'be2').length;
    expect(diff.deltas[0].rewritten).toBe(owned);
    expect(new Set(mapElementsOf(diff.text).values())).toEqual(new Set(['203.0.113.99']));
  });

  it('no change is a transaction without elements', () => {
    const diff = renderDiff(before, planDirector([service({}, 4)]), 'l3');
    expect(diff.text).not.toMatch(/^(add|delete) element/m);
    expect(diff.text).toContain('# service web: 0 of 251 slots move, 0 map elements rewritten');
    expect(diff.deltas[0].rewritten).toBe(0);
  });

  it.each([
    ['the table size', { tableSize: 257 }, /service "web": tableSize changed from 251 to 257/],
    ['the seed', { hashSeed: 1 }, /hashSeed changed from 19508 to 1/],
    ['the VIP', { vip: { host: '192.0.2.201', port: 80 } }, /VIP changed from 192\.0\.2\.200:80 to 192\.0\.2\.201:80/],
    ['the hash key', { hashKey: 'source-ip' as const }, /hashKey changed from source-ip-port to source-ip/],
  ] as [string, Partial<DsrServiceConfig>, RegExp][])('refuses a change of %s: load the full render instead', (_, overrides, message) => {
    const text = errorOf(() => renderDiff(before, planDirector([service({ ...overrides, backends: service({}, 4).backends.map((b) => ({ ...b, address: { ...b.address, port: overrides.vip?.port ?? 80 } })) })]), 'l3'));
    expect(text).toMatch(message);
    expect(text).toContain('load the full `l4lb dsr render` instead');
  });

  it('refuses added and removed services', () => {
    const api = service({ name: 'api', vip: { host: '192.0.2.200', port: 443 }, backends: service().backends.map((b) => ({ ...b, address: { ...b.address, port: 443 } })) });
    expect(errorOf(() => renderDiff(before, [...before, ...planDirector([api])], 'l3'))).toMatch(/service "api" is new/);
    expect(errorOf(() => renderDiff([...before, ...planDirector([api])], before, 'l3'))).toMatch(/service "api" was removed/);
  });
});

function mapElementsOf(diffText: string): Map<number, string> {
  const body = diffText.match(/add element ip l4lb_dsr slots_web \{\n([^}]*)\}/)?.[1] ?? '';
  return new Map([...body.matchAll(/(\d+) : (0x[0-9a-f]+|[0-9.]+)/g)].map((m) => [Number(m[1]), m[2]]));
}
