/**
 * Backends from DNS on kernel services (src/kernel discovered.ts, writer.ts) over a fake nft, a
 * scripted DNS client and a ManualClock: a changed answer is one transaction of exactly the moved
 * slots, an answer that changes nothing writes nothing, a failed or empty answer keeps the set, a
 * name that resolves only later loads the service then; the kernel's address rules (the VIP's
 * family for nat; IPv4 and the VIP's port for dsr) and the configuration's.
 */
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { KernelError } from '../src/errors.js';
import { parseConfig, type BackendConfig, type Config, type DnsBackendConfig, type DsrServiceConfig, type NatServiceConfig } from '../src/config/index.js';
import { KernelWriter, kernelSlots, movedSlots, tableSlotNames, type NftObject, type NftRunner } from '../src/kernel/index.js';
import { kernelBackendSet } from '../src/kernel/discovered.js';
import type { AddressRecord, DnsClient, ResolutionEvent, ServiceRecord, VerdictSink, VerdictSource } from '../src/services/index.js';
import { captureLog } from './helpers/log.js';
import { problemsOf } from './helpers/config-problems.js';

/** Records every script; lists `listing` (none: no table at start). */
class RecordingNft implements NftRunner {
  scripts: string[] = [];
  listing: NftObject[] | undefined;
  refuse = false;
  apply(script: string, table: string): Promise<void> {
    if (this.refuse) return Promise.reject(new KernelError({ cause: 'refused', table, detail: 'Error: Could not process rule: Invalid argument' }));
    this.scripts.push(script);
    return Promise.resolve();
  }
  list(): Promise<NftObject[] | undefined> {
    return Promise.resolve(this.listing);
  }
  listMap(): Promise<Record<string, unknown> | undefined> {
    return Promise.resolve(undefined);
  }
}

/** Answers from a script the test changes: address records or an errno code; SRV records likewise. */
class ScriptedClient implements DnsClient {
  answer: AddressRecord[] | string = [];
  srv: ServiceRecord[] = [];
  addresses(): Promise<AddressRecord[]> {
    const answer = this.answer;
    if (typeof answer === 'string') return Promise.reject(Object.assign(new Error(answer), { code: answer }));
    return Promise.resolve(answer);
  }
  services(): Promise<ServiceRecord[]> {
    return Promise.resolve(this.srv);
  }
  close(): void {}
}

const a = (...addresses: string[]): AddressRecord[] => addresses.map((address) => ({ address, ttl: 30 }));
const dnsEntry = (port: number): DnsBackendConfig => ({ type: 'dns', name: 'web.test', port, refresh: 10_000, weight: 1 });
const check = { type: 'tcp', interval: 1000, timeout: 1000, rise: 1, fall: 1, initial: 'up' } as const;

const natService: NatServiceConfig = {
  mode: 'nat',
  name: 'web',
  vip: { host: '127.0.0.1', port: 8000 },
  hashKey: 'source-ip-port',
  hashSeed: 1,
  tableSize: 31,
  onDown: 'close',
  healthCheck: check,
  backends: [{ name: 'b1', address: { host: '127.0.0.2', port: 8001 }, weight: 1 }],
  dnsBackends: [dnsEntry(8010)],
};

function setup(config: Config, listing?: NftObject[]) {
  const nft = new RecordingNft();
  nft.listing = listing;
  const client = new ScriptedClient();
  const clock = new ManualClock();
  const log = captureLog();
  const sinks = new Map<string, VerdictSink>();
  const verdicts = (sink: VerdictSink): VerdictSource => {
    sinks.set(sink.service, sink);
    return { decides: true, configure: () => {}, observe: () => {}, stop: () => Promise.resolve() };
  };
  const writer = new KernelWriter({ nft, logger: log.logger, verdicts, dnsClient: () => client, clock });
  /** Lets the next query of every entry run and waits until what it changed is written. */
  const next = async (): Promise<ResolutionEvent> => {
    const outcome = once(writer.dns, 'resolution') as Promise<[ResolutionEvent]>;
    clock.advance(10_000);
    const [event] = await outcome;
    await writer.settled();
    return event;
  };
  const messages = (text: string) => log.records.filter((record) => record.msg === text);
  return { nft, client, writer, next, sinks, messages, start: () => writer.apply(config) };
}

/** The slot → backend name of a nat service with `backends` (every one up and active). */
function slotsOf(backends: readonly BackendConfig[]): string[] {
  return tableSlotNames(kernelSlots(backends, natService.tableSize).table);
}

const named = natService.backends;
/** A nat slot value (`ADDR . PORT`) of a backend name of these tests. */
const valueOf = (name: string | undefined): string => (name === 'b1' ? '127.0.0.2 . 8001' : (name ?? '').replace(/:(\d+)$/, ' . $1'));
const found = (...hosts: string[]): BackendConfig[] => hosts.map((host) => ({ name: `${host}:8010`, address: { host, port: 8010 }, weight: 1 }));

/** The slots a nat delta deletes and the values it adds, by slot. */
function delta(script: string): { deleted: number[]; added: Map<number, string> } {
  const deleted = (/delete element inet l4lb_nat slots_web \{\n([^}]*)\n\}/.exec(script)?.[1] ?? '').split(/[,\s]+/).filter(Boolean).map(Number);
  const body = /add element inet l4lb_nat slots_web \{\n([^}]*)\n\}/.exec(script)?.[1] ?? '';
  return { deleted, added: new Map([...body.matchAll(/(\d+) : ([^,\n]+)/g)].map((match) => [Number(match[1]), (match[2] ?? '').trim()])) };
}

describe('kernel nat service with a dns: entry', () => {
  it('an A record added is one transaction of exactly the slots Maglev moves', async () => {
    const { nft, client, writer, next, start } = setup({ services: [natService] });
    client.answer = a('127.0.0.5');
    await start();
    expect(nft.scripts).toHaveLength(1);
    expect(nft.scripts[0]).toContain('127.0.0.5 . 8010');
    // A discovered backend has no named counter: it is not part of the table's shape.
    expect(nft.scripts[0]).toContain('counter be_web_b1 {}');
    expect(nft.scripts[0]).not.toContain('counter be_web_127');

    client.answer = a('127.0.0.5', '127.0.0.6');
    expect(await next()).toMatchObject({ result: 'ok', changed: true });
    expect(nft.scripts).toHaveLength(2);
    const before = slotsOf([...named, ...found('127.0.0.5')]);
    const after = slotsOf([...named, ...found('127.0.0.5', '127.0.0.6')]);
    const moved = movedSlots(before, after);
    expect(moved.length).toBeGreaterThan(0);
    const { deleted, added } = delta(nft.scripts[1] ?? '');
    expect(deleted).toEqual(moved);
    // Each moved slot gets the backend Maglev predicts for it; most go to the new backend (Maglev
    // is near-minimal: a few slots may change hands between the others, NSDI'16 §3.4).
    expect([...added.entries()]).toEqual(moved.map((slot) => [slot, valueOf(after[slot])]));
    expect(moved.filter((slot) => after[slot] === '127.0.0.6:8010').length).toBeGreaterThan(moved.length / 2);
    expect(nft.scripts[1]).not.toContain('table inet l4lb_nat {');
    expect((await writer.stats())[0]?.backends.map((backend) => [backend.name, backend.slots])).toEqual([
      ['b1', after.filter((name) => name === 'b1').length],
      ['127.0.0.5:8010', after.filter((name) => name === '127.0.0.5:8010').length],
      ['127.0.0.6:8010', after.filter((name) => name === '127.0.0.6:8010').length],
    ]);
    await writer.stop();
  });

  it('a reordered answer writes nothing; a removal moves exactly the slots Maglev moves (all of the removed backend\'s among them)', async () => {
    const { nft, client, writer, next, start } = setup({ services: [natService] });
    client.answer = a('127.0.0.5', '127.0.0.6');
    await start();
    client.answer = a('127.0.0.6', '127.0.0.5');
    expect(await next()).toMatchObject({ result: 'ok', changed: false });
    expect(nft.scripts).toHaveLength(1);

    client.answer = a('127.0.0.5');
    await next();
    expect(nft.scripts).toHaveLength(2);
    const before = slotsOf([...named, ...found('127.0.0.5', '127.0.0.6')]);
    const { deleted, added } = delta(nft.scripts[1] ?? '');
    const after = slotsOf([...named, ...found('127.0.0.5')]);
    expect(deleted).toEqual(movedSlots(before, after));
    expect(deleted).toEqual(expect.arrayContaining(before.flatMap((name, slot) => (name === '127.0.0.6:8010' ? [slot] : []))));
    expect([...added.entries()]).toEqual(deleted.map((slot) => [slot, valueOf(after[slot])]));
    await writer.stop();
  });

  it('a failed or empty answer keeps the last good set: no transaction', async () => {
    const { nft, client, writer, next, start } = setup({ services: [natService] });
    client.answer = a('127.0.0.5', '127.0.0.6');
    await start();
    client.answer = 'ETIMEOUT';
    expect((await next()).result).toBe('failed');
    client.answer = [];
    expect((await next()).result).toBe('empty');
    expect(nft.scripts).toHaveLength(1);
    expect((await writer.stats())[0]?.backends.map((backend) => backend.name)).toEqual(['b1', '127.0.0.5:8010', '127.0.0.6:8010']);
    await writer.stop();
  });

  it('a change nft refused is planned again at the next health change: the table catches up in one transaction', async () => {
    const { nft, client, writer, next, sinks, start, messages } = setup({ services: [natService] });
    client.answer = a('127.0.0.5');
    await start();
    nft.refuse = true;
    client.answer = a('127.0.0.5', '127.0.0.6');
    await next();
    expect(nft.scripts).toHaveLength(1);
    expect(messages('dns: the new backends could not be applied: keeping the previous ones')).toHaveLength(1);
    nft.refuse = false;
    sinks.get('web')?.applyHealth('b1', 'down', 'refused');
    await writer.settled();
    expect(nft.scripts).toHaveLength(2);
    const before = slotsOf([...named, ...found('127.0.0.5')]);
    const after = slotsOf([...named, ...found('127.0.0.5', '127.0.0.6')]);
    // One transaction carries both: the new backend's slots, and b1's moved away (it is down).
    const { added } = delta(nft.scripts[1] ?? '');
    expect([...added.values()]).not.toContain('127.0.0.2 . 8001');
    for (const slot of movedSlots(before, after).filter((moved) => after[moved] === '127.0.0.6:8010')) expect(added.get(slot)).toBe('127.0.0.6 . 8010');
    expect(nft.scripts[1]).toContain('add element inet l4lb_nat backends_ipv4 {\n\t127.0.0.1 . 8000 . 127.0.0.2 . 8001 : goto reset_flow\n}');
    expect((await writer.stats())[0]?.backends.map((backend) => [backend.name, backend.health])).toEqual([['b1', 'down'], ['127.0.0.5:8010', 'up'], ['127.0.0.6:8010', 'up']]);
    await writer.stop();
  });

  it('a discovered backend is health checked: down, its slots move and its flows are reset', async () => {
    const { nft, client, writer, sinks, start } = setup({ services: [natService] });
    client.answer = a('127.0.0.5');
    await start();
    sinks.get('web')?.applyHealth('127.0.0.5:8010', 'down', 'refused');
    await writer.settled();
    expect(nft.scripts).toHaveLength(2);
    const { deleted } = delta(nft.scripts[1] ?? '');
    expect(deleted).toEqual(slotsOf([...named, ...found('127.0.0.5')]).flatMap((name, slot) => (name === '127.0.0.5:8010' ? [slot] : [])));
    // A live discovered backend has no element (no counter); down, it gets the reset chain.
    expect(nft.scripts[0]).not.toContain('127.0.0.5 . 8010 :');
    expect(nft.scripts[1]).toContain('add element inet l4lb_nat backends_ipv4 {\n\t127.0.0.1 . 8000 . 127.0.0.5 . 8010 : goto reset_flow\n}');
    await writer.stop();
  });

  it('addresses of the other family are skipped, logged once', async () => {
    const { nft, client, writer, next, start, messages } = setup({ services: [natService] });
    client.answer = a('127.0.0.5', '::5');
    await start();
    client.answer = a('::5', '127.0.0.5');
    await next();
    expect(nft.scripts).toHaveLength(1);
    expect(nft.scripts[0]).not.toContain('::5');
    const skipped = messages('dns: discovered backend not usable by the kernel: skipped');
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toMatchObject({ service: 'web', backend: '[::5]:8010', reason: 'family' });
    await writer.stop();
  });

  it('a restart adopts the table its discovered backends are in: nothing written, or the moved slots when the answer changed', async () => {
    const first = setup({ services: [natService] });
    first.client.answer = a('127.0.0.5');
    await first.start();
    await first.writer.stop();
    const shape = /elements = \{ (0x[0-9a-f]+) \}/.exec(first.nft.scripts[0] ?? '')?.[1];
    const loaded = slotsOf([...named, ...found('127.0.0.5')]);
    const listing: NftObject[] = [
      { set: { name: 'l4lb_owner', elem: [Number(shape)] } },
      { map: { name: 'slots_web', elem: loaded.map((name, slot) => [slot, { concat: valueOf(name).split(' . ').map((part, i) => (i === 1 ? Number(part) : part)) }]) } },
      // The named backend's count chain; the live discovered one has no element.
      { map: { name: 'backends_ipv4', elem: [[{ concat: ['127.0.0.1', 8000, '127.0.0.2', 8001] }, { goto: { target: 'count_web_b1' } }]] } },
    ];
    const same = setup({ services: [natService] }, listing);
    same.client.answer = a('127.0.0.5');
    await same.start();
    expect(same.nft.scripts).toEqual([]);
    await same.writer.stop();
    const grown = setup({ services: [natService] }, listing);
    grown.client.answer = a('127.0.0.5', '127.0.0.6');
    await grown.start();
    expect(grown.nft.scripts).toHaveLength(1);
    expect(delta(grown.nft.scripts[0] ?? '').deleted).toEqual(movedSlots(loaded, slotsOf([...named, ...found('127.0.0.5', '127.0.0.6')])));
    await grown.writer.stop();
  });

  it('a name that does not resolve at start is not fatal: the service is loaded when it resolves', async () => {
    const only: NatServiceConfig = { ...natService, backends: [] };
    const { nft, client, writer, next, start } = setup({ services: [only] });
    client.answer = 'ETIMEOUT';
    await start();
    expect(nft.scripts).toEqual([]);
    expect(writer.has('web')).toBe(true);
    expect(await writer.stats()).toEqual([]);
    client.answer = a('127.0.0.5');
    await next();
    expect(nft.scripts).toHaveLength(1);
    expect(nft.scripts[0]).toContain('table inet l4lb_nat {');
    expect(nft.scripts[0]).toContain('127.0.0.5 . 8010');
    await writer.stop();
  });
});

const dsrService: DsrServiceConfig = {
  mode: 'dsr',
  name: 'web',
  vip: { host: '192.0.2.200', port: 80 },
  dscp: 10,
  hashKey: 'source-ip-port',
  hashSeed: 1,
  tableSize: 31,
  onDown: 'keep',
  backends: [{ name: 'b1', address: { host: '203.0.113.11', port: 80 }, weight: 1 }],
  dnsBackends: [{ type: 'srv', name: '_http._tcp.web.test', refresh: 10_000, weight: 1 }],
};

describe('kernel dsr service with an srv: entry', () => {
  it('a record added is one transaction of the director\'s moved slots; a record on another port is skipped, logged once', async () => {
    const { nft, client, writer, next, start, messages } = setup({ services: [dsrService] });
    const record = (target: string, address: string, port = 80): ServiceRecord => ({ target, port, priority: 1, weight: 1, addresses: [address] });
    client.srv = [record('a.web.test', '203.0.113.21'), record('x.web.test', '203.0.113.99', 8080)];
    await start();
    expect(nft.scripts).toHaveLength(1);
    expect(nft.scripts[0]).toContain('table ip l4lb_dsr {');
    expect(nft.scripts[0]).not.toContain('203.0.113.99');

    client.srv = [...client.srv, record('b.web.test', '203.0.113.22')];
    await next();
    expect(nft.scripts).toHaveLength(2);
    const script = nft.scripts[1] ?? '';
    expect(script).not.toContain('table ip l4lb_dsr {');
    const added = [...(/add element ip l4lb_dsr slots_web \{\n([^}]*)\n\}/.exec(script)?.[1] ?? '').matchAll(/(\d+) : ([\d.]+)/g)];
    const before = slotsOfDsr([...dsrService.backends, { name: 'a.web.test:80', address: { host: '203.0.113.21', port: 80 }, weight: 1 }]);
    const after = slotsOfDsr([...dsrService.backends, { name: 'a.web.test:80', address: { host: '203.0.113.21', port: 80 }, weight: 1 }, { name: 'b.web.test:80', address: { host: '203.0.113.22', port: 80 }, weight: 1 }]);
    const moved = movedSlots(before, after);
    expect(moved.length).toBeGreaterThan(0);
    expect(added.map((match) => [Number(match[1]), match[2]])).toEqual(moved.map((slot) => [slot, (after[slot] ?? '').replace(/^b1$/, '203.0.113.11').replace(/^a\.web\.test:80$/, '203.0.113.21').replace(/^b\.web\.test:80$/, '203.0.113.22')]));
    const skipped = messages('dns: discovered backend not usable by the kernel: skipped');
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toMatchObject({ backend: 'x.web.test:8080', reason: 'port' });
    await writer.stop();
  });
});

function slotsOfDsr(backends: readonly BackendConfig[]): string[] {
  return tableSlotNames(kernelSlots(backends, dsrService.tableSize).table);
}

describe('kernelBackendSet', () => {
  it('named first; a discovered one at a named backend\'s address, or past tableSize, is left out', () => {
    const service: NatServiceConfig = { ...natService, tableSize: 3 };
    const set = kernelBackendSet(service, [
      { name: '127.0.0.2:8001', address: { host: '127.0.0.2', port: 8001 }, weight: 1 },
      ...found('127.0.0.5', '127.0.0.6', '127.0.0.7'),
    ]);
    expect(set.service.backends.map((backend) => backend.name)).toEqual(['b1', '127.0.0.5:8010', '127.0.0.6:8010']);
    expect(set.dropped).toEqual([{ backend: '127.0.0.2:8001', reason: 'address', detail: 'another backend of the service is already at 127.0.0.2:8001' }]);
    expect(set.truncated).toBe(1);
    expect([...set.discovered]).toEqual(['127.0.0.5:8010', '127.0.0.6:8010']);
  });
});

describe('configuration of dns:/srv: entries on kernel services', () => {
  const nat = (backends: string): string => `services:\n  - name: web\n    mode: nat\n    vip: 127.0.0.1:8000\n    backends:\n${backends}`;
  const dsr = (backends: string): string => `services:\n  - name: web\n    mode: dsr\n    vip: 192.0.2.200:80\n    dscp: 10\n    backends:\n${backends}`;

  it('nat and dsr services take dns: and srv: entries beside named backends', () => {
    const config = parseConfig(`resolvers: ["127.0.0.1:5353"]\n${nat('      - { name: b1, address: 127.0.0.2:8001 }\n      - { dns: web.test, port: 8010, refresh: 2s, backup: true }\n      - { srv: _http._tcp.web.test }\n')}`, 'c.yaml');
    const service = config.services[0];
    expect(service?.mode === 'nat' && service.backends.map((backend) => backend.name)).toEqual(['b1']);
    expect(service?.mode === 'nat' && service.dnsBackends).toEqual([
      { type: 'dns', name: 'web.test', port: 8010, refresh: 2000, weight: 1, backup: true },
      { type: 'srv', name: '_http._tcp.web.test', refresh: 10_000, weight: 1 },
    ]);
    const only = parseConfig(dsr('      - { dns: web.test, port: 80 }\n'), 'c.yaml').services[0];
    expect(only?.mode === 'dsr' && [only.backends, only.dnsBackends]).toEqual([[], [{ type: 'dns', name: 'web.test', port: 80, refresh: 10_000, weight: 1 }]]);
  });

  it.each([
    ['a dsr dns: entry on another port than the VIP\'s', dsr('      - { dns: web.test, port: 8080 }\n'), 'c.yaml: services[0].backends[0].port: port 8080 differs from the VIP port 80: DSR does not rewrite ports (a dns: entry of a dsr service takes the VIP\'s port)'],
    ['backup on a dsr dns: entry', dsr('      - { dns: web.test, port: 80, backup: true }\n'), 'c.yaml: services[0].backends[0].backup: applies only to mode: proxy and mode: nat; a dsr service names no backups'],
    ['maxConnections on a nat dns: entry', nat('      - { dns: web.test, port: 80, maxConnections: 5 }\n'), 'c.yaml: services[0].backends[0].maxConnections: applies only to mode: proxy; the kernel counts no connections and ramps no shares'],
    ['slowStart on a nat srv: entry', nat('      - { srv: _http._tcp.web.test, slowStart: 10s }\n'), 'c.yaml: services[0].backends[0].slowStart: applies only to mode: proxy; the kernel counts no connections and ramps no shares'],
    ['a dsr dns: entry with workers: 2', `workers: 2\n${dsr('      - { dns: web.test, port: 80 }\n')}`, 'c.yaml: services[0].backends: dns:/srv: entries need workers: 1 (this file has workers: 2): a cluster does not resolve them yet'],
    ['the same entry twice', nat('      - { dns: web.test, port: 80 }\n      - { dns: WEB.test, port: 80 }\n'), 'c.yaml: services[0].backends[1]: the same dns: entry as backends[0]'],
  ])('%s: one clear line', (_name, text, line) => {
    expect(problemsOf(text)).toEqual([line]);
  });
});
