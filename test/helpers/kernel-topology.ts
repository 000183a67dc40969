/**
 * The kernel lab's topologies and configs (the layouts of /work/shared/LAB-NOTES.md "Full NAT in
 * the kernel", built with test/helpers/kernel-lab.ts), and the predictions the tests compare the
 * kernel with: `l4lb route` answers and, per slot, the backend the gated Maglev table names.
 *
 * Forwarded NAT: client (198.51.100.2) → director (198.51.100.1, ip_forward, a bridge 192.0.2.1/24
 * to the backends, SNAT address 192.0.2.254 on lo) → backends 192.0.2.11… The VIP 203.0.113.100 is
 * only the client's default route. Local NAT: one namespace, backends on 127.0.0.1, VIP
 * 127.0.0.1:PORT. DSR (L3, DSCP): client — router — director, backends behind the router, as lab/up.sh
 * builds it, with the backends' rules from `l4lb dsr render-backend`.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { flowKey, nftJhashSlot } from '../../src/hashing/index.js';
import { type KernelLab, REPO, type LabProcess, waitUntil, type SlotMap } from './kernel-lab.js';

export interface LabBackend {
  readonly name: string;
  readonly ns: string;
  /** Address the director reaches it at. */
  readonly address: string;
  readonly port: number;
  server?: LabProcess;
}

export interface NatLab {
  readonly client: string;
  readonly director: string;
  readonly clientIp: string;
  readonly vip: string;
  readonly vipPort: number;
  readonly snat?: string;
  readonly backends: LabBackend[];
}

export const SERVICE = 'web-nat';
export const SEED = 24301; // 0x5eed
export const TABLE_SIZE = 31;
export const ADMIN = '127.0.0.1:9900';

/** True if some .ts under src/ has no newer .js under dist/ (the tests run dist/cli.js). */
export function distIsStale(dir = `${REPO}src`): boolean {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      if (distIsStale(path)) return true;
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      const built = path.replace(`${REPO}src/`, `${REPO}dist/`).replace(/\.ts$/, '.js');
      if (!existsSync(built) || statSync(built).mtimeMs < statSync(path).mtimeMs) return true;
    }
  }
  return false;
}

export function assertBuilt(): void {
  if (distIsStale()) throw new Error('dist/ is older than src/: run `npm run build` first (npm test does it)');
}

/** Forwarded NAT: client → director → `count` backend namespaces, backends serving on `port`. */
export async function natForwarded(lab: KernelLab, count = 3, port = 80): Promise<NatLab> {
  const client = await lab.namespace('client');
  const director = await lab.namespace('director', { forward: true });
  await lab.link({ ns: client, dev: 'eth0', address: '198.51.100.2/24' }, { ns: director, dev: 'c0', address: '198.51.100.1/24' });
  await lab.ip(client, 'route', 'add', 'default', 'via', '198.51.100.1');
  await lab.ip(director, 'link', 'add', 'br0', 'type', 'bridge');
  await lab.ip(director, 'addr', 'add', '192.0.2.1/24', 'dev', 'br0');
  await lab.ip(director, 'link', 'set', 'br0', 'up');
  await lab.ip(director, 'addr', 'add', '192.0.2.254/32', 'dev', 'lo');
  const backends: LabBackend[] = [];
  for (let i = 1; i <= count; i++) {
    const ns = await lab.namespace(`backend b${i}`);
    const address = `192.0.2.${10 + i}`;
    await lab.link({ ns, dev: 'eth0', address: `${address}/24` }, { ns: director, dev: `b${i}`, master: 'br0' });
    // Only the director's side is routed: replies must come back through it (full NAT).
    await lab.ip(ns, 'route', 'add', 'default', 'via', '192.0.2.1');
    const backend: LabBackend = { name: `b${i}`, ns, address, port };
    backend.server = await lab.serve(ns, backend.name, port);
    backends.push(backend);
  }
  return { client, director, clientIp: '198.51.100.2', vip: '203.0.113.100', vipPort: 80, snat: '192.0.2.254', backends };
}

/** Local NAT: one namespace holding the client, l4lb and backends on 127.0.0.1:8001…; VIP 127.0.0.1:8000. */
export async function natLocal(lab: KernelLab, count = 3): Promise<NatLab> {
  const ns = await lab.namespace('local');
  const backends: LabBackend[] = [];
  for (let i = 1; i <= count; i++) {
    const backend: LabBackend = { name: `b${i}`, ns, address: '127.0.0.1', port: 8000 + i };
    backend.server = await lab.serve(ns, backend.name, backend.port, '127.0.0.1');
    backends.push(backend);
  }
  return { client: ns, director: ns, clientIp: '127.0.0.1', vip: '127.0.0.1', vipPort: 8000, backends };
}

export interface NatConfigOptions {
  readonly states?: Readonly<Record<string, 'active' | 'draining' | 'maintenance'>>;
  readonly tableSize?: number;
  readonly interval?: string;
  readonly onDown?: 'close' | 'keep';
  readonly extra?: readonly string[];
}

/** The l4lb file of a NAT lab: one `mode: nat` service and the admin API on the namespace's loopback. */
export function natConfig(nat: NatLab, options: NatConfigOptions = {}): string {
  const lines = [
    `admin: { listen: ${ADMIN} }`,
    'services:',
    `  - name: ${SERVICE}`,
    '    mode: nat',
    `    vip: ${nat.vip}:${nat.vipPort}`,
    '    hashKey: source-ip-port',
    `    hashSeed: ${SEED}`,
    `    tableSize: ${options.tableSize ?? TABLE_SIZE}`,
    ...(nat.snat ? [`    snat: ${nat.snat}`] : []),
    `    healthCheck: { type: tcp, interval: ${options.interval ?? '500ms'}, fall: 2, rise: 2 }`,
    `    onDown: ${options.onDown ?? 'close'}`,
    ...(options.extra ?? []).map((line) => `    ${line}`),
    '    backends:',
  ];
  for (const backend of nat.backends) {
    const state = options.states?.[backend.name];
    lines.push(`      - { name: ${backend.name}, address: ${backend.address}:${backend.port}${state ? `, state: ${state}` : ''} }`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Starts `l4lb run -c FILE` in the namespace and waits until its admin API answers and the kernel
 * table (`family table`) is listed by nft.
 */
export async function startKernelL4lb(lab: KernelLab, ns: string, config: string, family = 'inet', table = 'l4lb_nat', args: readonly string[] = []): Promise<LabProcess> {
  const l4lb = lab.l4lb(ns, config, args);
  await l4lb.waitForRecord('admin API listening');
  await waitUntil(`table ${family} ${table} in ${ns}`, async () => {
    if (!l4lb.running) throw new Error(`l4lb run exited:\n${l4lb.transcript()}`);
    return (await lab.tableText(ns, family, table)) === undefined ? undefined : true;
  });
  return l4lb;
}

/** `ADDR:PORT` of client ports, one per slot of the table (the first port found for each slot). */
export function keysPerSlot(clientIp: string, size: number, seed: number, firstPort = 1024): Map<number, string> {
  const keys = new Map<number, string>();
  for (let port = firstPort; port < 65536 && keys.size < size; port++) {
    const slot = nftJhashSlot(flowKey(clientIp, port), size, seed);
    if (!keys.has(slot)) keys.set(slot, `${clientIp}:${port}`);
  }
  if (keys.size < size) throw new Error(`no client port reaches every one of ${size} slots`);
  return keys;
}

/** The slot the kernel computes for a client key (jhash … mod M seed S = reciprocal_scale). */
export function slotOf(clientIp: string, port: number, size: number, seed: number): number {
  return nftJhashSlot(flowKey(clientIp, port), size, seed);
}

/**
 * What the kernel's slot map must hold for a config: per slot, the backend `l4lb route` names for a
 * key in that slot (the gated Maglev table: plan + gate, every backend up, configured states).
 */
export async function predictedSlots(lab: KernelLab, ns: string, configPath: string, nat: NatLab, service = SERVICE, size = TABLE_SIZE, seed = SEED): Promise<Map<number, string>> {
  const keys = keysPerSlot(nat.clientIp, size, seed);
  const answers = await lab.route(ns, configPath, service, [...keys.values()]);
  const owners = new Map<number, string>();
  for (const [slot, key] of keys) {
    const name = answers.get(key);
    if (name === undefined) throw new Error(`l4lb route gave no answer for ${key}`);
    owners.set(slot, name);
  }
  return owners;
}

/** The NAT map value of a backend as nft lists it (`ADDR . PORT`). */
export function natValue(nat: NatLab, name: string): string {
  const backend = nat.backends.find((b) => b.name === name);
  if (!backend) throw new Error(`no backend ${name}`);
  return `${backend.address} . ${backend.port}`;
}

/** A slot map translated from kernel values back to backend names (unknown values kept as text). */
export function slotNames(map: SlotMap, valueOf: (name: string) => string, names: readonly string[]): Map<number, string> {
  const byValue = new Map(names.map((name) => [valueOf(name), name]));
  return new Map([...map].map(([slot, value]) => [slot, byValue.get(value) ?? value]));
}

/**
 * Makes a backend a dead host: its namespace drops every packet in and out (so its kernel's FIN/RST
 * reach nobody), then its process is killed. Only l4lb can now end its flows.
 */
export async function killAsDeadHost(lab: KernelLab, backend: LabBackend): Promise<void> {
  await lab.nftLoad(backend.ns, [
    'table inet l4n_dead {',
    '  chain input { type filter hook input priority -400; policy drop; }',
    '  chain output { type filter hook output priority -400; policy drop; }',
    '}',
    '',
  ].join('\n'));
  await backend.server?.stop('SIGKILL');
}

/** Undoes killAsDeadHost: traffic flows again and the backend's server runs again. */
export async function revive(lab: KernelLab, backend: LabBackend, host = '0.0.0.0'): Promise<void> {
  await lab.mustExec(backend.ns, 'nft', ['delete', 'table', 'inet', 'l4n_dead']);
  backend.server = await lab.serve(backend.ns, backend.name, backend.port, host);
}

export const DSR_SERVICE = 'web';
export const DSR_VIP = '192.0.2.200';

/**
 * The L3 (DSCP) DSR lab of lab/up.sh with names of its own: client (198.51.100.10) — router —
 * director (192.0.2.2, `l4lb run` writes `ip l4lb_dsr` here), backends 203.0.113.11… behind the
 * router on a bridge, each set up by `l4lb dsr render-backend` (VIP on lo, DSCP restore).
 * The backends' rules are rendered from a config the caller writes with dsrConfig.
 */
export async function dsrLab(lab: KernelLab, count = 3): Promise<NatLab & { router: string }> {
  const client = await lab.namespace('dsr client');
  const router = await lab.namespace('dsr router', { forward: true });
  const director = await lab.namespace('dsr director', { forward: true });
  await lab.link({ ns: client, dev: 'eth0', address: '198.51.100.10/24' }, { ns: router, dev: 'r-client', address: '198.51.100.1/24' });
  await lab.ip(client, 'route', 'add', 'default', 'via', '198.51.100.1');
  await lab.link({ ns: router, dev: 'r-director', address: '192.0.2.1/25' }, { ns: director, dev: 'd-up', address: '192.0.2.2/25' });
  await lab.ip(director, 'route', 'add', 'default', 'via', '192.0.2.1');
  await lab.ip(router, 'link', 'add', 'br-be', 'type', 'bridge');
  await lab.ip(router, 'addr', 'add', '203.0.113.1/24', 'dev', 'br-be');
  await lab.ip(router, 'link', 'set', 'br-be', 'up');
  // Replies from the VIP come back from the backends' side: no strict rp_filter on the router
  // (every namespace of the lab has rp_filter 0).
  await lab.ip(router, 'route', 'add', `${DSR_VIP}/32`, 'via', '192.0.2.2');
  const backends: LabBackend[] = [];
  for (let i = 1; i <= count; i++) {
    const ns = await lab.namespace(`dsr backend b${i}`);
    const address = `203.0.113.${10 + i}`;
    await lab.link({ ns, dev: 'eth0', address: `${address}/24` }, { ns: router, dev: `r-be${i}`, master: 'br-be' });
    await lab.ip(ns, 'route', 'add', 'default', 'via', '203.0.113.1');
    backends.push({ name: `b${i}`, ns, address, port: 80 });
  }
  return { client, router, director, clientIp: '198.51.100.10', vip: DSR_VIP, vipPort: 80, backends };
}

/** The l4lb file of the DSR lab: one `mode: dsr` service with health checks and the admin API. */
export function dsrConfig(dsr: NatLab, options: NatConfigOptions = {}): string {
  const lines = [
    `admin: { listen: ${ADMIN} }`,
    'services:',
    `  - name: ${DSR_SERVICE}`,
    '    mode: dsr',
    `    vip: ${dsr.vip}:${dsr.vipPort}`,
    '    dscp: 10',
    '    hashKey: source-ip-port',
    `    hashSeed: ${SEED}`,
    `    tableSize: ${options.tableSize ?? TABLE_SIZE}`,
    `    healthCheck: { type: tcp, interval: ${options.interval ?? '500ms'}, fall: 2, rise: 2 }`,
    `    onDown: ${options.onDown ?? 'close'}`,
    '    backends:',
  ];
  for (const backend of dsr.backends) {
    const state = options.states?.[backend.name];
    lines.push(`      - { name: ${backend.name}, address: ${backend.address}${state ? `, state: ${state}` : ''} }`);
  }
  return `${lines.join('\n')}\n`;
}

/** Sets up each DSR backend with `l4lb dsr render-backend` (run in its namespace) and starts its server. */
export async function startDsrBackends(lab: KernelLab, dsr: NatLab, configPath: string): Promise<void> {
  for (const backend of dsr.backends) {
    const script = await lab.cli(dsr.director, ['dsr', 'render-backend', '-c', configPath, '--backend', backend.name, '--method', 'l3']);
    if (script.status !== 0) throw new Error(`l4lb dsr render-backend --backend ${backend.name} exited ${script.status}: ${script.stderr.trim()}`);
    await lab.mustExec(backend.ns, 'sh', ['-s'], script.stdout);
    backend.server = await lab.serve(backend.ns, backend.name, backend.port);
  }
}
