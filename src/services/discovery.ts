/**
 * Backends discovered through DNS, as pure functions of an answer: no I/O here (the queries and
 * their timers are src/services/dns.ts), so what a DNS answer means for hashing is tested alone.
 *
 * Identity. A discovered backend is named by what it is, never by where it stood in an answer:
 * `ADDRESS:PORT` for a `dns:` entry (`127.0.0.2:5432`, `[2001:db8::1]:5432`), `TARGET:PORT` for an
 * `srv:` entry (`pg-1.db.example:5432`, the target lower-cased without its final dot). The hashing
 * core keys every table on backend names (src/hashing: Maglev permutations, ring points, HRW
 * scores), so an answer that only reorders its records builds the very same table and moves no
 * client; one that adds or removes a record moves only the clients that record's backend gains or
 * loses: the minimal-disruption promise of the hashing core, carried through DNS. Names written
 * in the file cannot contain ":", so a discovered name never collides with one of them.
 *
 * SRV (RFC 2782): each record is one backend at its target's address (the lowest address when the
 * target has several, so the choice is stable) and the record's port. Records of the lowest
 * priority number are the primaries; those of higher numbers are backups (served only when no
 * primary is usable, RFC 2782's "try the lowest priority first"). A record's weight becomes the
 * backend's weight, clamped to 1–LIMITS.maxWeight (weight 0, "very small chance", is 1).
 */
import { isIP } from 'node:net';
import { DNS_LIMITS, formatEndpoint, LIMITS, type BackendConfig, type DnsBackendConfig } from '../config/index.js';

/** One address of an A/AAAA answer; `ttl` in seconds. */
export interface AddressRecord {
  readonly address: string;
  readonly ttl: number;
}

/** One SRV record with its target's addresses (empty: the target has none). */
export interface ServiceRecord {
  readonly target: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
  readonly addresses: readonly string[];
}

/** What a successful query of an entry gave: addresses (dns:) or SRV records (srv:). */
export type DnsAnswer =
  | { readonly type: 'dns'; readonly records: readonly AddressRecord[] }
  | { readonly type: 'srv'; readonly records: readonly ServiceRecord[]; readonly ttl?: number };

/** How one query of an entry ended: new records, an empty answer, or no answer at all. */
export type ResolutionResult = 'ok' | 'empty' | 'failed';

/** `dns pg.service.consul:5432` or `srv _pg._tcp.db.example`: an entry's label in logs, /stats and metrics. */
export function entryLabel(entry: Pick<DnsBackendConfig, 'type' | 'name' | 'port'>): string {
  return entry.type === 'dns' ? `dns ${entry.name}:${entry.port ?? 0}` : `srv ${entry.name}`;
}

/** The target as an identity: lower case, without the root's final dot. */
function canonicalTarget(target: string): string {
  const lower = target.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** Orders addresses by family then text, so "the lowest address" is one choice everywhere. */
function compareAddresses(a: string, b: string): number {
  const family = isIP(a) - isIP(b);
  if (family !== 0) return family;
  return a < b ? -1 : a > b ? 1 : 0;
}

const byName = (a: BackendConfig, b: BackendConfig): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * The backends `answer` stands for under `entry`, sorted by name, one per identity (a record
 * repeated in an answer counts once). Pure. Post: every address is an IP literal, every name
 * contains ":", every weight is in 1–LIMITS.maxWeight.
 */
export function backendsOfAnswer(entry: DnsBackendConfig, answer: DnsAnswer): BackendConfig[] {
  const found = new Map<string, BackendConfig>();
  const template = {
    ...(entry.maxConnections === undefined ? {} : { maxConnections: entry.maxConnections }),
    ...(entry.slowStart === undefined ? {} : { slowStart: entry.slowStart }),
  };
  if (answer.type === 'dns') {
    const port = entry.port ?? 0;
    for (const { address } of answer.records) {
      if (isIP(address) === 0) continue;
      const endpoint = { host: address, port };
      const name = formatEndpoint(endpoint);
      if (!found.has(name)) found.set(name, { name, address: endpoint, weight: entry.weight, ...template, ...(entry.backup === true ? { backup: true } : {}) });
    }
  } else {
    const usable = answer.records.filter((record) => record.addresses.some((address) => isIP(address) !== 0));
    const lowest = Math.min(...usable.map((record) => record.priority));
    for (const record of usable) {
      const name = `${canonicalTarget(record.target)}:${record.port}`;
      if (found.has(name)) continue;
      const [address] = record.addresses.filter((each) => isIP(each) !== 0).sort(compareAddresses);
      if (address === undefined) continue;
      const weight = Math.min(LIMITS.maxWeight, Math.max(1, Math.round(record.weight)));
      found.set(name, { name, address: { host: address, port: record.port }, weight, ...template, ...(record.priority > lowest ? { backup: true } : {}) });
    }
  }
  return [...found.values()].sort(byName);
}

/** The smallest TTL of an answer, in ms; undefined when the answer carries none (SRV through c-ares). */
export function answerTtlMs(answer: DnsAnswer): number | undefined {
  if (answer.type === 'srv') return answer.ttl === undefined ? undefined : answer.ttl * 1000;
  if (answer.records.length === 0) return undefined;
  return Math.min(...answer.records.map((record) => record.ttl)) * 1000;
}

/**
 * How long until `entry` is asked again: after a good answer its TTL, held to
 * [DNS_LIMITS.minTtl, refresh] (a TTL of 0 must not mean a query per tick; a day-long TTL must not
 * hide a change for a day); otherwise (no TTL, an empty or failed answer) `refresh`. Pure.
 */
export function nextQueryDelayMs(entry: Pick<DnsBackendConfig, 'refresh'>, ttlMs: number | undefined): number {
  if (ttlMs === undefined) return entry.refresh;
  return Math.min(entry.refresh, Math.max(DNS_LIMITS.minTtl, ttlMs));
}

/** Whether two backend lists (each sorted by name) are the same backends, field for field. */
export function sameBackends(a: readonly BackendConfig[], b: readonly BackendConfig[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((backend, i) => JSON.stringify(backend) === JSON.stringify(b[i]));
}
