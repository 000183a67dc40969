/**
 * Renders the DSR director's ruleset: one nft file that replaces the table `ip l4lb_dsr` in a single
 * transaction (declare, delete, rebuild — `nft -f` commits all or nothing), as glb-director writes
 * its forwarding table whole. Pure: plan in, text out.
 *
 * Per service, in a prerouting chain at priority raw (before conntrack and routing):
 *   1. `notrack` — the director sees only client→VIP packets; conntrack would mark them invalid.
 *   2. a SYN deletes the pin of its (saddr, sport): a reused source port starts a new flow.
 *   3. a pinned flow (dynamic map `flows_ID`, saddr . sport → backend, with timeout) keeps its
 *      backend whatever the table says now; each packet refreshes the timeout.
 *   4. otherwise `jhash KEY mod M seed S` gives the Maglev slot, the map `slots_ID` its backend, and
 *      the flow is pinned.
 * l3: the backend is an address: `ip daddr set …` plus `ip dscp set D` (Yahoo/Kakao L3DSR).
 * l2: the backend is a mark (its address as a u32); policy routing (`renderDirectorRoutes`) sends each
 *     mark to a table whose default route is via that backend, so only the MAC changes (LVS-DR).
 * The set `l4lb_owner` (owner.ts) marks the table as l4lb's and holds the fingerprint of its shape
 * (`directorShape`), so a restarted `l4lb run` can adopt it by rewriting slot elements only.
 */
import { slotOwner } from '../hashing/index.js';
import { DIRECTOR_TABLE, nftKeyExpression, type DirectorService, type DsrBackend, type DsrMethod } from './director-plan.js';
import { OWNER_SET, shapeFingerprint } from './owner.js';

/** Pins idle longer than this fall back to the table: long enough for idle interactive sessions. */
export const FLOW_PIN_TIMEOUT = '1h';
/** Most pinned flows per service; past it new flows still follow the table, just unpinned. */
export const FLOW_PIN_LIMIT = 262_144;

const PIN_KEY = 'ip saddr . tcp sport';

export function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

/** The map value of a backend: what the director writes into the packet or its mark. */
export function slotValue(backend: DsrBackend, method: DsrMethod): string {
  switch (method) {
    case 'l3':
      return backend.address;
    case 'l2':
      return hex(backend.mark);
    default: {
      const never: never = method;
      return never;
    }
  }
}

/**
 * The fingerprint of everything the director's table declares except the elements of its maps:
 * method, and per service its nft id, VIP, port, DSCP, hash key, seed, table size and, for l2 only,
 * its backends (name and address give the l2 marks and their routes; l3's rules name no backend:
 * its slots hold addresses). Two plans with equal shapes render the same chains, rules, counters
 * and map types, so one turns into the other by rewriting slot elements alone.
 */
export function directorShape(services: readonly DirectorService[], method: DsrMethod): number {
  return shapeFingerprint(
    JSON.stringify([
      method,
      services.map((service) => [
        service.id, service.vip, service.port, service.dscp, service.hashKey, service.seed, service.table.size,
        ...(method === 'l2' ? [service.table.backends.map((backend) => [backend.name, backend.address])] : []),
      ]),
    ]),
  );
}

/** `key : value` elements, a few per line, indented for a map body. */
export function elementLines(elements: readonly string[], indent: string, perLine = 8): string {
  const lines: string[] = [];
  for (let i = 0; i < elements.length; i += perLine) lines.push(indent + elements.slice(i, i + perLine).join(', '));
  return lines.join(',\n');
}

function slotElements(service: DirectorService, method: DsrMethod): string[] {
  const { table } = service;
  const elements = new Array<string>(table.size);
  for (let slot = 0; slot < table.size; slot++) elements[slot] = `${slot} : ${slotValue(slotOwner(table, slot), method)}`;
  return elements;
}

function serviceHeader(service: DirectorService, method: DsrMethod): string[] {
  const { table } = service;
  const counts = new Array<number>(table.backends.length).fill(0);
  for (const index of table.slots) counts[index] = (counts[index] ?? 0) + 1;
  const lines = [
    `# service ${service.name}: ${service.vip}:${service.port}${method === 'l3' ? ` dscp ${service.dscp}` : ''}, ` +
      `jhash ${nftKeyExpression(service.hashKey)} mod ${table.size} seed ${hex(service.seed)}`,
  ];
  table.backends.forEach((backend, index) => {
    lines.push(`#   ${backend.name} ${backend.address} weight ${backend.weight}: ${counts[index]} slots`);
  });
  return lines;
}

function serviceChain(service: DirectorService, method: DsrMethod): string[] {
  const { id, table, seed } = service;
  const hash = `jhash ${nftKeyExpression(service.hashKey)} mod ${table.size} seed ${hex(seed)}`;
  const body = ['notrack'];
  switch (method) {
    case 'l3':
      body.push(
        `ip dscp set ${service.dscp}`,
        `tcp flags & (syn | ack) == syn delete @flows_${id} { ${PIN_KEY} : 0.0.0.0 }`,
        `ip daddr set ${PIN_KEY} map @flows_${id} update @flows_${id} { ${PIN_KEY} : ip daddr } accept`,
        `meta mark set ${hash}`,
        `ip daddr set meta mark map @slots_${id} update @flows_${id} { ${PIN_KEY} : ip daddr } accept`,
      );
      break;
    case 'l2':
      body.push(
        `tcp flags & (syn | ack) == syn delete @flows_${id} { ${PIN_KEY} : 0x0 }`,
        `meta mark set ${PIN_KEY} map @flows_${id} update @flows_${id} { ${PIN_KEY} : meta mark } accept`,
        `meta mark set ${hash}`,
        `meta mark set meta mark map @slots_${id} update @flows_${id} { ${PIN_KEY} : meta mark } accept`,
      );
      break;
    default: {
      const never: never = method;
      return never;
    }
  }
  return [`\tchain svc_${id} {`, ...body.map((line) => `\t\t${line}`), '\t}'];
}

/**
 * The complete director ruleset for `services`. Pre: services from `planDirector` (checked).
 * Post: loading it with `nft -f` leaves exactly one table `ip l4lb_dsr`, whatever was there before.
 */
export function renderDirector(services: readonly DirectorService[], method: DsrMethod): string {
  const valueType = method === 'l3' ? 'ipv4_addr' : 'mark';
  const vips = [...new Set(services.map((service) => service.vip))];
  const vipSet = vips.length === 1 ? vips[0] : `{ ${vips.join(', ')} }`;
  const out: string[] = [
    '#!/usr/sbin/nft -f',
    `# l4lb DSR director, method ${method}: generated by \`l4lb dsr render\`; load with \`nft -f\` (one transaction).`,
    ...services.flatMap((service) => serviceHeader(service, method)),
    `table ip ${DIRECTOR_TABLE} {}`,
    `delete table ip ${DIRECTOR_TABLE}`,
    `table ip ${DIRECTOR_TABLE} {`,
    `\tset ${OWNER_SET} {`,
    '\t\ttype mark',
    `\t\telements = { ${hex(directorShape(services, method))} }`,
    '\t}',
    '\t# packets from a VIP: zero on a working DSR director (replies go straight to the client)',
    '\tcounter from_vip {}',
    '\t# packets to a VIP on a port no service serves: dropped rather than looped back to the router',
    '\tcounter other_to_vip {}',
  ];
  for (const service of services) {
    out.push(
      `\tcounter in_${service.id} {}`,
      `\tmap slots_${service.id} {`,
      `\t\ttype mark : ${valueType}`,
      '\t\telements = {',
      elementLines(slotElements(service, method), '\t\t\t'),
      '\t\t}',
      '\t}',
      `\tmap flows_${service.id} {`,
      `\t\ttype ipv4_addr . inet_service : ${valueType}`,
      `\t\tsize ${FLOW_PIN_LIMIT}`,
      '\t\tflags dynamic, timeout',
      `\t\ttimeout ${FLOW_PIN_TIMEOUT}`,
      '\t}',
    );
  }
  out.push('\tchain prerouting {', '\t\ttype filter hook prerouting priority raw; policy accept;');
  for (const service of services) {
    out.push(`\t\tip daddr ${service.vip} tcp dport ${service.port} counter name in_${service.id} goto svc_${service.id}`);
  }
  out.push(`\t\tip saddr ${vipSet} counter name from_vip`, `\t\tip daddr ${vipSet} counter name other_to_vip drop`, '\t}');
  for (const service of services) out.push(...serviceChain(service, method));
  out.push('}', '');
  return out.join('\n');
}

/**
 * The L2 director's policy routing, as `ip -batch` lines: per backend, packets carrying its mark use a
 * table of its own (numbered like the mark) whose default route is via the backend, so the frame goes
 * to its MAC. Pre: planned services. Apply once, with `ip -batch`, on a director without these rules
 * (`rule add` is not idempotent); a backend added later needs its two lines before the diff that uses it.
 */
export function renderDirectorRoutes(services: readonly DirectorService[], device?: string): string {
  const backends = new Map<number, DsrBackend>();
  for (const service of services) for (const backend of service.table.backends) backends.set(backend.mark, backend);
  const dev = device === undefined ? '' : ` dev ${device}`;
  const lines = ['# l4lb DSR director, method l2: policy routes by backend mark; generated by `l4lb dsr routes`'];
  for (const backend of [...backends.values()].sort((a, b) => a.mark - b.mark)) {
    lines.push(`# ${backend.name}`, `route replace default via ${backend.address}${dev} table ${backend.mark}`, `rule add fwmark ${hex(backend.mark)} table ${backend.mark}`);
  }
  lines.push('');
  return lines.join('\n');
}
