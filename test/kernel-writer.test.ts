/**
 * The kernel writer (src/kernel writer.ts) over a fake nft: what it loads at start, that a health
 * change becomes one transaction of exactly the moved slots, that a refused transaction leaves the
 * previous state, and that a restart on an identical table moves nothing.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Config, NatServiceConfig } from '../src/config/index.js';
import { KernelError } from '../src/errors.js';
import { KernelWriter, directorShape, gatedSlotNames, kernelSlots, movedSlots, planDirector, planNat, removeTables, type DsrKernelStats, type NftObject, type NftRunner } from '../src/kernel/index.js';
import { ServiceState, type VerdictSink, type VerdictSource } from '../src/services/index.js';

const service: NatServiceConfig = {
  mode: 'nat',
  name: 'web',
  vip: { host: '127.0.0.1', port: 8000 },
  hashKey: 'source-ip-port',
  hashSeed: 1,
  tableSize: 31,
  onDown: 'close',
  healthCheck: { type: 'tcp', interval: 1000, timeout: 1000, rise: 1, fall: 1, initial: 'up' },
  backends: [1, 2, 3].map((i) => ({ name: `b${i}`, address: { host: '127.0.0.1', port: 8000 + i }, weight: 1 })),
};
const config: Config = { services: [service] };

/** Verdicts a test decides: the sinks, by service, to call applyHealth on. */
function manualVerdicts(): { sinks: Map<string, VerdictSink>; sources: (sink: VerdictSink) => VerdictSource } {
  const sinks = new Map<string, VerdictSink>();
  return {
    sinks,
    sources: (sink) => {
      sinks.set(sink.service, sink);
      return { decides: true, configure: () => {}, observe: () => {}, stop: () => Promise.resolve() };
    },
  };
}

/**
 * A fake nft: records scripts, refuses when told (every script, or those `failure` returns an error
 * for), lists what a test gives it; `maps` are the bodies `listMap` returns, by map name.
 */
class FakeNft implements NftRunner {
  scripts: string[] = [];
  refuse = false;
  failure: (script: string) => KernelError | undefined = () => undefined;
  listing: NftObject[] | undefined;
  /** Listings by table name; a table not in it lists as `listing`. */
  tables = new Map<string, NftObject[]>();
  maps = new Map<string, Record<string, unknown>>();
  mapLists: string[] = [];
  apply(script: string, table: string): Promise<void> {
    if (this.refuse) return Promise.reject(new KernelError({ cause: 'refused', table, detail: 'Error: Could not process rule: Invalid argument' }));
    const failure = this.failure(script);
    if (failure !== undefined) return Promise.reject(failure);
    this.scripts.push(script);
    return Promise.resolve();
  }
  list(_family: string, name: string): Promise<NftObject[] | undefined> {
    return Promise.resolve(this.tables.get(name) ?? this.listing);
  }
  listMap(_family: string, _table: string, name: string): Promise<Record<string, unknown> | undefined> {
    this.mapLists.push(name);
    return Promise.resolve(this.maps.get(name));
  }
}

function writerWith(nft: FakeNft): { writer: KernelWriter; sinks: Map<string, VerdictSink>; logged: Record<string, unknown>[] } {
  const { sinks, sources } = manualVerdicts();
  const logged: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => logged.push(JSON.parse(line) as Record<string, unknown>) });
  return { writer: new KernelWriter({ nft, logger, verdicts: sources }), sinks, logged };
}

/** The slots the gate gives with `down` down. */
function expectedSlots(down: string[]): string[] {
  const [plan] = planNat([service]);
  if (plan === undefined) throw new Error('no plan');
  const state = new ServiceState('web', { verdicts: () => ({ decides: true, configure: () => {}, observe: () => {}, stop: () => Promise.resolve() }) });
  state.update(service, service.backends);
  for (const name of down) state.applyHealth(name, 'down', 'test');
  return gatedSlotNames(kernelSlots(plan.backends, plan.tableSize), state);
}

function slotKeys(script: string, verb: 'delete' | 'add'): number[] {
  const body = new RegExp(`${verb} element inet l4lb_nat slots_web \\{\\n([^}]*)\\n\\}`).exec(script)?.[1] ?? '';
  return verb === 'delete' ? body.split(/[,\s]+/).filter(Boolean).map(Number) : [...body.matchAll(/(\d+) :/g)].map((m) => Number(m[1]));
}

describe('KernelWriter', () => {
  it('loads the whole table at start when there is none', async () => {
    const nft = new FakeNft();
    const { writer } = writerWith(nft);
    await writer.apply(config);
    expect(nft.scripts).toHaveLength(1);
    expect(nft.scripts[0]).toContain('table inet l4lb_nat {\n\tset l4lb_owner {');
    await writer.stop();
  });

  it('a backend going down is one transaction of exactly its slots, plus its verdict: the reset chain', async () => {
    const nft = new FakeNft();
    const { writer, sinks } = writerWith(nft);
    await writer.apply(config);
    sinks.get('web')?.applyHealth('b2', 'down', 'refused');
    await writer.settled();
    expect(nft.scripts).toHaveLength(2);
    const moved = movedSlots(expectedSlots([]), expectedSlots(['b2']));
    expect(moved.length).toBeGreaterThan(0);
    expect(slotKeys(nft.scripts[1] ?? '', 'delete')).toEqual(moved);
    expect(slotKeys(nft.scripts[1] ?? '', 'add')).toEqual(moved);
    expect(nft.scripts[1]).toContain('delete element inet l4lb_nat backends_ipv4 {\n\t127.0.0.1 . 8000 . 127.0.0.1 . 8002\n}');
    expect(nft.scripts[1]).toContain('add element inet l4lb_nat backends_ipv4 {\n\t127.0.0.1 . 8000 . 127.0.0.1 . 8002 : goto reset_flow\n}');
    expect((await writer.stats())[0]?.backends.find((backend) => backend.name === 'b2')).toMatchObject({ health: 'down', slots: 0 });
    await writer.stop();
  });

  it('a refused transaction leaves the previous state: the next change is computed from it', async () => {
    const nft = new FakeNft();
    const { writer, sinks } = writerWith(nft);
    await writer.apply(config);
    nft.refuse = true;
    sinks.get('web')?.applyHealth('b2', 'down', 'refused');
    await writer.settled();
    expect(writer.counters.refused).toBe(1);
    expect((await writer.stats())[0]?.backends.find((backend) => backend.name === 'b2')?.slots).toBe(expectedSlots([]).filter((name) => name === 'b2').length);
    nft.refuse = false;
    sinks.get('web')?.applyHealth('b3', 'down', 'refused');
    await writer.settled();
    // Written against what the kernel still holds: b2's and b3's slots both move now.
    const moved = movedSlots(expectedSlots([]), expectedSlots(['b2', 'b3']));
    expect(slotKeys(nft.scripts[1] ?? '', 'delete')).toEqual(moved);
    await writer.stop();
  });

  it('draining moves slots without resetting anyone', async () => {
    const nft = new FakeNft();
    const { writer } = writerWith(nft);
    await writer.apply(config);
    writer.setState('web', 'b1', 'draining');
    await writer.settled();
    expect(nft.scripts[1]).toContain('delete element inet l4lb_nat slots_web');
    expect(nft.scripts[1]).not.toContain('backends_ipv4');
    await writer.stop();
  });

  it('adopts an identical table at start and moves nothing; reloads one whose backends map lacks an element; refuses a table it did not make', async () => {
    const first = new FakeNft();
    const { writer } = writerWith(first);
    await writer.apply(config);
    await writer.stop();
    const slots = expectedSlots([]);
    const shape = /elements = \{ (0x[0-9a-f]+) \}/.exec(first.scripts[0] ?? '')?.[1];
    // As `nft -j list table` gives them: a concatenated key, a verdict object.
    const verdicts = [1, 2, 3].map((i) => [{ concat: ['127.0.0.1', 8000, '127.0.0.1', 8000 + i] }, { goto: { target: `count_web_b${i}` } }]);
    const listing = (elements: unknown[][]): NftObject[] => [
      { set: { name: 'l4lb_owner', elem: [Number(shape)] } },
      { map: { name: 'slots_web', elem: slots.map((name, slot) => [slot, { concat: ['127.0.0.1', 8000 + Number(name.slice(1))] }]) } },
      { map: { name: 'backends_ipv4', elem: elements } },
    ];
    const adopted = new FakeNft();
    adopted.listing = listing(verdicts);
    const second = writerWith(adopted).writer;
    await second.apply(config);
    expect(adopted.scripts).toEqual([]);
    await second.stop();
    const mended = new FakeNft();
    mended.listing = listing(verdicts.slice(1));
    const { writer: again, logged } = writerWith(mended);
    await again.apply(config);
    expect(mended.scripts).toHaveLength(1);
    expect(logged.find((record) => record.msg === 'kernel table loaded')).toMatchObject({
      reason: 'backends_ipv4 element 127.0.0.1 . 8000 . 127.0.0.1 . 8001 is missing, left over or has another verdict',
    });
    expect(mended.scripts[0]).toContain('delete table inet l4lb_nat');
    expect(mended.scripts[0]).toContain('127.0.0.1 . 8000 . 127.0.0.1 . 8001 : goto count_web_b1');
    await again.stop();
    const foreign = new FakeNft();
    foreign.listing = [{ table: { name: 'l4lb_nat' } }];
    const third = writerWith(foreign).writer;
    await expect(third.apply(config)).rejects.toMatchObject({ code: 'LB_ERR_KERNEL', cause: 'table-owned' });
    await third.stop();
  });

  it('drives a dsr service too: the director table at start, then only its moved slots', async () => {
    const nft = new FakeNft();
    const { writer, sinks } = writerWith(nft);
    await writer.apply(dsrConfig());
    expect(nft.scripts).toHaveLength(1);
    expect(nft.scripts[0]).toContain('table ip l4lb_dsr {');
    sinks.get('web')?.applyHealth('b2', 'down', 'refused');
    await writer.settled();
    expect(nft.scripts).toHaveLength(2);
    const moved = movedSlots(expectedSlots([]), expectedSlots(['b2']));
    const deleted = /delete element ip l4lb_dsr slots_web \{\n([^}]*)\n\}/.exec(nft.scripts[1] ?? '')?.[1] ?? '';
    expect(deleted.split(/[,\s]+/).filter(Boolean).map(Number)).toEqual(moved);
    expect(nft.scripts[1]).not.toContain('203.0.113.12');
    await writer.stop();
  });
});

/** One dsr service `web`, b1–b3 at 203.0.113.11–13. */
function dsrConfig(onDown: 'close' | 'keep' = 'close'): Config {
  return {
    services: [
      {
        mode: 'dsr', name: 'web', vip: { host: '192.0.2.200', port: 80 }, dscp: 10, hashKey: 'source-ip-port', hashSeed: 1, tableSize: 31, onDown,
        healthCheck: { type: 'tcp', interval: 1000, timeout: 1000, rise: 1, fall: 1, initial: 'up' },
        backends: [1, 2, 3].map((i) => ({ name: `b${i}`, address: { host: `203.0.113.1${i}`, port: 80 }, weight: 1 })),
      },
    ],
  };
}

/** flows_web as nft -j lists it: client port → backend address. */
function pinMap(pins: Record<number, string>): Record<string, unknown> {
  return { name: 'flows_web', elem: Object.entries(pins).map(([port, address]) => [{ elem: { val: { concat: ['198.51.100.10', Number(port)] }, expires: 3599 } }, address]) };
}

const B2 = '203.0.113.12';
const pins = pinMap({ 30000: B2, 30001: '203.0.113.11', 30002: B2, 30003: '203.0.113.13' });
const b2Pins = 'delete element ip l4lb_dsr flows_web {\n\t198.51.100.10 . 30000, 198.51.100.10 . 30002\n}\n';

describe('KernelWriter, dsr pins of a dead backend', () => {
  it('a backend down: its slots move, then one transaction deletes exactly its pins', async () => {
    const nft = new FakeNft();
    nft.maps.set('flows_web', pins);
    const { writer, sinks } = writerWith(nft);
    await writer.apply(dsrConfig());
    expect(nft.mapLists).toEqual([]);
    sinks.get('web')?.applyHealth('b2', 'down', 'refused');
    await writer.settled();
    expect(nft.scripts).toHaveLength(3);
    expect(nft.scripts[1]).toContain('delete element ip l4lb_dsr slots_web');
    expect(nft.scripts[1]).not.toContain('flows_web');
    expect(nft.scripts[2]).toBe(b2Pins);
    expect(writer.counters.applied).toBe(3);
    // Another change while b2 stays down: its pins were deleted once, nothing names it since.
    writer.setState('web', 'b3', 'draining');
    await writer.settled();
    expect(nft.mapLists).toEqual(['flows_web']);
    expect(nft.scripts.slice(3).join('')).not.toContain('flows_web');
    // Back up, then down again: deleted again.
    sinks.get('web')?.applyHealth('b2', 'up', 'ok');
    await writer.settled();
    sinks.get('web')?.applyHealth('b2', 'down', 'refused');
    await writer.settled();
    expect(nft.scripts.at(-1)).toBe(b2Pins);
    await writer.stop();
  });

  it('draining or maintenance keeps the pins: established flows finish on their backend', async () => {
    const nft = new FakeNft();
    nft.maps.set('flows_web', pins);
    const { writer } = writerWith(nft);
    await writer.apply(dsrConfig());
    writer.setState('web', 'b2', 'draining');
    await writer.settled();
    writer.setState('web', 'b2', 'maintenance');
    await writer.settled();
    expect(nft.mapLists).toEqual([]);
    expect(nft.scripts.join('')).not.toContain('delete element ip l4lb_dsr flows_web');
    await writer.stop();
  });

  it('onDown: keep keeps the pins of a down backend', async () => {
    const nft = new FakeNft();
    nft.maps.set('flows_web', pins);
    const { writer, sinks } = writerWith(nft);
    await writer.apply(dsrConfig('keep'));
    sinks.get('web')?.applyHealth('b2', 'down', 'refused');
    await writer.settled();
    expect(nft.scripts).toHaveLength(2);
    expect(nft.mapLists).toEqual([]);
    await writer.stop();
  });

  it('a pin gone between listing and delete: the slot move stands, the map is listed again and the rest deleted', async () => {
    const nft = new FakeNft();
    nft.maps.set('flows_web', pins);
    const { writer, sinks } = writerWith(nft);
    await writer.apply(dsrConfig());
    const moved = nft.scripts.length + 1;
    // The pin of port 30000 times out after the listing: nft 1.0.6 refuses the whole delete (ENOENT).
    nft.failure = (script) => {
      if (!script.startsWith('delete element ip l4lb_dsr flows_web') || !script.includes('30000')) return undefined;
      nft.maps.set('flows_web', pinMap({ 30001: '203.0.113.11', 30002: B2, 30003: '203.0.113.13' }));
      return new KernelError({ cause: 'not-found', table: 'ip l4lb_dsr', detail: 'Error: Could not process rule: No such file or directory' });
    };
    sinks.get('web')?.applyHealth('b2', 'down', 'refused');
    await writer.settled();
    expect(nft.scripts).toHaveLength(moved + 1);
    expect(nft.scripts[moved - 1]).toContain('delete element ip l4lb_dsr slots_web');
    expect(nft.scripts[moved]).toBe('delete element ip l4lb_dsr flows_web {\n\t198.51.100.10 . 30002\n}\n');
    expect(nft.mapLists).toEqual(['flows_web', 'flows_web']);
    expect(writer.counters.refused).toBe(1);
    await writer.stop();
  });

  it('pins still vanishing after every attempt: logged, retried at the next change; a refused slot move deletes no pin', async () => {
    const nft = new FakeNft();
    nft.maps.set('flows_web', pins);
    const { writer, sinks } = writerWith(nft);
    await writer.apply(dsrConfig());
    nft.refuse = true;
    sinks.get('web')?.applyHealth('b2', 'down', 'refused');
    await writer.settled();
    // The slot move was refused: the slots still name b2, so its pins stay (they would re-hash to it).
    expect(nft.mapLists).toEqual([]);
    expect(nft.scripts).toHaveLength(1);
    nft.refuse = false;
    nft.failure = (script) => (script.includes('flows_web') ? new KernelError({ cause: 'not-found', table: 'ip l4lb_dsr', detail: 'No such file or directory' }) : undefined);
    writer.setState('web', 'b1', 'draining');
    await writer.settled();
    expect(nft.scripts[1]).toContain('delete element ip l4lb_dsr slots_web');
    expect(nft.mapLists).toHaveLength(3);
    expect(nft.scripts.join('')).not.toContain('delete element ip l4lb_dsr flows_web');
    nft.failure = () => undefined;
    writer.setState('web', 'b1', 'active');
    await writer.settled();
    expect(nft.scripts.at(-1)).toBe(b2Pins);
    await writer.stop();
  });
});

/** The DSR address of a backend name of dsrConfig (b2 → 203.0.113.12). */
const dsrAddress = (name: string): string => `203.0.113.1${name.slice(1)}`;

/**
 * `ip l4lb_dsr` as `nft -j list table` shows it after an l4lb with the same config loaded it:
 * the owner set (`owner`, or none with null), slots_web holding `slots` (backend names), flows_web `pins`.
 */
function dsrListing(slots: readonly string[], pinsBody?: Record<string, unknown>, owner: number | null = directorShape(planDirector(dsrServicesOf(dsrConfig())), 'l3')): NftObject[] {
  return [
    { table: { family: 'ip', name: 'l4lb_dsr', handle: 3 } },
    ...(owner === null ? [] : [{ set: { family: 'ip', table: 'l4lb_dsr', name: 'l4lb_owner', type: 'mark', elem: [owner] } }]),
    { map: { family: 'ip', table: 'l4lb_dsr', name: 'slots_web', type: 'mark', map: 'ipv4_addr', elem: slots.map((name, slot) => [slot, dsrAddress(name)]) } },
    { map: { family: 'ip', table: 'l4lb_dsr', name: 'flows_web', type: ['ipv4_addr', 'inet_service'], map: 'ipv4_addr', ...(pinsBody === undefined ? {} : { elem: pinsBody.elem }) } },
  ];
}

function dsrServicesOf(config: Config) {
  return config.services.filter((entry) => entry.mode === 'dsr');
}

describe('KernelWriter, a dsr table already loaded at start', () => {
  it('same shape and slots: adopted with no transaction, the pins untouched', async () => {
    const nft = new FakeNft();
    nft.tables.set('l4lb_dsr', dsrListing(expectedSlots([]), pins));
    nft.maps.set('flows_web', pins);
    const { writer } = writerWith(nft);
    await writer.apply(dsrConfig());
    expect(nft.scripts).toEqual([]);
    expect(writer.counters.applied).toBe(0);
    await writer.stop();
  });

  it('same shape, slots that differ (the last l4lb had b2 down): one transaction of exactly those slots, no reload', async () => {
    const nft = new FakeNft();
    nft.tables.set('l4lb_dsr', dsrListing(expectedSlots(['b2']), pins));
    const { writer } = writerWith(nft);
    await writer.apply(dsrConfig());
    expect(nft.scripts).toHaveLength(1);
    const script = nft.scripts[0] ?? '';
    expect(script).not.toContain('table ip l4lb_dsr');
    expect(script).not.toContain('flows_web');
    const moved = movedSlots(expectedSlots(['b2']), expectedSlots([]));
    const deleted = /delete element ip l4lb_dsr slots_web \{\n([^}]*)\n\}/.exec(script)?.[1] ?? '';
    expect(deleted.split(/[,\s]+/).filter(Boolean).map(Number)).toEqual(moved);
    const added = /add element ip l4lb_dsr slots_web \{\n([^}]*)\n\}/.exec(script)?.[1] ?? '';
    expect([...added.matchAll(/(\d+) : ([\d.]+)/g)].map((m) => [Number(m[1]), m[2]])).toEqual(moved.map((slot) => [slot, dsrAddress(expectedSlots([])[slot] ?? '')]));
    // From then on deltas are computed from what was adopted.
    writer.setState('web', 'b1', 'draining');
    await writer.settled();
    expect(nft.scripts).toHaveLength(2);
    await writer.stop();
  });

  it('no l4lb_owner: table-owned, nothing written; a table of another shape is loaded whole', async () => {
    const foreign = new FakeNft();
    foreign.tables.set('l4lb_dsr', dsrListing(expectedSlots([]), pins, null));
    const first = writerWith(foreign).writer;
    await expect(first.apply(dsrConfig())).rejects.toMatchObject({ code: 'LB_ERR_KERNEL', cause: 'table-owned', table: 'ip l4lb_dsr' });
    expect(foreign.scripts).toEqual([]);
    expect(await first.stats()).toEqual([]);
    await first.stop();
    const other = new FakeNft();
    other.tables.set('l4lb_dsr', dsrListing(expectedSlots([]), pins, 1234));
    const second = writerWith(other).writer;
    await second.apply(dsrConfig());
    expect(other.scripts).toHaveLength(1);
    expect(other.scripts[0]).toContain('delete table ip l4lb_dsr\ntable ip l4lb_dsr {\n\tset l4lb_owner {');
    await second.stop();
  });

  it('kernel flush leaves a dsr table it did not make, and then removes neither table', async () => {
    const nft = new FakeNft();
    nft.tables.set('l4lb_nat', [{ set: { name: 'l4lb_owner', elem: [1] } }]);
    nft.tables.set('l4lb_dsr', dsrListing(expectedSlots([]), undefined, null));
    await expect(removeTables(nft)).rejects.toMatchObject({ cause: 'table-owned', table: 'ip l4lb_dsr' });
    expect(nft.scripts).toEqual([]);
    nft.tables.set('l4lb_dsr', dsrListing(expectedSlots([])));
    expect(await removeTables(nft)).toEqual(['inet l4lb_nat', 'ip l4lb_dsr']);
    expect(nft.scripts).toEqual(['delete table inet l4lb_nat\n', 'delete table ip l4lb_dsr\n']);
  });
});

describe('KernelWriter, /stats rows of a dsr service', () => {
  it('VIP, per backend its state, health, slots loaded and pins in flows_web; no packet counters', async () => {
    const nft = new FakeNft();
    nft.maps.set('flows_web', pins);
    const { writer, sinks } = writerWith(nft);
    await writer.apply(dsrConfig('keep'));
    writer.setState('web', 'b3', 'draining');
    sinks.get('web')?.applyHealth('b2', 'down', 'refused');
    await writer.settled();
    const [row] = (await writer.stats()) as DsrKernelStats[];
    const slots = expectedSlots(['b2', 'b3']);
    expect(row).toEqual({
      service: 'web', mode: 'dsr', table: 'ip l4lb_dsr', vip: '192.0.2.200:80', slots: 31, pins: 4,
      backends: [
        { name: 'b1', address: '203.0.113.11:80', state: 'active', health: 'up', slots: slots.filter((name) => name === 'b1').length, pins: 1 },
        { name: 'b2', address: '203.0.113.12:80', state: 'active', health: 'down', slots: 0, pins: 2 },
        { name: 'b3', address: '203.0.113.13:80', state: 'draining', health: 'up', slots: 0, pins: 1 },
      ],
    });
    expect(row?.backends.every((backend) => !('packets' in backend))).toBe(true);
    expect(slots.filter((name) => name === 'b1')).toHaveLength(31);
    await writer.stop();
  });

  it('flows_web not listable: the pin fields are left out, not reported as 0', async () => {
    const nft = new FakeNft();
    nft.listMap = () => Promise.reject(new KernelError({ cause: 'not-root', table: 'ip l4lb_dsr', detail: 'Operation not permitted' }));
    const { writer } = writerWith(nft);
    await writer.apply(dsrConfig());
    const [row] = await writer.stats();
    expect(row).toMatchObject({ mode: 'dsr', slots: 31 });
    expect(row && 'pins' in row).toBe(false);
    expect(row?.backends.map((backend) => backend.slots).reduce((a, b) => a + b, 0)).toBe(31);
    expect(row?.backends.some((backend) => 'pins' in backend)).toBe(false);
    await writer.stop();
  });
});
