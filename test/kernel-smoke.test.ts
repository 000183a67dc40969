/**
 * One real run of the full-NAT control plane, as root in a network namespace of its own
 * (l4k-<pid>, removed in afterAll with everything started in it): `l4lb run` loads inet l4lb_nat
 * for VIP 127.0.0.1:8000 over three local backends, connections land on the backends the gated
 * Maglev table predicts (src/hashing nftJhashSlot), and killing one backend moves exactly its slots.
 * With CI=true a missing root or nft fails; elsewhere the block is skipped with the reason.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nftJhashSlot } from '../src/hashing/jhash.js';
import { flowKey } from '../src/hashing/keys.js';
import { gatedSlotNames, kernelSlots, planNat } from '../src/kernel/index.js';
import { ServiceState } from '../src/services/index.js';
import { CLI } from './helpers/child.js';
import { requirement } from './helpers/skip.js';

const NS = `l4k-${process.pid}`;
const SEED = 0x5eed;
const M = 13;
const PORTS: Record<string, number> = { b1: 8001, b2: 8002, b3: 8003 };

function missingCapability(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root';
  if (spawnSync('nft', ['--version']).status !== 0) return 'no nft on PATH';
  if (spawnSync('ip', ['netns', 'list']).status !== 0) return 'no `ip netns`';
  return undefined;
}

const missing = missingCapability();
const smoke = requirement('kernel smoke: l4lb run writes inet l4lb_nat in a namespace', missing && `${missing}; runs as root`);

function inNs(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('ip', ['netns', 'exec', NS, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A process in the namespace whose stdout lines are waited on, never slept on. */
class NsProcess {
  readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private readonly waiters: { match: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  constructor(args: string[]) {
    this.child = spawn('ip', ['netns', 'exec', NS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = this.child.stdout;
    if (out !== null) createInterface({ input: out }).on('line', (line) => this.push(line));
    const err = this.child.stderr;
    if (err !== null) createInterface({ input: err }).on('line', (line) => this.push(line));
  }
  private push(line: string): void {
    this.lines.push(line);
    for (const waiter of [...this.waiters]) {
      if (!waiter.match(line)) continue;
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve(line);
    }
  }
  /** The first line (already seen from `from` on, or to come) that matches. */
  waitFor(match: (line: string) => boolean, from = 0): Promise<string> {
    const seen = this.lines.slice(from).find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
  get seen(): number {
    return this.lines.length;
  }
  transcript(): string {
    return this.lines.join('\n');
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
  }
}

const BACKEND = (name: string, port: number): string =>
  `require('node:net').createServer((s) => { s.on('error', () => {}); s.end('${name}\\n'); }).listen(${port}, '127.0.0.1', () => console.log('ready ${name}'));`;

/** Connects from each source port to the VIP and prints `SPORT NAME` per connection. */
const CLIENT = (ports: number[]): string => `
const net = require('node:net');
const ports = ${JSON.stringify(ports)};
(async () => {
  for (const localPort of ports) {
    const name = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: 8000, localAddress: '127.0.0.1', localPort });
      let text = '';
      s.on('data', (d) => { text += d; });
      s.on('end', () => resolve(text.trim()));
      s.on('error', (e) => resolve('error:' + e.code));
      s.setTimeout(3000, () => { s.destroy(); resolve('timeout'); });
    });
    console.log(localPort + ' ' + name);
  }
})();`;

function connectAll(ports: number[]): Map<number, string> {
  const result = inNs([process.execPath, '-e', CLIENT(ports)]);
  return new Map(result.stdout.trim().split('\n').map((line) => {
    const [port, name] = line.split(' ');
    return [Number(port), name ?? ''];
  }));
}

/** The slot map as nft lists it: slot → backend name, by port. */
function loadedSlots(): string[] {
  const listed = inNs(['nft', '-j', 'list', 'map', 'inet', 'l4lb_nat', 'slots_web']);
  const map = (JSON.parse(listed.stdout) as { nftables: { map?: { elem?: [number, { concat: [string, number] }][] } }[] }).nftables.find((o) => o.map !== undefined)?.map;
  const slots = new Array<string>(M).fill('?');
  for (const [slot, value] of map?.elem ?? []) slots[slot] = Object.keys(PORTS).find((name) => PORTS[name] === value.concat[1]) ?? '?';
  return slots;
}

/** What the gate predicts with `down` down. */
function predicted(down: string[]): string[] {
  const backends = Object.entries(PORTS).map(([name, port]) => ({ name, weight: 1, address: { host: '127.0.0.1', port } }));
  const [service] = planNat([{ mode: 'nat', name: 'web', vip: { host: '127.0.0.1', port: 8000 }, hashKey: 'source-ip-port', hashSeed: SEED, tableSize: M, onDown: 'close', backends }]);
  if (service === undefined) throw new Error('no plan');
  const state = new ServiceState('web', { verdicts: () => ({ decides: true, configure: () => {}, observe: () => {}, stop: () => Promise.resolve() }) });
  state.update({ name: 'web', backends }, backends);
  for (const name of down) state.applyHealth(name, 'down', 'test');
  return gatedSlotNames(kernelSlots(service.backends, M), state);
}

const slotOf = (port: number): number => nftJhashSlot(flowKey('127.0.0.1', port), M, SEED);

describe.skipIf(smoke.skip)(smoke.title, () => {
  const dir = mkdtempSync(`${tmpdir()}/l4k-smoke-`);
  const backends = new Map<string, NsProcess>();
  let l4lb: NsProcess | undefined;
  let configFile = '';

  beforeAll(async () => {
    if (missing !== undefined) throw new Error(`kernel smoke needs ${missing}`);
    if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `npm run build`');
    expect(spawnSync('ip', ['netns', 'add', NS]).status).toBe(0);
    inNs(['ip', 'link', 'set', 'lo', 'up']);
    for (const [name, port] of Object.entries(PORTS)) {
      const backend = new NsProcess([process.execPath, '-e', BACKEND(name, port)]);
      backends.set(name, backend);
      await backend.waitFor((line) => line === `ready ${name}`);
    }
    const file = `${dir}/nat.yaml`;
    writeFileSync(
      file,
      [
        'services:',
        '  - name: web',
        '    mode: nat',
        '    vip: 127.0.0.1:8000',
        '    hashKey: source-ip-port',
        `    hashSeed: ${SEED}`,
        `    tableSize: ${M}`,
        '    healthCheck: { type: tcp, interval: 300ms, timeout: 200ms, fall: 1, rise: 1 }',
        '    backends:',
        ...Object.entries(PORTS).map(([name, port]) => `      - { name: ${name}, address: 127.0.0.1:${port} }`),
        '',
      ].join('\n'),
    );
    configFile = file;
    l4lb = new NsProcess([process.execPath, CLI, 'run', '-c', file]);
    await l4lb.waitFor((line) => line.includes('"kernel table loaded"') || line.includes('l4lb:'));
  }, 30_000);

  afterAll(async () => {
    await l4lb?.stop();
    for (const backend of backends.values()) await backend.stop();
    spawnSync('ip', ['netns', 'del', NS]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads the table with the predicted slots, and connections land on the predicted backends', () => {
    expect(l4lb?.transcript()).toContain('kernel table loaded');
    expect(loadedSlots()).toEqual(predicted([]));
    const ports = Array.from({ length: 40 }, (_, i) => 30000 + i);
    const landed = connectAll(ports);
    const all = predicted([]);
    for (const port of ports) expect(`${port} ${landed.get(port)}`).toBe(`${port} ${all[slotOf(port)]}`);
    expect(new Set(landed.values())).toEqual(new Set(['b1', 'b2', 'b3']));
  });

  it('killing a backend moves exactly its slots; new connections follow', async () => {
    const before = loadedSlots();
    const from = l4lb?.seen ?? 0;
    await backends.get('b2')?.stop();
    await l4lb?.waitFor((line) => line.includes('"kernel slots rewritten"'), from);
    const after = loadedSlots();
    const moved = before.flatMap((name, slot) => (name === after[slot] ? [] : [slot]));
    expect(moved).toEqual(before.flatMap((name, slot) => (name === 'b2' ? [slot] : [])));
    expect(after).toEqual(predicted(['b2']));
    const ports = Array.from({ length: 30 }, (_, i) => 31000 + i);
    const landed = connectAll(ports);
    for (const port of ports) expect(`${port} ${landed.get(port)}`).toBe(`${port} ${after[slotOf(port)]}`);
    expect(inNs(['nft', 'list', 'map', 'inet', 'l4lb_nat', 'backends_ipv4']).stdout).toContain('127.0.0.1 . 8002 : goto reset_flow');
  }, 30_000);

  it('SIGTERM leaves the table; a new l4lb adopts it by a delta, never a whole reload', async () => {
    const before = loadedSlots();
    await l4lb?.stop();
    expect(loadedSlots()).toEqual(before);
    // b2 is still dead, but a new process starts with every backend up (healthCheck.initial: up):
    // it adopts the table by a delta (never a whole reload), and its first failed check of b2
    // moves b2's slots away again, to exactly where they were.
    const next = new NsProcess([process.execPath, CLI, 'run', '-c', configFile]);
    l4lb = next;
    await next.waitFor((line) => line.includes('"backend health changed"'));
    const changedAt = next.transcript().split('\n').findIndex((line) => line.includes('"backend health changed"'));
    await next.waitFor((line) => line.includes('"kernel slots rewritten"'), changedAt + 1);
    expect(next.transcript()).not.toContain('kernel table loaded');
    expect(loadedSlots()).toEqual(before);
  }, 30_000);
});
