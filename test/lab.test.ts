/**
 * The DSR lab (lab/*.sh) run as a user runs it, as root, for L3 (DSCP) and L2 DSR: up, verify, churn,
 * down — and the agreement test against the kernel: for hundreds of flows from chosen source ports,
 * the backend that actually answered each one equals the backend the TypeScript hashing core predicts
 * (Maglev table + jhashSlotHash), both for the dsr service and for a proxy picker with the same
 * backends, table size and seed.
 *
 * Needs root, `ip netns`, nft, iperf3. With CI=true a missing capability fails the suite; elsewhere it
 * is skipped, with the reason in its title. The lab's namespaces have fixed names (l4lb-*), so this is
 * the only test file that builds the lab, and it holds the lab's machine-wide flock(1) (the one
 * lab/lib.sh takes, /run/lock/l4lb-lab.lock) for the whole suite, telling the scripts so with
 * L4LB_LAB_LOCK_HELD=1: two test runs on one machine (two checkouts, two helpers) take turns instead of
 * tearing down each other's lab. afterAll always runs lab/down.sh and checks no namespace remains.
 *
 * The scale-out lab (2 directors behind a router that spreads flows by BGP ECMP, BIRD 2 with BFD)
 * runs in the same suite and lock: verify.sh (flows on every director, identical tables), the
 * failover of a director that dies as a dead host (0 broken flows, every echo from the flow's first
 * backend, flows back after recovery, a planned drain without a retransmission), the other-seed
 * control that must break flows, and the known limit of a backend change followed by a director
 * failure, with and without pin synchronisation. It also needs bird and birdc (Debian's bird2).
 */
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type DsrServiceConfig, type ProxyServiceConfig } from '../src/config/index.js';
import { planDirector } from '../src/kernel/index.js';
import { nftJhashSlot } from '../src/hashing/jhash.js';
import { flowKey } from '../src/hashing/keys.js';
import { buildPlan, resolveBackends, ServiceLoads } from '../src/services/index.js';
import { requirement } from './helpers/skip.js';

const REPO = new URL('..', import.meta.url).pathname;
const LAB = `${REPO}lab/`;
const STEP_TIMEOUT = 120_000;
/** Another run may hold the lab for its whole suite (about two minutes). */
const LOCK_TIMEOUT = 600_000;
const LAB_LOCK = '/run/lock/l4lb-lab.lock';
const AGREEMENT_FLOWS = 400;

function run(command: string, args: string[], input?: string) {
  const env = { ...process.env, L4LB_LAB_LOCK_HELD: '1' };
  const result = spawnSync(command, args, { cwd: REPO, encoding: 'utf8', input, env, maxBuffer: 64 * 1024 * 1024 });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '', error: result.error };
}

/** Why the lab cannot run here, or undefined if it can. */
function missingCapability(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root';
  if (run('ip', ['netns', 'list']).status !== 0) return 'no `ip netns`';
  if (run('nft', ['--version']).status !== 0) return 'no nft';
  if (run('iperf3', ['--version']).status !== 0) return 'no iperf3';
  return undefined;
}

function script(name: string, ...args: string[]) {
  const result = run('bash', [`${LAB}${name}`, ...args]);
  const transcript = `lab/${name} ${args.join(' ')} exited ${result.status}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
  return { ...result, transcript, values: keyValues(result.stdout) };
}

function keyValues(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (match) values[match[1]] = match[2];
  }
  return values;
}

type LockHolder = ChildProcessByStdio<Writable, Readable, null>;

/**
 * Takes the lab's exclusive lock and keeps it while the returned process runs: flock(1) holds the
 * lock for `cat`, which exits when its stdin is closed — by `releaseLabLock`, or by the operating
 * system if this test process dies.
 */
async function acquireLabLock(): Promise<LockHolder> {
  const holder = spawn('flock', ['--exclusive', LAB_LOCK, '-c', 'echo locked; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    holder.stdout.once('data', () => resolve());
    holder.once('error', reject);
    holder.once('exit', (code) => reject(new Error(`flock exited with ${code} before taking the lab lock`)));
  });
  return holder;
}

async function releaseLabLock(holder: LockHolder): Promise<void> {
  if (holder.exitCode !== null) return;
  const exited = once(holder, 'exit');
  holder.stdin.end();
  await exited;
}

function labNamespaces(): string[] {
  return run('ip', ['netns', 'list'])
    .stdout.split('\n')
    .map((line) => line.split(' ')[0])
    .filter((name) => /^l4lb-(client|router|director\d*|be\d+)$/.test(name));
}

/** True if some .ts file under src/ has no .js under dist/ at least as new (npm test's pretest has just built). */
function distIsStale(dir = `${REPO}src`): boolean {
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

const missing = missingCapability();
const lab = requirement('DSR lab', missing && `${missing}; runs as root`);
const missingBird = run('sh', ['-c', 'command -v bird && command -v birdc']).status === 0 ? undefined : 'no bird/birdc (Debian package bird2)';
const scaleOut = requirement('scale-out: 2 directors behind BGP ECMP with BFD', missingBird);

/** PIDs in the BIRD PID files of the lab's state directory. */
function birdPids(): number[] {
  const dir = '/run/l4lb-lab/bird';
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => name.endsWith('.pid'))
    .map((name) => Number(readFileSync(`${dir}/${name}`, 'utf8').trim()))
    .filter((pid) => pid > 0);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(lab.skip)(lab.title, () => {
  let lock: LockHolder | undefined;

  beforeAll(async () => {
    if (missing !== undefined) throw new Error(`the DSR lab needs root, ip netns, nft and iperf3: ${missing} (CI=true, so this fails instead of skipping)`);
    lock = await acquireLabLock();
    // The scripts run dist/cli.js: build it unless it is up to date (rebuilding while other test
    // files run the CLI would race with them).
    if (distIsStale()) {
      const build = run(process.execPath, [`${REPO}node_modules/typescript/bin/tsc`, '-p', `${REPO}tsconfig.json`]);
      if (build.status !== 0) throw new Error(`tsc failed:\n${build.stdout}${build.stderr}`);
    }
  }, LOCK_TIMEOUT + STEP_TIMEOUT);

  afterAll(async () => {
    if (missing !== undefined) return;
    try {
      const down = script('down.sh');
      expect(down.status, down.transcript).toBe(0);
      expect(labNamespaces()).toEqual([]);
    } finally {
      if (lock) await releaseLabLock(lock);
    }
  }, STEP_TIMEOUT);

  for (const mode of ['l3', 'l2'] as const) {
    describe.sequential(`${mode} DSR`, () => {
      const backends = mode === 'l3' ? 3 : 4;
      let env: Record<string, string> = {};

      it(`up.sh --mode ${mode} --backends ${backends} builds the lab and prints KEY=VALUE lines`, () => {
        const up = script('up.sh', '--mode', mode, '--backends', String(backends));
        expect(up.status, up.transcript).toBe(0);
        env = up.values;
        expect(env).toMatchObject({ MODE: mode, VIP: '192.0.2.200', PORT: '80', CLIENT_NS: 'l4lb-client', DIRECTOR_NS: 'l4lb-director' });
        expect(env.BACKEND_NS.split(',')).toHaveLength(backends);
        expect(labNamespaces().sort()).toEqual(['l4lb-client', 'l4lb-director', 'l4lb-router', ...env.BACKEND_NS.split(',')].sort());
      }, STEP_TIMEOUT);

      it('verify.sh proves DSR: flows on predicted backends, no VIP packet on the director, bulk bytes bypass it', () => {
        const verify = script('verify.sh');
        expect(verify.status, verify.transcript).toBe(0);
        const v = verify.values;
        expect(v.VERIFY).toBe('OK');
        expect(Number(v.FLOWS_OK)).toBe(Number(v.FLOWS));
        expect(Number(v.FLOWS_ON_PREDICTED_BACKEND)).toBe(Number(v.FLOWS));
        expect(Number(v.DIRECTOR_PACKETS_FROM_VIP)).toBe(0);
        expect(Number(v.ROUTER_REPLIES_FROM_BACKENDS)).toBeGreaterThan(0);
        expect(Number(v.BULK_CLIENT_BYTES)).toBeGreaterThan(0);
        expect(Number(v.BULK_DIRECTOR_BYTES) * 20).toBeLessThan(Number(v.BULK_CLIENT_BYTES));
        process.stdout.write(`[lab ${mode}] bulk: client received ${v.BULK_CLIENT_BYTES} B, director interfaces ${v.BULK_DIRECTOR_BYTES} B\n`);
      }, STEP_TIMEOUT);

      it(`the kernel agrees with the TypeScript hashing core for ${AGREEMENT_FLOWS} flows`, async () => {
        const config = await loadConfig(env.CONFIG);
        const service = config.services.find((s): s is DsrServiceConfig => s.mode === 'dsr' && s.name === env.SERVICE)!;
        const [plan] = planDirector([service]);
        // The proxy side: the splicer's own plan for a mode: proxy service with the same backends,
        // table size and seed, and flowHash: jhash.
        const proxyConfig: ProxyServiceConfig = {
          mode: 'proxy',
          name: 'web-proxy',
          listen: [{ host: '127.0.0.1', port: 0 }],
          balance: 'maglev',
          hashKey: service.hashKey,
          flowHash: 'jhash',
          hashSeed: service.hashSeed,
          tableSize: service.tableSize,
          maxConnections: 100,
          retries: 0,
          timeouts: { connect: 1000, idle: 1000, queue: 1000, drain: 1000 },
          backends: service.backends,
        };
        const proxy = buildPlan(proxyConfig, await resolveBackends(proxyConfig, 'web-proxy'), new ServiceLoads());
        const firstPort = 26000;
        const probe = run('ip', ['netns', 'exec', env.CLIENT_NS, 'node', `${LAB}client.mjs`, 'probe', env.VIP, env.PORT, String(firstPort), String(AGREEMENT_FLOWS), '16']);
        expect(probe.status, probe.stderr).toBe(0);
        const observed = probe.stdout.trim().split('\n').map((line) => line.split(' '));
        expect(observed).toHaveLength(AGREEMENT_FLOWS);
        let agree = 0;
        const slotsSeen = new Set<number>();
        for (const [portText, backend] of observed) {
          const key = flowKey(env.CLIENT_IP, Number(portText));
          const slot = nftJhashSlot(key, plan.table.size, plan.seed);
          slotsSeen.add(slot);
          const predicted = plan.table.backends[plan.table.slots[slot]].name;
          expect(proxy.chooser.pick({ key, anchor: 0 }, 0)?.name).toBe(predicted);
          if (backend === predicted) agree++;
        }
        process.stdout.write(`[lab ${mode}] kernel agreement: ${agree}/${AGREEMENT_FLOWS} flows over ${slotsSeen.size} of ${plan.table.size} slots\n`);
        expect(agree).toBe(AGREEMENT_FLOWS);
        expect(slotsSeen.size).toBeGreaterThan(plan.table.size / 2);
      }, STEP_TIMEOUT);

      it('churn.sh: long-lived flows stay, moved slots equal the prediction, new flows follow the new table', () => {
        const churn = script('churn.sh');
        expect(churn.status, churn.transcript).toBe(0);
        const c = churn.values;
        expect(c.CHURN).toBe('OK');
        expect(Number(c.CHURN_SLOTS_MOVED_IN_KERNEL)).toBe(Number(c.CHURN_SLOTS_PREDICTED));
        expect(Number(c.CHURN_SLOTS_PREDICTED)).toBeGreaterThan(0);
        expect(Number(c.CHURN_HELD_KEPT)).toBe(Number(c.CHURN_HELD_FLOWS));
        expect(Number(c.CHURN_HELD_ON_REMOVED_BACKEND)).toBeGreaterThan(0);
        expect(Number(c.CHURN_NEW_ON_PREDICTED_BACKEND)).toBe(Number(c.CHURN_NEW_FLOWS));
        expect(Number(c.CHURN_NEW_ON_REMOVED_BACKEND)).toBe(0);
        process.stdout.write(`[lab ${mode}] churn: ${c.CHURN_SLOTS_MOVED_IN_KERNEL}/${c.CHURN_TABLE_SIZE} slots moved (predicted ${c.CHURN_SLOTS_PREDICTED}), ${c.CHURN_HELD_KEPT}/${c.CHURN_HELD_FLOWS} long-lived flows kept\n`);
      }, STEP_TIMEOUT);

      it('up.sh is idempotent and down.sh removes every namespace', () => {
        const again = script('up.sh', '--mode', mode, '--backends', '2');
        expect(again.status, again.transcript).toBe(0);
        expect(again.values.BACKEND_NS).toBe('l4lb-be1,l4lb-be2');
        const down = script('down.sh');
        expect(down.status, down.transcript).toBe(0);
        expect(labNamespaces()).toEqual([]);
        const twice = script('down.sh');
        expect(twice.status, twice.transcript).toBe(0);
      }, STEP_TIMEOUT);
    });
  }
  describe.skipIf(scaleOut.skip).sequential(scaleOut.title, () => {
    let birds: number[] = [];

    it('up.sh --directors 2 --routing bgp --bfd: BIRD in the router and both directors, one multipath route', () => {
      if (missingBird !== undefined) throw new Error(`the scale-out lab needs BIRD 2: ${missingBird} (CI=true, so this fails instead of skipping)`);
      const up = script('up.sh', '--directors', '2', '--routing', 'bgp', '--bfd');
      expect(up.status, up.transcript).toBe(0);
      expect(up.values).toMatchObject({ DIRECTORS: '2', ROUTING: 'bgp', BFD: 'on', DIRECTOR_NS: 'l4lb-director1,l4lb-director2' });
      expect(labNamespaces().sort()).toEqual(['l4lb-client', 'l4lb-director1', 'l4lb-director2', 'l4lb-router', ...up.values.BACKEND_NS.split(',')].sort());
      const route = run('ip', ['-n', 'l4lb-router', 'route', 'show', '192.0.2.200/32']).stdout;
      expect(route).toMatch(/proto bird/);
      expect(route).toMatch(/nexthop via 192\.0\.2\.2 dev r-d1/);
      expect(route).toMatch(/nexthop via 192\.0\.2\.6 dev r-d2/);
      birds = birdPids();
      expect(birds).toHaveLength(3);
      expect(birds.every(alive)).toBe(true);
    }, STEP_TIMEOUT);

    it('verify.sh: every director carries flows and all hold identical slot tables', () => {
      const verify = script('verify.sh', '--flows', '200', '--seconds', '1');
      expect(verify.status, verify.transcript).toBe(0);
      const v = verify.values;
      expect(v.VERIFY).toBe('OK');
      expect(v.DIRECTOR_TABLES_IDENTICAL).toBe('yes');
      const perDirector = v.DIRECTOR_FLOWS.split('/').map(Number);
      expect(perDirector).toHaveLength(2);
      expect(perDirector.every((n) => n > 0)).toBe(true);
      expect(perDirector.reduce((a, b) => a + b, 0)).toBe(Number(v.FLOWS));
      process.stdout.write(`[lab scale-out] flows per director: ${v.DIRECTOR_FLOWS}\n`);
    }, STEP_TIMEOUT);

    it('failover.sh: a director dies as a dead host; 0 broken flows, same backends, flows back after recovery; a drain loses nothing', () => {
      const failover = script('failover.sh');
      expect(failover.status, failover.transcript).toBe(0);
      const f = failover.values;
      expect(f.RESULT).toBe('OK');
      expect(Number(f.FLOWS)).toBe(40);
      expect(Number(f.FLOWS_OF_FAILED)).toBeGreaterThan(0);
      expect(Number(f.BROKEN)).toBe(0);
      expect(Number(f.WRONG_BACKEND_ECHOES)).toBe(0);
      expect(f.FAILED_FLOWS_ON_SURVIVORS).toBe(`${f.FLOWS_OF_FAILED}/${f.FLOWS_OF_FAILED}`);
      expect(f.FAILED_FLOWS_BACK).toBe(`${f.FLOWS_OF_FAILED}/${f.FLOWS_OF_FAILED}`);
      expect(f.OTHER_FLOWS_MOVED).toMatch(/^0\//);
      expect(Number(f.DRAIN_RETRANSMITS)).toBe(0);
      process.stdout.write(`[lab scale-out] BFD failover: route lost after ${f.ROUTE_LOSS_S} s, longest stall ${f.LONGEST_STALL_FAILED_S} s, failback ${f.FAILBACK_S} s, ${f.BROKEN} broken; drain stall ${f.LONGEST_STALL_DRAIN_S} s\n`);
    }, STEP_TIMEOUT);

    it('control: a survivor with another seed breaks the failed director\'s flows (the checks can fail)', () => {
      const control = script('failover.sh', '--control', 'other-seed');
      expect(control.status, control.transcript).toBe(0);
      const c = control.values;
      expect(c.RESULT).toBe('OK');
      expect(Number(c.BROKEN)).toBeGreaterThan(0);
      expect(Number(c.CONTROL_BROKEN_FAILED_FLOWS.split('/')[0])).toBeGreaterThan(0);
      expect(c.CONTROL_BROKEN_OTHER_FLOWS).toMatch(/^0\//);
      process.stdout.write(`[lab scale-out] other-seed control: ${c.CONTROL_BROKEN_FAILED_FLOWS} of the failed director's flows broke\n`);
    }, STEP_TIMEOUT);

    it('known limit: a backend change then a director failure breaks exactly the moved flows of that director; synchronised pins break none', () => {
      const limit = script('failover.sh', '--backend-change');
      expect(limit.status, limit.transcript).toBe(0);
      const l = limit.values;
      expect(l.RESULT).toBe('OK');
      const atRisk = Number(l.LIMIT_FLOWS_AT_RISK.split('/')[0]);
      expect(atRisk).toBeGreaterThan(0);
      expect(Number(l.BROKEN)).toBe(atRisk);
      const synced = script('failover.sh', '--backend-change', '--sync-pins');
      expect(synced.status, synced.transcript).toBe(0);
      expect(synced.values.RESULT).toBe('OK');
      expect(Number(synced.values.LIMIT_FLOWS_AT_RISK.split('/')[0])).toBeGreaterThan(0);
      expect(Number(synced.values.BROKEN)).toBe(0);
      expect(Number(synced.values.PINS_COPIED)).toBeGreaterThan(0);
      process.stdout.write(`[lab scale-out] backend change then failure: ${l.BROKEN} of ${l.LIMIT_FLOWS_AT_RISK} at-risk flows broke; with pins synchronised: ${synced.values.BROKEN}\n`);
    }, 2 * STEP_TIMEOUT);

    it('down.sh withdraws, stops every BIRD by PID and removes every namespace', () => {
      const down = script('down.sh');
      expect(down.status, down.transcript).toBe(0);
      expect(labNamespaces()).toEqual([]);
      expect(birds.filter(alive)).toEqual([]);
      expect(existsSync('/run/l4lb-lab')).toBe(false);
    }, STEP_TIMEOUT);
  });
});
