/**
 * Backends from DNS without a DNS server: what an answer means (identity, order, SRV priority and
 * weight, TTL bounds) as input → output tables, and the watcher's rules (last good set kept on a
 * failed or empty answer, one log line per change of state, a name that resolves only later)
 * driven by a scripted client and a ManualClock.
 */
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { parseConfig, type ConfigError, type DnsBackendConfig } from '../src/config/index.js';
import { backendsOfAnswer, DnsWatcher, nextQueryDelayMs, type AddressRecord, type DnsClient, type ResolutionEvent, type ServiceRecord } from '../src/services/index.js';
import { captureLog } from './helpers/log.js';

const dnsEntry = (extra: Partial<DnsBackendConfig> = {}): DnsBackendConfig => ({ type: 'dns', name: 'db.test', port: 5432, refresh: 10_000, weight: 1, ...extra });
const srvEntry: DnsBackendConfig = { type: 'srv', name: '_pg._tcp.db.test', refresh: 10_000, weight: 1 };
const a = (...addresses: string[]): AddressRecord[] => addresses.map((address) => ({ address, ttl: 30 }));

describe('what an answer stands for', () => {
  it('dns: one backend per address, named ADDRESS:PORT, sorted; a reordered answer gives the same list', () => {
    const one = backendsOfAnswer(dnsEntry(), { type: 'dns', records: a('127.0.0.3', '127.0.0.2', '::1') });
    const other = backendsOfAnswer(dnsEntry(), { type: 'dns', records: a('::1', '127.0.0.2', '127.0.0.3', '127.0.0.2') });
    expect(one.map((backend) => backend.name)).toEqual(['127.0.0.2:5432', '127.0.0.3:5432', '[::1]:5432']);
    expect(other).toEqual(one);
    expect(one[2]?.address).toEqual({ host: '::1', port: 5432 });
  });

  it('dns: the entry is the template (weight, backup, maxConnections, slowStart)', () => {
    const [backend] = backendsOfAnswer(dnsEntry({ weight: 3, backup: true, maxConnections: 7, slowStart: 5000 }), { type: 'dns', records: a('127.0.0.2') });
    expect(backend).toEqual({ name: '127.0.0.2:5432', address: { host: '127.0.0.2', port: 5432 }, weight: 3, backup: true, maxConnections: 7, slowStart: 5000 });
  });

  it('srv: TARGET:PORT, lowest address of the target, weight clamped to 1–1000, higher priority numbers are backups', () => {
    const records: ServiceRecord[] = [
      { target: 'B.db.test.', port: 5433, priority: 10, weight: 0, addresses: ['127.0.0.5'] },
      { target: 'a.db.test', port: 5432, priority: 5, weight: 20, addresses: ['127.0.0.9', '127.0.0.4'] },
      { target: 'c.db.test', port: 5432, priority: 5, weight: 70_000, addresses: ['127.0.0.6'] },
      { target: 'gone.db.test', port: 5432, priority: 1, weight: 5, addresses: [] },
    ];
    expect(backendsOfAnswer(srvEntry, { type: 'srv', records })).toEqual([
      { name: 'a.db.test:5432', address: { host: '127.0.0.4', port: 5432 }, weight: 20 },
      { name: 'b.db.test:5433', address: { host: '127.0.0.5', port: 5433 }, weight: 1, backup: true },
      { name: 'c.db.test:5432', address: { host: '127.0.0.6', port: 5432 }, weight: 1000 },
    ]);
  });

  it.each([
    // ttl ms, refresh, next query in
    [0, 10_000, 1_000],
    [5_000, 10_000, 5_000],
    [86_400_000, 10_000, 10_000],
    [0, 200, 200],
    [undefined, 10_000, 10_000],
  ])('TTL %s ms with refresh %s ms: asked again after %s ms', (ttl, refresh, expected) => {
    expect(nextQueryDelayMs({ refresh }, ttl)).toBe(expected);
  });
});

/** A client answering from a script the test changes: records, or an error code. */
class ScriptedClient implements DnsClient {
  answer: AddressRecord[] | string = [];
  services: DnsClient['services'] = () => Promise.resolve([]);

  addresses(): Promise<AddressRecord[]> {
    const answer = this.answer;
    if (typeof answer === 'string') return Promise.reject(Object.assign(new Error(answer), { code: answer }));
    return Promise.resolve(answer);
  }

  close(): void {}
}

function watcherOn(client: ScriptedClient) {
  const clock = new ManualClock();
  const log = captureLog();
  const watcher = new DnsWatcher({ logger: log.logger, clock, client: () => client });
  const events: ResolutionEvent[] = [];
  const sets: string[][] = [];
  watcher.on('resolution', (event) => events.push(event));
  watcher.on('backends', ({ backends }) => sets.push(backends.map((backend) => backend.name)));
  /** Fires the next query and waits for its outcome. */
  const next = async (): Promise<ResolutionEvent> => {
    const outcome = once(watcher, 'resolution') as Promise<[ResolutionEvent]>;
    clock.advance(10_000);
    return (await outcome)[0];
  };
  const dnsLines = () => log.records.filter((record) => typeof record.msg === 'string' && record.msg.startsWith('dns:')).map((record) => record.msg);
  return { watcher, next, events, sets, dnsLines };
}

describe('the watcher', () => {
  it('keeps the last good set through failed and empty answers, logging each change of state once', async () => {
    const client = new ScriptedClient();
    client.answer = a('127.0.0.2', '127.0.0.3');
    const { watcher, next, sets, dnsLines } = watcherOn(client);
    await watcher.watch(undefined, [{ name: 'pg', entries: [dnsEntry()] }]);
    expect(watcher.backends('pg').map((backend) => backend.name)).toEqual(['127.0.0.2:5432', '127.0.0.3:5432']);

    client.answer = 'ETIMEOUT';
    expect((await next()).result).toBe('failed');
    expect((await next()).result).toBe('failed');
    client.answer = [];
    expect((await next()).result).toBe('empty');
    expect(watcher.backends('pg').map((backend) => backend.name)).toEqual(['127.0.0.2:5432', '127.0.0.3:5432']);
    client.answer = a('127.0.0.3', '127.0.0.2');
    expect(await next()).toMatchObject({ result: 'ok', changed: false });
    client.answer = a('127.0.0.3', '127.0.0.4');
    expect(await next()).toMatchObject({ result: 'ok', changed: true });

    expect(sets).toEqual([['127.0.0.2:5432', '127.0.0.3:5432'], ['127.0.0.3:5432', '127.0.0.4:5432']]);
    expect(dnsLines()).toEqual([
      'dns: resolved',
      'dns: no answer: keeping the last good backends',
      'dns: empty answer: keeping the last good backends',
      'dns: resolving again',
      'dns: backends changed',
    ]);
    const [status] = watcher.status('pg');
    expect(status).toMatchObject({ entry: 'dns db.test:5432', state: 'ok', resolutions: { ok: 3, empty: 1, failed: 2 }, lastError: null });
    await watcher.stop();
  });

  it('a name that does not resolve at start: no backends and one line, then its backends when it resolves', async () => {
    const client = new ScriptedClient();
    client.answer = 'ESERVFAIL';
    const { watcher, next, sets, dnsLines } = watcherOn(client);
    await watcher.watch(undefined, [{ name: 'pg', entries: [dnsEntry()] }]);
    expect(watcher.backends('pg')).toEqual([]);
    expect(watcher.status('pg')[0]).toMatchObject({ state: 'failed', lastError: 'ESERVFAIL', lastSuccessAgeSeconds: null });
    await next();
    client.answer = a('127.0.0.2');
    await next();
    expect(sets).toEqual([['127.0.0.2:5432']]);
    expect(dnsLines()).toEqual(['dns: no answer yet: the service runs without this entry\'s backends and adds them when it resolves', 'dns: resolving again']);
    await watcher.stop();
  });

  it('an entry kept across watch() calls keeps its set and is not asked again; retain() forgets the others', async () => {
    const client = new ScriptedClient();
    client.answer = a('127.0.0.2');
    const { watcher, events, sets } = watcherOn(client);
    await watcher.watch(undefined, [{ name: 'pg', entries: [dnsEntry()] }]);
    await watcher.watch(undefined, [{ name: 'pg', entries: [dnsEntry(), dnsEntry({ port: 6000 })] }]);
    expect(events).toHaveLength(2);
    expect(watcher.backends('pg').map((backend) => backend.name)).toEqual(['127.0.0.2:5432', '127.0.0.2:6000']);
    watcher.retain([{ name: 'pg', entries: [dnsEntry({ port: 6000 })] }]);
    expect(watcher.backends('pg').map((backend) => backend.name)).toEqual(['127.0.0.2:6000']);
    expect(sets.at(-1)).toEqual(['127.0.0.2:6000']);
    await watcher.stop();
  });
});

describe('configuration', () => {
  const file = (backends: string, top = ''): string => `${top}services:\n  - name: pg\n    listen: 127.0.0.1:6432\n    backends:\n${backends}`;
  const problems = (text: string): string[] => {
    try {
      parseConfig(text, 'c.yaml');
      return [];
    } catch (error) {
      return (error as ConfigError).lines();
    }
  };

  it('dns: and srv: entries beside named backends, and resolvers', () => {
    const config = parseConfig(file('      - { dns: db.test, port: 5432, refresh: 2s, weight: 2 }\n      - { srv: _pg._tcp.db.test }\n      - { name: b1, address: 127.0.0.1:5000 }\n', 'resolvers: ["127.0.0.1:5353", "::1"]\n'), 'c.yaml');
    expect(config.resolvers).toEqual([{ host: '127.0.0.1', port: 5353 }, { host: '::1', port: 53 }]);
    const service = config.services[0];
    expect(service.mode === 'proxy' && service.backends.map((backend) => backend.name)).toEqual(['b1']);
    expect(service.mode === 'proxy' && service.dnsBackends).toEqual([
      { type: 'dns', name: 'db.test', port: 5432, refresh: 2000, weight: 2 },
      { type: 'srv', name: '_pg._tcp.db.test', refresh: 10_000, weight: 1 },
    ]);
  });

  it.each([
    ['a refresh out of bounds', file('      - { dns: db.test, port: 5432, refresh: 10ms }\n'), 'c.yaml: services[0].backends[0].refresh: must be 100ms–1h, got 10ms'],
    ['a port on an srv: entry', file('      - { srv: _pg._tcp.db.test, port: 5432 }\n'), 'c.yaml: services[0].backends[0]: unknown key "port" in an srv: backend entry (it applies only to dns: entries (an SRV record carries its own port, weight and priority))'],
    ['a dns: entry without a port', file('      - { dns: db.test }\n'), 'c.yaml: services[0].backends[0].port: missing: expected a port 1–65535'],
    ['the same entry twice', file('      - { dns: db.test, port: 5432 }\n      - { dns: DB.test, port: 5432 }\n'), 'c.yaml: services[0].backends[1]: the same dns: entry as backends[0]'],
    ['a cluster', file('      - { dns: db.test, port: 5432 }\n', 'workers: 2\n'), 'c.yaml: services[0].backends: dns:/srv: entries need workers: 1 (this file has workers: 2): a cluster does not resolve them yet'],
    ['a resolver that is a name', file('      - { dns: db.test, port: 5432 }\n', 'resolvers: [dns.example]\n'), 'c.yaml: resolvers[0]: expected the IP address of a DNS server, got the name "dns.example" (a resolver is not itself resolved)'],
  ])('%s is refused', (_label, text, expected) => {
    expect(problems(text)).toEqual([expected]);
  });
});
