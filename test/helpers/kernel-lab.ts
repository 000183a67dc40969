/**
 * The kernel lab of the `mode: nat` / `mode: dsr` tests (docs: /work/notes/kernel-spec.md is the
 * contract they check): network namespaces with unique names (`l4n-<pid>-<n>`), veth pairs made
 * directly inside them, documentation addresses (RFC 5737) and the sysctls each role needs, the
 * lab's backends (lab/flows.mjs serve) and `l4lb run` started inside a namespace with
 * `ip netns exec`, and a dispose() that ALWAYS removes everything: processes by PID first (they
 * outlive `ip netns del`), then the namespaces (their nft tables, veths and conntrack go with
 * them), then the temp directory. Nothing is made in, or connected to, the host's namespace.
 *
 * Readiness is waited on as events (a line a process prints, a table nft lists), never slept on.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IN_CI, requirement, type Requirement } from './skip.js';

export const REPO = new URL('../..', import.meta.url).pathname;
export const CLI = `${REPO}dist/cli.js`;
export const FLOWS = `${REPO}lab/flows.mjs`;

/**
 * `ip` by absolute path: a test may run a command with a PATH that lacks nft (and so lacks
 * /usr/sbin), and spawn looks the command up on the child's PATH.
 */
const IP = spawnSync('sh', ['-c', 'command -v ip'], { encoding: 'utf8' }).stdout.trim() || 'ip';

/** Every namespace name this test process makes: `l4n-<pid>-<n>`, n counting across labs. */
let namespaceCounter = 0;

export interface RunResult {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end, asynchronously (other lab processes keep being read meanwhile). */
export function runCommand(command: string, args: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: REPO, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', reject);
    // A command that exits without reading its input (an error) must not fail the test run.
    child.stdin.on('error', () => {});
    child.once('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** Why the kernel lab cannot run here, or undefined when it can. */
export async function missingCapability(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root';
  const probe = async (command: string, args: string[]): Promise<boolean> => {
    try {
      return (await runCommand(command, args)).status === 0;
    } catch {
      return false;
    }
  };
  if (!(await probe('ip', ['netns', 'list']))) return 'no `ip netns`';
  if (!(await probe('nft', ['--version']))) return 'no nft';
  return undefined;
}

/**
 * The describe-level requirement of a kernel lab suite: outside CI a missing capability skips the
 * block (title says why); with CI=true the block runs and `assertCapable` fails it.
 */
export async function kernelLabRequirement(title: string): Promise<{ requirement: Requirement; missing: string | undefined }> {
  const missing = await missingCapability();
  return { requirement: requirement(title, missing && `${missing}; the kernel lab runs as root`), missing };
}

/** Throws (failing the suite) when the lab cannot run: the beforeAll of every kernel lab suite. */
export function assertCapable(missing: string | undefined): void {
  if (missing !== undefined) {
    throw new Error(`the kernel lab needs root, ip netns and nft: ${missing}${IN_CI ? ' (CI=true, so this fails instead of skipping)' : ''}`);
  }
}

/** Polls `probe` until it returns a value other than undefined; rejects naming `what` after `timeoutMs`. */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** A long-running process started in a namespace: its stdout lines, waits on them, its exit. */
export class LabProcess {
  readonly lines: string[] = [];
  private stderrText = '';
  private partial = '';
  private readonly waiters: { match: (line: string) => boolean; resolve: (line: string) => void; reject: (error: Error) => void }[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly label: string,
    readonly child: ChildProcess,
  ) {
    child.stdout?.on('data', (chunk: Buffer) => {
      const parts = (this.partial + chunk.toString('utf8')).split('\n');
      this.partial = parts.pop() ?? '';
      for (const line of parts) {
        this.lines.push(line);
        for (let i = this.waiters.length - 1; i >= 0; i--) {
          if (this.waiters[i].match(line)) this.waiters.splice(i, 1)[0].resolve(line);
        }
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderrText = (this.stderrText + chunk.toString('utf8')).slice(-65536);
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        for (const waiter of this.waiters.splice(0)) {
          waiter.reject(new Error(`${label} exited (${code ?? signal}) before printing the awaited line:\n${this.transcript()}`));
        }
        resolve({ code, signal });
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  stderr(): string {
    return this.stderrText;
  }

  transcript(): string {
    return `--- ${this.label} stdout (last 40 lines)\n${this.lines.slice(-40).join('\n')}\n--- stderr\n${this.stderrText.slice(-4000)}`;
  }

  /** The first stdout line (already printed or to come) that satisfies `match`. */
  waitForLine(match: (line: string) => boolean, timeoutMs = 30_000, from = 0): Promise<string> {
    const found = this.lines.slice(from).find(match);
    if (found !== undefined) return Promise.resolve(found);
    if (!this.running) return Promise.reject(new Error(`${this.label} is not running:\n${this.transcript()}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = this.waiters.findIndex((w) => w.resolve === done);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(new Error(`${this.label}: no awaited line within ${timeoutMs} ms:\n${this.transcript()}`));
      }, timeoutMs);
      const done = (line: string): void => {
        clearTimeout(timer);
        resolve(line);
      };
      this.waiters.push({ match, resolve: done, reject: (error) => { clearTimeout(timer); reject(error); } });
    });
  }

  /** JSON log records (pino lines) printed so far. */
  records(): Record<string, unknown>[] {
    return this.lines.map(parseRecord).filter((record): record is Record<string, unknown> => record !== undefined);
  }

  async waitForRecord(msg: string | RegExp, match: (record: Record<string, unknown>) => boolean = () => true, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const line = await this.waitForLine((text) => {
      const record = parseRecord(text);
      if (record === undefined || typeof record.msg !== 'string') return false;
      return (typeof msg === 'string' ? record.msg === msg : msg.test(record.msg)) && match(record);
    }, timeoutMs);
    return parseRecord(line)!;
  }

  /** Writes to the process's stdin (flows.mjs --hold / stream). */
  send(text: string): void {
    this.child.stdin?.write(text);
  }

  endInput(): void {
    this.child.stdin?.end();
  }

  /** Sends `signal` to the PID (never by name) and waits for the exit; SIGKILL after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running && this.pid > 0) {
      try {
        process.kill(this.pid, signal);
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        if (this.running) {
          try {
            process.kill(this.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }, graceMs);
      const result = await this.exited;
      clearTimeout(timer);
      return result;
    }
    return this.exited;
  }
}

function parseRecord(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** nft's JSON map listing reduced to slot → value text (`ADDR . PORT` for nat, `ADDR` for dsr). */
export type SlotMap = Map<number, string>;

function elementText(value: unknown): string {
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  if (typeof value === 'object' && value !== null) {
    const object = value as Record<string, unknown>;
    if (Array.isArray(object.concat)) return object.concat.map(elementText).join(' . ');
    if ('elem' in object) return elementText((object.elem as Record<string, unknown>).val);
    if ('prefix' in object) return JSON.stringify(object.prefix);
    // A verdict map's value: { goto: { target } } → `goto TARGET`, as nft prints it.
    for (const verdict of ['goto', 'jump']) {
      const target = (object[verdict] as { target?: unknown } | undefined)?.target;
      if (typeof target === 'string') return `${verdict} ${target}`;
    }
  }
  return JSON.stringify(value);
}

/** Parses `nft -j list map FAMILY TABLE NAME`: key text → value text, keys as nft prints them. */
export function parseNftMap(json: string): Map<string, string> {
  const parsed = JSON.parse(json) as { nftables?: Record<string, unknown>[] };
  const entries = new Map<string, string>();
  for (const item of parsed.nftables ?? []) {
    const map = item.map as { elem?: unknown[] } | undefined;
    if (!map) continue;
    for (const element of map.elem ?? []) {
      if (Array.isArray(element) && element.length === 2) entries.set(elementText(element[0]), elementText(element[1]));
    }
  }
  return entries;
}

/** A slot map from `nft -j list map` (keys are marks: numbers). */
export function parseSlotMap(json: string): SlotMap {
  const slots: SlotMap = new Map();
  for (const [key, value] of parseNftMap(json)) slots.set(Number(key), value);
  return slots;
}

/** The slots whose value differs between two maps (a slot present in one only counts). */
export function changedSlots(before: SlotMap, after: SlotMap): number[] {
  const keys = new Set([...before.keys(), ...after.keys()]);
  return [...keys].filter((slot) => before.get(slot) !== after.get(slot)).sort((a, b) => a - b);
}

/** One end of a veth pair: its namespace, device name, address (CIDR) and bridge. */
export interface LinkEnd {
  readonly ns: string;
  readonly dev: string;
  readonly address?: string;
  readonly master?: string;
}

export interface FlowResult {
  readonly sport: number;
  readonly backend?: string;
  readonly error?: string;
}

/** The nft identifier of a service name, as the DSR director and the NAT writer make it. */
export function nftId(name: string): string {
  return name.replace(/[^A-Za-z0-9_]/g, '_');
}

/**
 * One lab: the namespaces, processes and files it made, all removed by dispose(). Methods throw
 * with the command's output when a step fails.
 */
export class KernelLab {
  readonly dir: string;
  private readonly namespaces: string[] = [];
  private readonly processes: LabProcess[] = [];

  constructor(readonly label: string) {
    this.dir = mkdtempSync(join(tmpdir(), `l4n-${process.pid}-`));
  }

  /** Creates a namespace `l4n-<pid>-<n>` with lo up and the sysctls every role relies on set explicitly. */
  async namespace(role: string, options: { forward?: boolean; routeLocalnet?: boolean } = {}): Promise<string> {
    const name = `l4n-${process.pid}-${++namespaceCounter}`;
    await this.must('ip', ['netns', 'add', name], `namespace for ${role}`);
    this.namespaces.push(name);
    await this.must('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    // New namespaces do not reliably inherit the host's sysctls (LAB-NOTES): set what matters.
    const sysctls = [
      `net.ipv4.ip_forward=${options.forward ? 1 : 0}`,
      'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0',
      'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.default.send_redirects=0',
      'net.ipv4.conf.all.accept_redirects=0', 'net.ipv4.conf.default.accept_redirects=0',
    ];
    if (options.routeLocalnet) sysctls.push('net.ipv4.conf.all.route_localnet=1');
    await this.must('ip', ['netns', 'exec', name, 'sysctl', '-qw', ...sysctls]);
    return name;
  }

  /** A veth pair made directly inside the two namespaces, both ends up, with their addresses (CIDR). */
  async link(a: LinkEnd, b: LinkEnd): Promise<void> {
    await this.must('ip', ['link', 'add', a.dev, 'netns', a.ns, 'type', 'veth', 'peer', 'name', b.dev, 'netns', b.ns]);
    for (const end of [a, b]) {
      if (end.master !== undefined) await this.must('ip', ['-n', end.ns, 'link', 'set', end.dev, 'master', end.master]);
      if (end.address) await this.must('ip', ['-n', end.ns, 'addr', 'add', end.address, 'dev', end.dev]);
      await this.must('ip', ['-n', end.ns, 'link', 'set', end.dev, 'up']);
      await this.must('ip', ['netns', 'exec', end.ns, 'sysctl', '-qw', `net.ipv4.conf.${end.dev}.rp_filter=0`]);
    }
  }

  /** `ip -n NS ARGS…`. */
  ip(ns: string, ...args: string[]): Promise<RunResult> {
    return this.must('ip', ['-n', ns, ...args]);
  }

  /** Runs a command inside the namespace to its end (not checked: the caller reads status). */
  exec(ns: string, command: string, args: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
    return runCommand(IP, ['netns', 'exec', ns, command, ...args], options);
  }

  /** As exec, but throws with the output unless it exits 0. */
  async mustExec(ns: string, command: string, args: readonly string[], input?: string): Promise<RunResult> {
    const result = await this.exec(ns, command, args, { input });
    if (result.status !== 0) throw new Error(`in ${ns}: ${command} ${args.join(' ')} exited ${result.status ?? result.signal}:\n${result.stdout}${result.stderr}`);
    return result;
  }

  /** `nft -f -` with `ruleset` inside the namespace; throws on failure. */
  nftLoad(ns: string, ruleset: string): Promise<RunResult> {
    return this.mustExec(ns, 'nft', ['-f', '-'], ruleset);
  }

  /** The slot map of a kernel table in the namespace, or undefined when it (or its table) is absent. */
  async slotMap(ns: string, family: string, table: string, map: string): Promise<SlotMap | undefined> {
    const result = await this.exec(ns, 'nft', ['-j', 'list', 'map', family, table, map]);
    return result.status === 0 ? parseSlotMap(result.stdout) : undefined;
  }

  /** Any nft map as key → value texts, or undefined when absent. */
  async nftMap(ns: string, family: string, table: string, map: string): Promise<Map<string, string> | undefined> {
    const result = await this.exec(ns, 'nft', ['-j', 'list', 'map', family, table, map]);
    return result.status === 0 ? parseNftMap(result.stdout) : undefined;
  }

  /** The elements of an nft set as texts, or undefined when it (or its table) is absent. */
  async nftSet(ns: string, family: string, table: string, set: string): Promise<string[] | undefined> {
    const result = await this.exec(ns, 'nft', ['-j', 'list', 'set', family, table, set]);
    if (result.status !== 0) return undefined;
    const parsed = JSON.parse(result.stdout) as { nftables?: { set?: { elem?: unknown[] } }[] };
    return parsed.nftables?.flatMap((item) => item.set?.elem ?? []).map(elementText) ?? [];
  }

  /** `nft list table` text, or undefined when the table is absent. */
  async tableText(ns: string, family: string, table: string): Promise<string | undefined> {
    const result = await this.exec(ns, 'nft', ['list', 'table', family, table]);
    return result.status === 0 ? result.stdout : undefined;
  }

  /** Writes a file into the lab's temp directory; returns its path. */
  file(name: string, text: string): string {
    const path = join(this.dir, name);
    writeFileSync(path, text);
    return path;
  }

  /**
   * Starts a long-running command inside the namespace (`ip netns exec` execs it, so the PID is
   * the command's own) and records it for dispose().
   */
  start(ns: string, label: string, command: string, args: readonly string[], env?: NodeJS.ProcessEnv): LabProcess {
    const child = spawn(IP, ['netns', 'exec', ns, command, ...args], { cwd: REPO, env: env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.on('error', () => {});
    const started = new LabProcess(label, child);
    child.once('error', () => {});
    this.processes.push(started);
    return started;
  }

  /** lab/flows.mjs serve NAME PORT HOST in the namespace, once it accepts. */
  async serve(ns: string, name: string, port: number, host = '0.0.0.0'): Promise<LabProcess> {
    const server = this.start(ns, `backend ${name}`, process.execPath, [FLOWS, 'serve', name, String(port), host]);
    await server.waitForLine((line) => line === `listening ${port}`, 15_000);
    return server;
  }

  /** `node dist/cli.js run -c FILE ARGS…` inside the namespace (not waited on). */
  l4lb(ns: string, config: string, args: readonly string[] = [], env?: NodeJS.ProcessEnv): LabProcess {
    return this.start(ns, 'l4lb run', process.execPath, [CLI, 'run', '-c', config, ...args], env);
  }

  /** `node dist/cli.js ARGS…` inside the namespace, to its end. */
  cli(ns: string, args: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
    return this.exec(ns, process.execPath, [CLI, ...args], options);
  }

  /** lab/flows.mjs client (one-shot): the flows' results. */
  async flows(ns: string, vip: string, firstPort: number, count: number, options: { source?: string; parallel?: number } = {}): Promise<FlowResult[]> {
    const args = [FLOWS, 'client', '--vip', vip, '--first-port', String(firstPort), '--count', String(count), '--parallel', String(options.parallel ?? 32)];
    if (options.source) args.push('--source', options.source);
    const result = await this.exec(ns, process.execPath, args);
    if (result.status !== 0) throw new Error(`flows.mjs client exited ${result.status}:\n${result.stderr}`);
    return (JSON.parse(result.stdout.trim()) as { flows: FlowResult[] }).flows;
  }

  /** lab/flows.mjs client --hold: long-lived flows; `check()` asks each one who serves it now. */
  async hold(ns: string, vip: string, firstPort: number, count: number, source?: string): Promise<HeldFlows> {
    const args = [FLOWS, 'client', '--hold', '--vip', vip, '--first-port', String(firstPort), '--count', String(count)];
    if (source) args.push('--source', source);
    const held = this.start(ns, 'held flows', process.execPath, args);
    const line = await held.waitForLine((text) => text.includes('"event":"open"'), 60_000);
    return new HeldFlows(held, (JSON.parse(line) as { flows: FlowResult[] }).flows);
  }

  /** lab/flows.mjs stream: a continuous flow of new connections until stop(). */
  stream(ns: string, vip: string, firstPort: number, count: number, parallel = 4, source?: string): FlowStream {
    const args = [FLOWS, 'stream', '--vip', vip, '--first-port', String(firstPort), '--count', String(count), '--parallel', String(parallel)];
    if (source) args.push('--source', source);
    return new FlowStream(this.start(ns, 'flow stream', process.execPath, args));
  }

  /** Predictions of `l4lb route -c FILE -s SERVICE` for client keys `ADDR:PORT` (run in `ns`). */
  async route(ns: string, config: string, service: string, keys: readonly string[]): Promise<Map<string, string>> {
    const result = await this.cli(ns, ['route', '-c', config, '-s', service], { input: `${keys.join('\n')}\n` });
    if (result.status !== 0) throw new Error(`l4lb route -s ${service} exited ${result.status}: ${result.stderr.trim()}`);
    const answers = new Map<string, string>();
    for (const line of result.stdout.split('\n')) {
      const [key, backend] = line.split('\t');
      if (key && backend) answers.set(key, backend);
    }
    return answers;
  }

  private async must(command: string, args: readonly string[], what?: string): Promise<RunResult> {
    const result = await runCommand(command, args);
    if (result.status !== 0) throw new Error(`${what ? `${what}: ` : ''}${command} ${args.join(' ')} exited ${result.status ?? result.signal}: ${result.stderr.trim()}`);
    return result;
  }

  /**
   * Removes everything the lab made, whatever state the tests left it in: processes by PID
   * (SIGTERM, SIGKILL after 5 s), then each namespace (with its nft tables, veths and conntrack),
   * then the temp directory. Throws after trying everything if something could not be removed.
   */
  async dispose(): Promise<void> {
    const problems: string[] = [];
    await Promise.all(this.processes.map((started) => started.stop('SIGTERM', 5000)));
    for (const started of this.processes) if (started.running) problems.push(`${started.label} (pid ${started.pid}) still runs`);
    for (const ns of this.namespaces.reverse()) {
      const result = await runCommand('ip', ['netns', 'del', ns]);
      if (result.status !== 0) problems.push(`ip netns del ${ns}: ${result.stderr.trim()}`);
    }
    const left = (await runCommand('ip', ['netns', 'list'])).stdout
      .split('\n')
      .map((line) => line.split(' ')[0])
      .filter((name) => name !== undefined && this.namespaces.includes(name));
    if (left.length > 0) problems.push(`namespaces left: ${left.join(', ')}`);
    rmSync(this.dir, { recursive: true, force: true });
    if (problems.length > 0) throw new Error(`kernel lab ${this.label}: clean-up incomplete: ${problems.join('; ')}`);
  }
}

/** Long-lived flows held by one flows.mjs client --hold process. */
export class HeldFlows {
  constructor(
    readonly process: LabProcess,
    readonly opened: readonly FlowResult[],
  ) {}

  /** Asks every flow who serves it now (a line each way); a reset shows as error ECONNRESET. */
  async check(): Promise<FlowResult[]> {
    const seen = this.process.lines.length;
    this.process.send('check\n');
    const line = await this.process.waitForLine((text) => text.includes('"event":"check"'), 60_000, seen);
    return (JSON.parse(line) as { flows: FlowResult[] }).flows;
  }

  async close(): Promise<void> {
    this.process.endInput();
    await this.process.exited;
  }
}

/** A continuous flow of new connections (flows.mjs stream). */
export class FlowStream {
  constructor(readonly process: LabProcess) {}

  /** Results so far, each with the time (ms) its connect began. */
  results(): (FlowResult & { t: number })[] {
    return this.process.lines
      .filter((line) => line.startsWith('{"t"'))
      .map((line) => JSON.parse(line) as FlowResult & { t: number });
  }

  /** Waits until at least `count` more flows have been reported than now. */
  async advance(count: number): Promise<void> {
    const target = this.results().length + count;
    await waitUntil(`${count} more streamed flows`, () => (this.results().length >= target ? true : undefined), 60_000);
  }

  async stop(): Promise<(FlowResult & { t: number })[]> {
    this.process.endInput();
    await this.process.waitForLine((line) => line.includes('"event":"done"'), 30_000);
    await this.process.exited;
    return this.results();
  }
}
