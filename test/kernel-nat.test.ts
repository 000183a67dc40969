/**
 * The full-NAT renderer and the slot delta (src/kernel nat.ts, slots.ts) as pure functions: the
 * table's names (the contract the lab tests read), the rules verified in the lab notes, and a delta
 * that rewrites exactly the slots diffMaglevTables names. The kernel's side is test/kernel-smoke.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig, type NatServiceConfig } from '../src/config/index.js';
import { isLbError } from '../src/errors.js';
import { buildMaglevTable, diffMaglevTables } from '../src/hashing/index.js';
import { deadFromVerdicts, gatedSlotNames, kernelSlots, movedSlots, natDelta, natShape, natVerdicts, planNat, renderNatTable, renderSlotDelta, tableSlotNames, type NatAssignment } from '../src/kernel/index.js';
import { ServiceState, type VerdictSource } from '../src/services/index.js';
import { errorOf } from './helpers/lb-error.js';

function natService(overrides: Partial<NatServiceConfig> = {}, count = 3): NatServiceConfig {
  return {
    mode: 'nat',
    name: 'web-nat',
    vip: { host: '203.0.113.100', port: 80 },
    hashKey: 'source-ip-port',
    hashSeed: 0x5eed,
    tableSize: 13,
    onDown: 'close',
    backends: Array.from({ length: count }, (_, i) => ({ name: `b${i + 1}`, address: { host: `192.0.2.${11 + i}`, port: 80 }, weight: 1 })),
    ...overrides,
  };
}

const noVerdicts = (): VerdictSource => ({ decides: true, configure: () => {}, observe: () => {}, stop: () => Promise.resolve() });

function stateOf(config: NatServiceConfig): ServiceState {
  const state = new ServiceState(config.name, { verdicts: noVerdicts });
  state.update({ ...config, healthCheck: undefined }, config.backends);
  return state;
}

function assignment(config: NatServiceConfig, dead: string[] = []): NatAssignment {
  const [service] = planNat([config]);
  if (service === undefined) throw new Error('no plan');
  const slots = kernelSlots(service.backends, service.tableSize);
  return { service, slots: gatedSlotNames(slots, stateOf(config)), dead };
}

describe('renderNatTable', () => {
  const text = renderNatTable([assignment(natService(), ['b2'])]);

  it('replaces the table inet l4lb_nat in one file and marks it as l4lb\'s with its shape', () => {
    const lines = text.split('\n');
    const declare = lines.indexOf('table inet l4lb_nat {}');
    expect(lines.slice(declare, declare + 3)).toEqual(['table inet l4lb_nat {}', 'delete table inet l4lb_nat', 'table inet l4lb_nat {']);
    expect(text).toMatch(/set l4lb_owner \{\n\t\ttype mark\n\t\telements = \{ 0x[0-9a-f]{8} \}/);
  });

  it('names the slot map, the backends map and the counters per the contract, with every slot of the Maglev table', () => {
    expect(text).toContain('map slots_web_nat {\n\t\ttype mark : ipv4_addr . inet_service');
    expect(text).toContain(
      'map backends_ipv4 {\n\t\ttype ipv4_addr . inet_service . ipv4_addr . inet_service : verdict\n\t\telements = {\n' +
        '\t\t\t203.0.113.100 . 80 . 192.0.2.11 . 80 : goto count_web_nat_b1,\n' +
        '\t\t\t203.0.113.100 . 80 . 192.0.2.12 . 80 : goto reset_flow,\n' +
        '\t\t\t203.0.113.100 . 80 . 192.0.2.13 . 80 : goto count_web_nat_b3\n\t\t}\n\t}',
    );
    for (const name of ['b1', 'b2', 'b3']) expect(text).toContain(`counter be_web_nat_${name} {}`);
    const table = buildMaglevTable(natService().backends, 13);
    const owners = tableSlotNames(table);
    for (let slot = 0; slot < 13; slot++) {
      const host = `192.0.2.${10 + Number(owners[slot]?.slice(1))}`;
      expect(text).toMatch(new RegExp(`[\\t ]${slot} : ${host.replace(/\./g, '\\.')} \\. 80[,\\n]`));
    }
  });

  it('hooks prerouting at dstnat and output at -100 with the jhash → mark → map rule', () => {
    const rule = 'ip daddr 203.0.113.100 tcp dport 80 meta mark set jhash ip saddr . tcp sport mod 13 seed 0x00005eed ct mark set meta mark dnat ip to meta mark map @slots_web_nat';
    expect(text).toContain(`chain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\t${rule}\n\t}`);
    expect(text).toContain(`chain output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\t${rule}\n\t}`);
  });

  it('masquerades by default, SNATs to snat when given, and resets dead flows in forward and output', () => {
    expect(text).toContain('meta l4proto tcp ct original ip daddr 203.0.113.100 ct original proto-dst 80 ct status dnat oifname != "lo" masquerade');
    expect(renderNatTable([assignment(natService({ snat: '192.0.2.254' }))])).toContain('ct status dnat snat ip to 192.0.2.254');
    const dispatch = 'meta l4proto tcp ct direction original ct status dnat ct original ip daddr . ct original proto-dst . ip daddr . tcp dport vmap @backends_ipv4';
    expect(text).toContain(`chain filter_forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\t${dispatch}\n\t}`);
    expect(text).toContain(`chain filter_output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\t${dispatch}\n\t}`);
    expect(text).toContain('chain reset_flow {\n\t\tmeta l4proto tcp reject with tcp reset\n\t}');
  });

  it('looks up only the client direction, so the reset a reject sends passes', () => {
    // The reset a reject sends is a reply-direction packet of the flow and leaves through the output
    // hook: a reset rule that saw it dropped it (a dead host's clients timed out).
    const resets = text.split('\n').filter((line) => line.includes('reject with tcp reset'));
    expect(resets).toHaveLength(1);
    const entries = text.split('\n').filter((line) => line.includes('@backends_ipv4'));
    expect(entries).toHaveLength(2);
    for (const line of entries) expect(line).toContain(' ct direction original ');
  });

  it('counts each live named backend in its count chain, a discovered one not at all unless it is down', () => {
    for (const name of ['b1', 'b2', 'b3']) expect(text).toContain(`chain count_web_nat_${name} {\n\t\tcounter name "be_web_nat_${name}"\n\t}`);
    const [found] = planNat([natService()], new Map([['web-nat', new Set(['b2'])]]));
    if (found === undefined) throw new Error('no plan');
    const slots = gatedSlotNames(kernelSlots(found.backends, found.tableSize), stateOf(natService()));
    const live = renderNatTable([{ service: found, slots, dead: [] }]);
    expect(live).not.toContain('count_web_nat_b2');
    expect(live).not.toContain('be_web_nat_b2');
    expect(live).not.toContain('192.0.2.12 . 80 :');
    const down = natVerdicts({ service: found, slots, dead: ['b2'] });
    expect(down.get('203.0.113.100 . 80 . 192.0.2.12 . 80')).toBe('goto reset_flow');
    expect(deadFromVerdicts(found, down)).toEqual(['b2']);
  });

  it('dispatches each family present through its own map, and no other', () => {
    const v6 = natService({ name: 'web6', vip: { host: '2001:db8:100::100', port: 443 }, backends: [{ name: 'b1', address: { host: '2001:db8::11', port: 8443 }, weight: 1 }] });
    const both = renderNatTable([assignment(natService()), assignment(v6)]);
    expect(both).toContain('map backends_ipv6 {\n\t\ttype ipv6_addr . inet_service . ipv6_addr . inet_service : verdict\n\t\telements = {\n\t\t\t2001:db8:100::100 . 443 . 2001:db8::11 . 8443 : goto count_web6_b1\n');
    expect(both).toContain('ct original ip6 daddr . ct original proto-dst . ip6 daddr . tcp dport vmap @backends_ipv6');
    expect(text).not.toContain('backends_ipv6');
  });

  it('keeps every closing brace on its own line (nft 1.0.6 refuses `rule }`)', () => {
    for (const line of text.split('\n')) if (line.trim().endsWith('}') && line.trim() !== '}') expect(line).toMatch(/\{\s*\}$|\{ .* \}$/);
  });

  it('renders an IPv6 VIP with ip6 matches and ipv6_addr types', () => {
    const v6 = natService({ vip: { host: '2001:db8:100::100', port: 80 }, snat: '2001:db8:ff::1', backends: [{ name: 'b1', address: { host: '2001:db8::11', port: 8080 }, weight: 1 }] });
    const out = renderNatTable([assignment(v6)]);
    expect(out).toContain('type mark : ipv6_addr . inet_service');
    expect(out).toContain('ip6 daddr 2001:db8:100::100 tcp dport 80 meta mark set jhash ip6 saddr . tcp sport mod 13');
    expect(out).toContain('dnat ip6 to meta mark map @slots_web_nat');
    expect(out).toContain('snat ip6 to 2001:db8:ff::1');
    expect(out).toContain('0 : 2001:db8::11 . 8080');
  });
});

describe('planNat', () => {
  it('writes IPv6 addresses as nft lists them, so a listed table reads back equal and two spellings of one address clash', () => {
    const spelled = natService({
      vip: { host: '2001:DB8:100:0:0:0:0:100', port: 80 },
      snat: '2001:db8:ff:0::1',
      backends: [{ name: 'b1', address: { host: '2001:0db8::0011', port: 8080 }, weight: 1 }],
    });
    const [service] = planNat([spelled]);
    expect(service).toMatchObject({ vip: '2001:db8:100::100', snat: '2001:db8:ff::1', backends: [{ address: { host: '2001:db8::11', port: 8080 } }] });
    const twins = natService({
      vip: { host: '2001:db8:100::100', port: 80 },
      backends: [{ name: 'x', address: { host: '2001:db8::11', port: 80 }, weight: 1 }, { name: 'y', address: { host: '2001:DB8:0::11', port: 80 }, weight: 1 }],
    });
    expect(errorOf(() => planNat([twins]))).toBe('LB_ERR_CONFIG: service "web-nat": backends "x" and "y" share the address [2001:db8::11]:80');
  });

  it('refuses names that collide as nft identifiers and backends sharing an address', () => {
    expect(errorOf(() => planNat([natService({ name: 'a-b' }), natService({ name: 'a.b', vip: { host: '203.0.113.101', port: 80 } })]))).toBe(
      'LB_ERR_CONFIG: service "a.b": its name and "a-b" give the same nft identifier "a_b"; rename one',
    );
    const twins = natService({ backends: [{ name: 'x', address: { host: '192.0.2.1', port: 80 }, weight: 1 }, { name: 'y', address: { host: '192.0.2.1', port: 80 }, weight: 1 }] });
    expect(errorOf(() => planNat([twins]))).toBe('LB_ERR_CONFIG: service "web-nat": backends "x" and "y" share the address 192.0.2.1:80');
  });

  it('gives the same shape whatever the slots, another shape when a backend moves address', () => {
    const [one] = planNat([natService()]);
    const [moved] = planNat([natService({ backends: natService().backends.map((b, i) => (i === 0 ? { ...b, address: { host: '192.0.2.99', port: 80 } } : b)) })]);
    expect(one && natShape([one])).toBe(one && natShape([one]));
    expect(one && moved && natShape([one]) !== natShape([moved])).toBe(true);
  });
});

describe('gated slots and the delta', () => {
  const config = natService({ tableSize: 251 }, 4);

  it('all up and active: the gated slots are the Maglev table', () => {
    const { slots } = assignment(config);
    expect(slots).toEqual(tableSlotNames(buildMaglevTable(config.backends, 251)));
  });

  it('a backend down: exactly its slots move, exactly the slots diffMaglevTables names, to the remaining backends', () => {
    const [service] = planNat([config]);
    if (service === undefined) throw new Error('no plan');
    const slots = kernelSlots(service.backends, 251);
    const state = stateOf(config);
    const before = gatedSlotNames(slots, state);
    state.applyHealth('b2', 'down', 'test');
    const after = gatedSlotNames(slots, state);
    const moved = movedSlots(before, after);
    expect(moved.length).toBeGreaterThan(0);
    for (const slot of moved) expect(before[slot]).toBe('b2');
    expect(after).not.toContain('b2');
    // The same movement as rebuilding Maglev without b2 would cause for b2's slots.
    const full = buildMaglevTable(config.backends, 251);
    const expected = diffMaglevTables(full, { ...full, slots: Int32Array.from(after.map((name) => full.backends.findIndex((b) => b.name === name))) });
    expect(expected.map((change) => change.slot)).toEqual(moved);
  });

  it('renders delete+add of only the moved slots and of the down backend\'s verdict, in one script', () => {
    const before = assignment(config);
    const [service] = planNat([config]);
    if (service === undefined) throw new Error('no plan');
    const state = stateOf(config);
    state.applyHealth('b2', 'down', 'test');
    const after: NatAssignment = { service, slots: gatedSlotNames(kernelSlots(service.backends, 251), state), dead: ['b2'] };
    const moved = movedSlots(before.slots, after.slots);
    const text = renderSlotDelta([natDelta(before, after)]);
    const deleted = /delete element inet l4lb_nat slots_web_nat \{\n([^}]*)\n\}/.exec(text)?.[1] ?? '';
    expect(deleted.split(/[,\s]+/).filter(Boolean).map(Number)).toEqual(moved);
    const added = /add element inet l4lb_nat slots_web_nat \{\n([^}]*)\n\}/.exec(text)?.[1] ?? '';
    expect([...added.matchAll(/(\d+) : ([0-9.]+) \. 80/g)].map((m) => Number(m[1]))).toEqual(moved);
    expect(text).toContain('delete element inet l4lb_nat backends_ipv4 {\n\t203.0.113.100 . 80 . 192.0.2.12 . 80\n}');
    expect(text).toContain('add element inet l4lb_nat backends_ipv4 {\n\t203.0.113.100 . 80 . 192.0.2.12 . 80 : goto reset_flow\n}');
    expect(text.match(/backends_ipv4/g)).toHaveLength(2); // no other backend's element is touched
    expect(text.indexOf('delete element')).toBeLessThan(text.indexOf('add element'));
    // Back up: the reverse delta restores exactly the same slots and the backend's count chain.
    const back = renderSlotDelta([natDelta(after, before)]);
    expect(back).toContain('add element inet l4lb_nat backends_ipv4 {\n\t203.0.113.100 . 80 . 192.0.2.12 . 80 : goto count_web_nat_b2\n}');
  });

  it('draining moves slots without resetting, and nothing changing renders nothing', () => {
    const before = assignment(config);
    expect(renderSlotDelta([natDelta(before, before)])).toBe('');
    const [service] = planNat([config]);
    if (service === undefined) throw new Error('no plan');
    const state = stateOf(config);
    state.setState('b1', 'draining');
    const after: NatAssignment = { service, slots: gatedSlotNames(kernelSlots(service.backends, 251), state), dead: [] };
    const text = renderSlotDelta([natDelta(before, after)]);
    expect(text).toContain('delete element inet l4lb_nat slots_web_nat');
    expect(text).not.toContain('backends_ipv4');
  });
});

describe('mode: nat in the configuration', () => {
  const yaml = (service: string): string => `services:\n  - name: web-nat\n    mode: nat\n${service}`;
  const problems = (text: string): string[] => {
    try {
      parseConfig(text, 'nat.yaml');
    } catch (error) {
      if (isLbError(error)) return error.lines();
      throw error;
    }
    return [];
  };

  it('fills the defaults: onDown close, masquerade, the hash defaults', () => {
    const config = parseConfig(yaml('    vip: 127.0.0.1:8000\n    tableSize: 13\n    backends:\n      - { name: b1, address: 127.0.0.1:8001 }\n'), 'nat.yaml');
    expect(config.services[0]).toMatchObject({ mode: 'nat', vip: { host: '127.0.0.1', port: 8000 }, onDown: 'close', hashKey: 'source-ip', hashSeed: 0, tableSize: 13 });
    expect(config.services[0]).not.toHaveProperty('snat');
  });

  it('refuses proxyProtocol with the reason, mixed families, and onDown without a healthCheck', () => {
    const base = '    vip: 127.0.0.1:8000\n    tableSize: 13\n    backends:\n      - { name: b1, address: 127.0.0.1:8001 }\n';
    expect(problems(yaml(`${base}    proxyProtocol: { send: v1 }\n`))).toEqual([
      'nat.yaml: services[0]: unknown key "proxyProtocol" in a mode: nat service (it applies only to mode: proxy; full NAT rewrites packets in the kernel and cannot carry the client address in a PROXY header)',
    ]);
    expect(problems(yaml('    vip: 127.0.0.1:8000\n    tableSize: 13\n    backends:\n      - { name: b1, address: "[::1]:8001" }\n'))[0]).toContain(
      'services[0].backends[0].address: must be an IPv4 address like the VIP 127.0.0.1',
    );
    expect(problems(yaml(`${base}    onDown: keep\n`))[0]).toContain('services[0].onDown: applies only with a healthCheck');
  });
});
