/**
 * The DNS watcher: asks every `dns:`/`srv:` backend entry of every service again and again
 * (HAProxy's `resolvers` section, nginx's `resolve`), keeps each entry's last good answer, and
 * emits a service's new backend set when it changes. The I/O half of discovery; what an answer
 * means is pure (src/services/discovery.ts).
 *
 * - Queries go through Node's `dns.Resolver` (c-ares), to the configured `resolvers` or, without
 *   them, to the servers of /etc/resolv.conf (c-ares does not read /etc/hosts). Each query waits
 *   DNS_DEFAULTS.queryTimeout per try, DNS_DEFAULTS.queryTries tries.
 * - An entry is asked again after its answer's TTL held to [DNS_LIMITS.minTtl, refresh], or
 *   after `refresh` when the answer carried no TTL or was not good.
 * - A failed answer (timeout, refused, SERVFAIL) and an empty one (no such name, no records)
 *   keep the entry's last good set: a resolver's hiccup never drops every backend. Each change of
 *   an entry's state (pending, ok, empty, failed) is logged once, and counted for /stats and
 *   /metrics.
 * - A name that does not resolve at start is not fatal: its entry starts with no backends and
 *   adds them when the name resolves.
 *
 * Consumers subscribe to 'backends' ({ service, backends }: every discovered backend of the
 * service, sorted by name) and turn it into their own table: the proxy's balancer re-plans
 * through the plan builder and the health gate; a kernel table writer can subscribe alike.
 */
import { EventEmitter } from 'node:events';
import { Resolver } from 'node:dns/promises';
import type { Logger } from 'pino';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { DNS_DEFAULTS, formatEndpoint, type BackendConfig, type DnsBackendConfig, type Endpoint } from '../config/index.js';
import { answerTtlMs, backendsOfAnswer, entryLabel, nextQueryDelayMs, sameBackends, type AddressRecord, type DnsAnswer, type ResolutionResult, type ServiceRecord } from './discovery.js';

/**
 * Asks DNS. Each method resolves with the records (an empty list when the name has none:
 * NXDOMAIN or NODATA) or rejects with an error whose `code` says why (ETIMEOUT, ECONNREFUSED,
 * ESERVFAIL…). Injectable: tests of the watcher's rules answer without a server.
 */
export interface DnsClient {
  /** Every A and AAAA record of `name`. */
  addresses(name: string): Promise<AddressRecord[]>;
  /** Every SRV record of `name`, each with its target's addresses. */
  services(name: string): Promise<ServiceRecord[]>;
  /** Cancels the queries in flight (they reject with ECANCELLED). */
  close(): void;
}

/** Makes the client for a `resolvers` setting (undefined: the system's servers). */
export type DnsClientFactory = (resolvers: readonly Endpoint[] | undefined) => DnsClient;

/** Answers that say "this name has no such records": an empty answer, not a failure. */
const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND']);

async function recordsOr<T>(query: Promise<T[]>): Promise<T[]> {
  try {
    return await query;
  } catch (error) {
    if (NO_RECORDS.has((error as NodeJS.ErrnoException).code ?? '')) return [];
    throw error;
  }
}

/** The c-ares client: `resolvers` (IP:PORT) or the system's. */
export const cAresClient: DnsClientFactory = (resolvers) => {
  const resolver = new Resolver({ timeout: DNS_DEFAULTS.queryTimeout, tries: DNS_DEFAULTS.queryTries });
  if (resolvers !== undefined) resolver.setServers(resolvers.map(formatEndpoint));
  const addresses = async (name: string): Promise<AddressRecord[]> => {
    const [v4, v6] = await Promise.all([recordsOr(resolver.resolve4(name, { ttl: true })), recordsOr(resolver.resolve6(name, { ttl: true }))]);
    return [...v4, ...v6];
  };
  return {
    addresses,
    services: async (name) => {
      const records = await recordsOr(resolver.resolveSrv(name));
      return Promise.all(
        records.map(async (record) => ({
          target: record.name,
          port: record.port,
          priority: record.priority,
          weight: record.weight,
          addresses: (await addresses(record.name)).map((each) => each.address),
        })),
      );
    },
    close: () => resolver.cancel(),
  };
};

/** An entry's state: not answered yet, or how its last query ended. */
export type DnsEntryState = 'pending' | ResolutionResult;

/** One entry as /stats shows it. */
export interface DnsEntryStatus {
  /** `dns NAME:PORT` or `srv NAME`. */
  readonly entry: string;
  readonly type: DnsBackendConfig['type'];
  readonly name: string;
  readonly state: DnsEntryState;
  /** The backends the entry stands for now (its last good answer), by name. */
  readonly backends: readonly string[];
  /** Why the last query failed (an errno code such as ETIMEOUT), null when it did not. */
  readonly lastError: string | null;
  /** Seconds since the last good answer; null before the first one. */
  readonly lastSuccessAgeSeconds: number | null;
  /** Queries so far, by how they ended. */
  readonly resolutions: Readonly<Record<ResolutionResult, number>>;
}

/** One query's outcome, for tests and metrics. */
export interface ResolutionEvent {
  readonly service: string;
  readonly entry: string;
  readonly result: ResolutionResult;
  /** Whether the entry's set of backends changed. */
  readonly changed: boolean;
}

/** A service's discovered backends changed: every backend of all its entries, sorted by name. */
export interface DiscoveredBackends {
  readonly service: string;
  readonly backends: readonly BackendConfig[];
}

export interface DnsWatcherEvents {
  backends: [DiscoveredBackends];
  resolution: [ResolutionEvent];
}

/** A service and its `dns:`/`srv:` entries, as configure() takes them. */
export interface WatchedService {
  readonly name: string;
  readonly entries: readonly DnsBackendConfig[];
}

export interface DnsWatcherOptions {
  readonly logger: Logger;
  /** Default: c-ares. */
  readonly client?: DnsClientFactory;
  /** What the waits between queries run on. Default: the system clock. */
  readonly clock?: Clock;
}

interface EntryWatch {
  readonly service: string;
  readonly entry: DnsBackendConfig;
  readonly label: string;
  backends: BackendConfig[];
  state: DnsEntryState;
  lastError: string | null;
  lastSuccess: number | undefined;
  readonly resolutions: Record<ResolutionResult, number>;
  timer: TimerHandle | undefined;
  /** The query in flight, if any. */
  query: Promise<void> | undefined;
  removed: boolean;
}

const keyOf = (service: string, entry: DnsBackendConfig): string => `${service}\0${JSON.stringify(entry)}`;

export class DnsWatcher extends EventEmitter<DnsWatcherEvents> {
  private readonly watches = new Map<string, EntryWatch>();
  private client: DnsClient | undefined;
  private resolversKey: string | undefined;
  private resolvers: readonly Endpoint[] | undefined;
  private readonly makeClient: DnsClientFactory;
  private readonly clock: Clock;
  private stopped = false;

  constructor(private readonly options: DnsWatcherOptions) {
    super();
    this.makeClient = options.client ?? cAresClient;
    this.clock = options.clock ?? systemClock;
  }

  /**
   * Watches the entries of `services` (besides those watched already) through `resolvers`. An
   * entry already watched (same service, same settings) keeps its last good set and its
   * schedule; a new one is asked at once, and this resolves when every new entry's first query
   * has ended, good or not. A change of `resolvers` takes effect from each entry's next query.
   * Entries no longer wanted are forgotten by retain(), once the configuration that dropped
   * them is in service (a refused reload keeps them).
   */
  async watch(resolvers: readonly Endpoint[] | undefined, services: readonly WatchedService[]): Promise<void> {
    if (this.stopped) return;
    const key = JSON.stringify(resolvers ?? null);
    if (key !== this.resolversKey) {
      this.client?.close();
      this.client = undefined;
      this.resolversKey = key;
      this.resolvers = resolvers;
    }
    const first: Promise<void>[] = [];
    for (const { name: service, entries } of services) {
      for (const entry of entries) {
        const key = keyOf(service, entry);
        if (this.watches.has(key)) continue;
        const watch: EntryWatch = {
          service,
          entry,
          label: entryLabel(entry),
          backends: [],
          state: 'pending',
          lastError: null,
          lastSuccess: undefined,
          resolutions: { ok: 0, empty: 0, failed: 0 },
          timer: undefined,
          query: undefined,
          removed: false,
        };
        this.watches.set(key, watch);
        first.push(this.ask(watch));
      }
    }
    await Promise.all(first);
  }

  /** Forgets every entry not in `services`; emits 'backends' for each service that lost one. */
  retain(services: readonly WatchedService[]): void {
    const wanted = new Set(services.flatMap(({ name, entries }) => entries.map((entry) => keyOf(name, entry))));
    const touched = new Set<string>();
    for (const [key, watch] of this.watches) {
      if (wanted.has(key)) continue;
      watch.removed = true;
      this.clock.clearTimer(watch.timer);
      this.watches.delete(key);
      if (watch.backends.length > 0) touched.add(watch.service);
    }
    for (const service of touched) this.emit('backends', { service, backends: this.backends(service) });
  }

  /** Every backend the entries of `service` stand for now, sorted by name, each name once. */
  backends(service: string): BackendConfig[] {
    const found = new Map<string, BackendConfig>();
    for (const watch of this.watches.values()) {
      if (watch.service !== service) continue;
      for (const backend of watch.backends) if (!found.has(backend.name)) found.set(backend.name, backend);
    }
    return [...found.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The entries of `service`, for /stats, in configuration order. */
  status(service: string): DnsEntryStatus[] {
    const now = this.clock.now();
    return [...this.watches.values()]
      .filter((watch) => watch.service === service)
      .map((watch) => ({
        entry: watch.label,
        type: watch.entry.type,
        name: watch.entry.name,
        state: watch.state,
        backends: watch.backends.map((backend) => backend.name),
        lastError: watch.lastError,
        lastSuccessAgeSeconds: watch.lastSuccess === undefined ? null : Math.round(now - watch.lastSuccess) / 1000,
        resolutions: { ...watch.resolutions },
      }));
  }

  /** Stops every schedule and cancels the queries in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const watch of this.watches.values()) {
      watch.removed = true;
      this.clock.clearTimer(watch.timer);
    }
    const inFlight = [...this.watches.values()].flatMap((watch) => (watch.query === undefined ? [] : [watch.query]));
    this.watches.clear();
    this.client?.close();
    this.client = undefined;
    await Promise.all(inFlight);
  }

  private clientNow(): DnsClient {
    this.client ??= this.makeClient(this.resolvers);
    return this.client;
  }

  /** One query of `watch`, then its next one scheduled. Never rejects. */
  private ask(watch: EntryWatch): Promise<void> {
    const query = this.askNow(watch).finally(() => {
      watch.query = undefined;
    });
    watch.query = query;
    return query;
  }

  private async askNow(watch: EntryWatch): Promise<void> {
    const client = this.clientNow();
    let answer: DnsAnswer | undefined;
    let error: string | null = null;
    try {
      answer =
        watch.entry.type === 'dns'
          ? { type: 'dns', records: await client.addresses(watch.entry.name) }
          : { type: 'srv', records: await client.services(watch.entry.name) };
    } catch (caught) {
      error = (caught as NodeJS.ErrnoException).code ?? (caught instanceof Error ? caught.message : String(caught));
    }
    if (watch.removed || this.stopped) return;
    const backends = answer === undefined ? [] : backendsOfAnswer(watch.entry, answer);
    const result: ResolutionResult = answer === undefined ? 'failed' : backends.length === 0 ? 'empty' : 'ok';
    watch.resolutions[result]++;
    watch.lastError = error;
    const previous = watch.backends;
    const changed = result === 'ok' && !sameBackends(previous, backends);
    if (result === 'ok') {
      watch.lastSuccess = this.clock.now();
      watch.backends = backends;
    }
    this.logTransition(watch, result, previous, error);
    watch.state = result;
    const ttl = answer === undefined || result !== 'ok' ? undefined : answerTtlMs(answer);
    watch.timer = this.clock.unref(this.clock.setTimeout(() => void this.ask(watch), nextQueryDelayMs(watch.entry, ttl)));
    this.emit('resolution', { service: watch.service, entry: watch.label, result, changed });
    if (changed) this.emit('backends', { service: watch.service, backends: this.backends(watch.service) });
  }

  /** One line per change of state, and one per change of a good answer's backends. */
  private logTransition(watch: EntryWatch, result: ResolutionResult, previous: readonly BackendConfig[], error: string | null): void {
    const logger = this.options.logger;
    const fields = { service: watch.service, entry: watch.label };
    if (result === 'ok') {
      const before = new Set(previous.map((backend) => backend.name));
      const after = new Set(watch.backends.map((backend) => backend.name));
      const added = [...after].filter((name) => !before.has(name));
      const removed = [...before].filter((name) => !after.has(name));
      if (watch.state !== 'ok') logger.info({ ...fields, backends: [...after] }, watch.state === 'pending' ? 'dns: resolved' : 'dns: resolving again');
      else if (added.length > 0 || removed.length > 0) logger.info({ ...fields, added, removed }, 'dns: backends changed');
      return;
    }
    if (watch.state === result) return;
    const kept = watch.backends.map((backend) => backend.name);
    const why = result === 'failed' ? { error } : {};
    if (watch.state === 'pending') {
      logger.warn({ ...fields, ...why }, `dns: ${result === 'failed' ? 'no answer' : 'no records'} yet: the service runs without this entry's backends and adds them when it resolves`);
    } else {
      logger.warn({ ...fields, ...why, kept }, `dns: ${result === 'failed' ? 'no answer' : 'empty answer'}: keeping the last good backends`);
    }
  }
}
