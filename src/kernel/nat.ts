/**
 * Full NAT in the kernel: the table `inet l4lb_nat` rendered from `mode: nat` services (docs/kernel.md,
 * the layout verified in /work/shared/LAB-NOTES.md "Full NAT in the kernel"). Pure: plan in, text out.
 *
 * Per service (nft id ID = the name with [^A-Za-z0-9_] → `_`):
 *   - map `slots_ID` (`type mark : ADDR . inet_service`): slot → backend address . port. A packet to
 *     VIP:PORT gets `meta mark set jhash KEY mod M seed S` (nft 1.0.6 cannot look a jhash up in a mark
 *     map directly) and is DNATed to `meta mark map @slots_ID`, in prerouting at priority dstnat
 *     (forwarded clients) and in output at priority -100 (local clients; `dstnat` is refused there).
 *     conntrack then keeps each established flow on its backend whatever the map says later.
 *   - postrouting: DNATed flows of the VIP get `snat to SNAT`, or `masquerade`, so replies return
 *     through this host (full NAT: the backend sees this host, never the client).
 *   - named counters `be_ID_BACKEND` (packets and bytes client → backend) of the backends named in
 *     the file, each bumped by its chain `count_ID_BACKEND` (one rule: the counter).
 *   - the filter chains of forward (forwarded clients) and output (local clients) hold one rule per
 *     family: `ct direction original ct status dnat`, then one verdict-map lookup in `backends_ipv4`
 *     / `backends_ipv6` keyed by the flow's original VIP . port and the packet's destination after
 *     DNAT (the backend) . port. The verdict is `goto count_ID_BACKEND` for a live named backend,
 *     `goto reset_flow` (a TCP reset) for a down one under onDown: close, and no element (no
 *     verdict) for a live discovered backend. Those chains see every packet of the host, so they
 *     must stay this cheap: a reply packet leaves after two comparisons, a client packet costs one
 *     lookup whatever the number of services and backends. (The layout before, a VIP dispatch map,
 *     a dead-backend set and a counter map, three lookups per client packet, measured 2 % fewer
 *     keep-alive requests/s; the one before that, rules per service and backend, 8 % fewer new
 *     connections/s with four services: docs/kernel.md.) A backend going down or up
 *     replaces its one element; its named counter lives apart from the element and keeps its counts.
 *     The reset a reject sends is itself a reply-direction packet of the flow and leaves through the
 *     output hook: the direction match lets it pass.
 * The set `l4lb_owner` marks the table as l4lb's and holds the fingerprint of its shape (everything
 * but the elements of the slot and backends maps), so a restarted l4lb can tell whether only
 * elements differ.
 */
import { isIP, SocketAddress } from 'node:net';
import { formatEndpoint, type HashKeyKind, type NatServiceConfig, type OnDown } from '../config/index.js';
import { LbError } from '../errors.js';
import { hex, elementLines } from './director.js';
import { MAX_DSR_TABLE_SIZE } from './director-plan.js';
import { OWNER_SET, shapeFingerprint } from './owner.js';
import type { KernelBackend } from './slots.js';

/** The one table full NAT owns; nothing else is touched. */
export const NAT_TABLE = 'l4lb_nat';
export const NAT_FAMILY = 'inet';
/** Changes whenever the rendered chains do (part of the shape fingerprint). */
const NAT_LAYOUT = 3;
export { OWNER_SET } from './owner.js';

export type AddressFamily = 'ipv4' | 'ipv6';

export interface NatService {
  readonly name: string;
  /** `name` reduced to an nft identifier suffix. */
  readonly id: string;
  readonly family: AddressFamily;
  readonly vip: string;
  readonly port: number;
  readonly hashKey: HashKeyKind;
  readonly seed: number;
  readonly tableSize: number;
  /** Absent: masquerade. */
  readonly snat?: string;
  readonly onDown: OnDown;
  /** The file's named backends in configuration order, then the discovered ones by name. */
  readonly backends: readonly NatBackend[];
}

/**
 * A backend of a nat service. A discovered one (a `dns:`/`srv:` answer) has no named counter and
 * no count chain and is left out of the shape: it comes and goes as slot elements and, while down,
 * one element of the backends map, so a changed answer is a delta of elements, never a new table.
 */
export interface NatBackend extends KernelBackend {
  readonly discovered?: boolean;
}

/** One service's kernel state: the backend (by name) of every slot, and the backends reset as dead. */
export interface NatAssignment {
  readonly service: NatService;
  /** Length tableSize: slot i → backend name. */
  readonly slots: readonly string[];
  /** Names of backends whose flows are reset (down under onDown: close). */
  readonly dead: readonly string[];
}

export function nftId(name: string): string {
  return name.replace(/[^A-Za-z0-9_]/g, '_');
}

/**
 * An address as nft lists it (inet_ntop): `2001:DB8::0011` → `2001:db8::11`. The plan carries
 * this form, so a listed table reads back equal to it (a restart adopts it instead of reloading)
 * and two spellings of one address are seen as one.
 */
function canonical(host: string): string {
  return isIP(host) === 6 ? new SocketAddress({ address: host, family: 'ipv6' }).address : host;
}

function problem(service: string, message: string): LbError {
  return new LbError('LB_ERR_CONFIG', `service "${service}": ${message}`);
}

/**
 * Checks what the renderer needs beyond the schema (nft identifiers that collide, a VIP used twice,
 * two backends at one address) and returns the services as the renderer reads them. `discovered`
 * names, per service, the backends a `dns:`/`srv:` entry found (they get no counter).
 * Throws LbError(LB_ERR_CONFIG) naming the service.
 */
export function planNat(services: readonly NatServiceConfig[], discovered: ReadonlyMap<string, ReadonlySet<string>> = new Map()): NatService[] {
  const ids = new Map<string, string>();
  const vips = new Set<string>();
  return services.map((service) => {
    const { name } = service;
    const vip = { host: canonical(service.vip.host), port: service.vip.port };
    const family: AddressFamily = isIP(vip.host) === 6 ? 'ipv6' : 'ipv4';
    const id = nftId(name);
    const clash = ids.get(id);
    if (clash !== undefined) throw problem(name, `its name and "${clash}" give the same nft identifier "${id}"; rename one`);
    ids.set(id, name);
    const endpoint = formatEndpoint(vip);
    if (vips.has(endpoint)) throw problem(name, `another nat service already uses ${endpoint}`);
    vips.add(endpoint);
    if (service.tableSize > MAX_DSR_TABLE_SIZE) throw problem(name, `tableSize ${service.tableSize} is too large for the nft director (at most ${MAX_DSR_TABLE_SIZE})`);
    const counters = new Map<string, string>();
    const addresses = new Map<string, string>();
    const found = discovered.get(name) ?? new Set<string>();
    const backends: NatBackend[] = service.backends.map((backend) => ({
      name: backend.name,
      weight: backend.weight,
      address: { host: canonical(backend.address.host), port: backend.address.port },
      ...(found.has(backend.name) ? { discovered: true } : {}),
    }));
    for (const backend of backends) {
      if (backend.discovered !== true) {
        // Only named backends get a counter: only their nft identifiers can collide.
        const counter = nftId(backend.name);
        const twin = counters.get(counter);
        if (twin !== undefined) throw problem(name, `backends "${twin}" and "${backend.name}" give the same nft identifier "${counter}"; rename one`);
        counters.set(counter, backend.name);
      }
      const where = formatEndpoint(backend.address);
      const same = addresses.get(where);
      if (same !== undefined) throw problem(name, `backends "${same}" and "${backend.name}" share the address ${where}`);
      addresses.set(where, backend.name);
    }
    return {
      name,
      id,
      family,
      vip: vip.host,
      port: vip.port,
      hashKey: service.hashKey,
      seed: service.hashSeed,
      tableSize: service.tableSize,
      ...(service.snat === undefined ? {} : { snat: canonical(service.snat) }),
      onDown: service.onDown,
      backends,
    };
  });
}

/** `ip` or `ip6`: the payload protocol of an address family. */
function ipOf(family: AddressFamily): 'ip' | 'ip6' {
  return family === 'ipv6' ? 'ip6' : 'ip';
}

function addrType(family: AddressFamily): string {
  return family === 'ipv6' ? 'ipv6_addr' : 'ipv4_addr';
}

/** The nft expression hashed for a flow key kind, in the VIP's family (as keys.ts flowKey orders it). */
export function natKeyExpression(kind: HashKeyKind, family: AddressFamily): string {
  const ip = ipOf(family);
  switch (kind) {
    case 'source-ip':
      return `${ip} saddr`;
    case 'source-ip-port':
      return `${ip} saddr . tcp sport`;
    default: {
      const never: never = kind;
      throw new LbError('LB_ERR_CONFIG', `unknown hash key "${String(never)}"`);
    }
  }
}

/** A backend as a map value or set element: `192.0.2.11 . 80`. */
export function natValue(service: NatService, backendName: string): string {
  const backend = service.backends.find((candidate) => candidate.name === backendName);
  if (backend === undefined) throw new LbError('LB_ERR_INVALID_ARGUMENT', `service ${service.name}: no backend "${backendName}"`);
  return `${backend.address.host} . ${backend.address.port}`;
}

/** The backends with a named counter and a counter rule: those named in the file. */
export function counted(service: NatService): readonly NatBackend[] {
  return service.backends.filter((backend) => backend.discovered !== true);
}

export function counterName(service: NatService, backendName: string): string {
  return `be_${service.id}_${nftId(backendName)}`;
}

/**
 * What must match for a delta to turn the loaded table into this one: every chain, rule, counter and
 * set declaration (services, VIPs, hashes, SNAT, backends and their addresses), not the elements.
 */
export function natShape(services: readonly NatService[]): number {
  return shapeFingerprint(
    JSON.stringify([
      // The chain layout's version: a table an older l4lb loaded has another shape, so it is loaded whole.
      NAT_LAYOUT,
      ...services.map((service) => [
        service.id, service.family, service.vip, service.port, service.hashKey, service.seed, service.tableSize, service.snat ?? null,
        counted(service).map((backend) => [backend.name, backend.address.host, backend.address.port]),
      ]),
    ]),
  );
}

/** The VIP match of a service's DNAT rule. */
function vipMatch(service: NatService): string {
  return `${ipOf(service.family)} daddr ${service.vip} tcp dport ${service.port}`;
}

/** The conntrack match of a service's flows (original direction: client → VIP). */
function flowMatch(service: NatService): string {
  return `meta l4proto tcp ct original ${ipOf(service.family)} daddr ${service.vip} ct original proto-dst ${service.port}`;
}

function dnatRule(service: NatService): string {
  const hash = `jhash ${natKeyExpression(service.hashKey, service.family)} mod ${service.tableSize} seed ${hex(service.seed)}`;
  return `${vipMatch(service)} meta mark set ${hash} ct mark set meta mark dnat ${ipOf(service.family)} to meta mark map @slots_${service.id}`;
}

function snatRule(service: NatService): string {
  const ip = ipOf(service.family);
  // Masquerade has no address to take on loopback (a local client to a local backend: the packet is
  // dropped, measured here); such flows need no SNAT, replies come back through this host anyway.
  return `${flowMatch(service)} ct status dnat ${service.snat === undefined ? 'oifname != "lo" masquerade' : `snat ${ip} to ${service.snat}`}`;
}

/** The verdict map of a family: VIP . port . backend . port → what a client packet of that flow meets. */
export function backendsMap(family: AddressFamily): string {
  return `backends_${family}`;
}

/** The chain a down backend's flows go to: a TCP reset for each client packet. */
const RESET_CHAIN = 'reset_flow';

/** The chain that counts a named backend's client packets in its named counter. */
function countChain(service: NatService, backendName: string): string {
  return `count_${service.id}_${nftId(backendName)}`;
}

/** A backend's key in the backends map: `VIP . PORT . ADDR . PORT`. */
function verdictKey(service: NatService, backend: NatBackend): string {
  return `${service.vip} . ${service.port} . ${backend.address.host} . ${backend.address.port}`;
}

/**
 * The elements of the backends map one assignment owns, key → verdict (as the renderer writes and
 * mapEntries reads them): a down backend (`dead`) → the reset chain; a live named one → its count
 * chain; a live discovered one has none (no counter: the lookup finds nothing, the packet goes on).
 */
export function natVerdicts(assignment: NatAssignment): Map<string, string> {
  const { service } = assignment;
  const dead = new Set(assignment.dead);
  const verdicts = new Map<string, string>();
  for (const backend of service.backends) {
    const key = verdictKey(service, backend);
    if (dead.has(backend.name)) verdicts.set(key, `goto ${RESET_CHAIN}`);
    else if (backend.discovered !== true) verdicts.set(key, `goto ${countChain(service, backend.name)}`);
  }
  return verdicts;
}

/** The backends a listed backends map sends to the reset chain, read against `service`. */
export function deadFromVerdicts(service: NatService, entries: ReadonlyMap<string, string>): string[] {
  const reset = `goto ${RESET_CHAIN}`;
  return service.backends.filter((backend) => entries.get(verdictKey(service, backend)) === reset).map((backend) => backend.name);
}

/**
 * The one rule of the forward and output filter chains per family present. Only the client's
 * packets (`ct direction original`) are looked up. Must hold: the reset a reject sends is itself a
 * packet of the flow (conntrack attaches it as related, reply direction) and leaves through the
 * output hook; were it looked up, the reject would reject it in turn, i.e. drop it, and forwarded
 * clients of a dead host retransmitted into silence (measured: 15 RSTs of 3 flows dropped, client
 * ETIMEDOUT; with the direction match: ECONNRESET at once). The packet's destination is the backend:
 * forward and output both come after the DNAT of prerouting and of output at -100.
 */
function dispatchRule(family: AddressFamily): string {
  const ip = ipOf(family);
  return `meta l4proto tcp ct direction original ct status dnat ct original ${ip} daddr . ct original proto-dst . ${ip} daddr . tcp dport vmap @${backendsMap(family)}`;
}

/** A chain; `hook` absent: a regular chain (a jump target). */
function chain(name: string, hook: string | undefined, rules: readonly string[]): string[] {
  // Trap 1 of the lab notes: a rule followed by `}` on its line is a syntax error; `}` stands alone.
  return [`\tchain ${name} {`, ...(hook === undefined ? [] : [`\t\t${hook}`]), ...rules.map((rule) => `\t\t${rule}`), '\t}'];
}

/**
 * The whole table for `assignments` (one per service, in order). Pre: services from planNat, each
 * slots of length tableSize naming its backends. Post: loading it with `nft -f` leaves exactly one
 * table `inet l4lb_nat`, whatever was there before (declare, delete, rebuild: one transaction).
 */
export function renderNatTable(assignments: readonly NatAssignment[]): string {
  const services = assignments.map((assignment) => assignment.service);
  const out: string[] = [
    '#!/usr/sbin/nft -f',
    '# l4lb full NAT: generated by `l4lb kernel render` / `l4lb run`; load with `nft -f` (one transaction).',
    ...assignments.flatMap(({ service, slots }) => {
      const counts = new Map<string, number>();
      for (const name of slots) counts.set(name, (counts.get(name) ?? 0) + 1);
      return [
        `# service ${service.name}: ${service.family === 'ipv6' ? `[${service.vip}]` : service.vip}:${service.port}, jhash ${natKeyExpression(service.hashKey, service.family)} mod ${service.tableSize} seed ${hex(service.seed)}, ${service.snat === undefined ? 'masquerade' : `snat ${service.snat}`}`,
        ...service.backends.map((backend) => `#   ${backend.name} ${backend.address.host} . ${backend.address.port} weight ${backend.weight}: ${counts.get(backend.name) ?? 0} slots`),
      ];
    }),
    `table ${NAT_FAMILY} ${NAT_TABLE} {}`,
    `delete table ${NAT_FAMILY} ${NAT_TABLE}`,
    `table ${NAT_FAMILY} ${NAT_TABLE} {`,
    `\tset ${OWNER_SET} {`,
    '\t\ttype mark',
    `\t\telements = { ${hex(natShape(services))} }`,
    '\t}',
  ];
  for (const { service, slots } of assignments) {
    for (const backend of counted(service)) out.push(`\tcounter ${counterName(service, backend.name)} {}`);
    const elements = slots.map((name, slot) => `${slot} : ${natValue(service, name)}`);
    out.push(
      `\tmap slots_${service.id} {`,
      `\t\ttype mark : ${addrType(service.family)} . inet_service`,
      '\t\telements = {',
      elementLines(elements, '\t\t\t'),
      '\t\t}',
      '\t}',
    );
  }
  const families = (['ipv4', 'ipv6'] as const).filter((family) => services.some((service) => service.family === family));
  for (const family of families) {
    const type = `${addrType(family)} . inet_service . ${addrType(family)} . inet_service`;
    const elements = assignments
      .filter(({ service }) => service.family === family)
      .flatMap((assignment) => [...natVerdicts(assignment)].map(([key, verdict]) => `${key} : ${verdict}`));
    out.push(
      `\tmap ${backendsMap(family)} {`,
      `\t\ttype ${type} : verdict`,
      ...(elements.length === 0 ? [] : ['\t\telements = {', elementLines(elements, '\t\t\t', 1), '\t\t}']),
      '\t}',
    );
  }
  out.push(
    ...chain('prerouting', 'type nat hook prerouting priority dstnat; policy accept;', services.map(dnatRule)),
    // Trap 6: `priority dstnat` is refused in the output hook; -100 is its value.
    ...chain('output', 'type nat hook output priority -100; policy accept;', services.map(dnatRule)),
    ...chain('postrouting', 'type nat hook postrouting priority srcnat; policy accept;', services.map(snatRule)),
    ...chain(RESET_CHAIN, undefined, ['meta l4proto tcp reject with tcp reset']),
    ...services.flatMap((service) => counted(service).flatMap((backend) => chain(countChain(service, backend.name), undefined, [`counter name "${counterName(service, backend.name)}"`]))),
    // `fwd` is an nft keyword (trap 9), hence `filter_forward`.
    ...chain('filter_forward', 'type filter hook forward priority filter; policy accept;', families.map(dispatchRule)),
    ...chain('filter_output', 'type filter hook output priority filter; policy accept;', families.map(dispatchRule)),
    '}',
    '',
  );
  return out.join('\n');
}

/** What one slot map (and optionally elements of one keyed map) of a loaded table must change. */
export interface SlotDelta {
  /** `inet l4lb_nat` or `ip l4lb_dsr`. */
  readonly table: string;
  readonly map: string;
  /** Map value of every slot before and after (same length). */
  readonly before: readonly string[];
  readonly after: readonly string[];
  /**
   * Elements of map `name`, key → value, before and after: a key whose value differs or that is
   * gone is deleted (it is there now), one whose value differs or that is new is added.
   */
  readonly entries?: { readonly name: string; readonly before: ReadonlyMap<string, string>; readonly after: ReadonlyMap<string, string> };
}

/** Slots whose value differs between `before` and `after`: what a delta rewrites, nothing else. */
export function movedSlots(before: readonly string[], after: readonly string[]): number[] {
  if (before.length !== after.length) throw new LbError('LB_ERR_TABLE_SIZE', `cannot diff slot maps of sizes ${before.length} and ${after.length}`);
  const moved: number[] = [];
  for (let slot = 0; slot < after.length; slot++) if (before[slot] !== after[slot]) moved.push(slot);
  return moved;
}

/**
 * One nft transaction for `deltas`: per map, `delete element` of the moved keys then `add element`
 * with their new values (nft refuses `add` on an existing key with another value, trap 7, and
 * deleting a key that is absent aborts the whole transaction: only keys the map holds are deleted);
 * the same for the keyed entries. Empty string when nothing changes. Pure.
 */
export function renderSlotDelta(deltas: readonly SlotDelta[]): string {
  const deletes: string[] = [];
  const adds: string[] = [];
  for (const delta of deltas) {
    const moved = movedSlots(delta.before, delta.after);
    if (moved.length > 0) {
      deletes.push(`delete element ${delta.table} ${delta.map} {`, elementLines(moved.map(String), '\t', 16), '}');
      adds.push(`add element ${delta.table} ${delta.map} {`, elementLines(moved.map((slot) => `${slot} : ${delta.after[slot] ?? ''}`), '\t'), '}');
    }
    const entries = delta.entries;
    if (entries === undefined) continue;
    const remove = [...entries.before].filter(([key, value]) => entries.after.get(key) !== value).map(([key]) => key);
    const add = [...entries.after].filter(([key, value]) => entries.before.get(key) !== value).map(([key, value]) => `${key} : ${value}`);
    if (remove.length > 0) deletes.push(`delete element ${delta.table} ${entries.name} {`, elementLines(remove, '\t', 1), '}');
    if (add.length > 0) adds.push(`add element ${delta.table} ${entries.name} {`, elementLines(add, '\t', 1), '}');
  }
  if (deletes.length === 0 && adds.length === 0) return '';
  return [...deletes, ...adds, ''].join('\n');
}

/**
 * The delta of one NAT service between two assignments (same service shape; the discovered
 * backends may differ: each side's names are read against its own backends). Pure.
 */
export function natDelta(before: NatAssignment, after: NatAssignment): SlotDelta {
  const { service } = after;
  const values = (assignment: NatAssignment): string[] => assignment.slots.map((name) => natValue(assignment.service, name));
  return {
    table: `${NAT_FAMILY} ${NAT_TABLE}`,
    map: `slots_${service.id}`,
    before: values(before),
    after: values(after),
    entries: { name: backendsMap(service.family), before: natVerdicts(before), after: natVerdicts(after) },
  };
}
