/**
 * The processes a benchmark run starts, and the promise that it stops every one of them by PID:
 * on success, on a thrown error, on Ctrl-C (SIGINT/SIGTERM) and, as a last resort, synchronously in
 * the process 'exit' handler. Nothing here kills by name.
 *
 * Children are started under `prlimit --nofile=H:H`, H the hard limit of this process (util-linux
 * execs the command, so the PID we hold is the program's own): a proxy holding 10,000 spliced
 * connections needs 20,000+ descriptors. Raising the hard limit itself needs CAP_SYS_RESOURCE, which
 * a container may not grant; `descriptorLimit()` says what is available. A group given a namespace's
 * wrapper starts each child as `ip netns exec NS prlimit … -- command`; `ip` execs too.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { CommandWrapper } from './netns.js';

let hardLimit: number | undefined;

/** The hard RLIMIT_NOFILE of this process (children get it as their soft limit too). */
export function descriptorLimit(): number {
  if (hardLimit === undefined) {
    const text = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim();
    hardLimit = text === 'unlimited' ? 1048576 : Number(text) || 1024;
  }
  return hardLimit;
}

export interface Started {
  readonly label: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Path of the file that holds the child's stderr (and stdout unless it was piped). */
  readonly logPath: string;
}

export interface StartOptions {
  /** Keep stdout as a pipe readable on `child.stdout` instead of sending it to the log file. */
  pipeStdout?: boolean;
  /** Keep stdin as a pipe. */
  pipeStdin?: boolean;
  cwd?: string;
}

/** What failed, with the last lines the child wrote: enough to see why without a stack trace. */
export class BenchError extends Error {
  override readonly name: string = 'BenchError';
}

/** iperf3's server serves one test at a time and says so for a moment after one: try again. */
export class Iperf3Busy extends BenchError {
  override readonly name = 'Iperf3Busy';
}

/** Where the group's children run: a namespace's wrapper and its port probe (absent: this namespace). */
export interface GroupPlace {
  readonly wrap?: CommandWrapper;
  readonly probe?: (port: number) => Promise<boolean>;
}

export class ProcessGroup {
  readonly dir: string;
  private readonly place: GroupPlace;
  private readonly running = new Map<number, Started>();
  /** Adopted PIDs with their start time (field 22 of /proc/PID/stat), so a reused PID is never hit. */
  private readonly extraPids = new Map<number, string>();
  private removed = false;
  private readonly onExit = (): void => this.killAllNow();

  constructor(place: GroupPlace = {}) {
    this.place = place;
    this.dir = mkdtempSync(join(tmpdir(), 'l4lb-bench-'));
    process.on('exit', this.onExit);
  }

  /** Starts `command args` with a raised descriptor limit; its stderr goes to `<dir>/<label>.log`. */
  start(label: string, command: string, args: readonly string[], options: StartOptions = {}): Started {
    const logPath = join(this.dir, `${label}.log`);
    const logFd = openSync(logPath, 'a');
    let child: ChildProcess;
    try {
      const limited = [`--nofile=${descriptorLimit()}:${descriptorLimit()}`, '--', command, ...args];
      const argv = this.place.wrap?.('prlimit', limited) ?? { command: 'prlimit', args: limited };
      child = spawn(argv.command, argv.args, {
        cwd: options.cwd ?? this.dir,
        stdio: [options.pipeStdin ? 'pipe' : 'ignore', options.pipeStdout ? 'pipe' : logFd, logFd],
      });
    } finally {
      closeSync(logFd);
    }
    if (child.pid === undefined) throw new BenchError(`${label}: could not start ${command}`);
    const started: Started = { label, child, pid: child.pid, logPath };
    this.running.set(child.pid, started);
    child.once('exit', () => this.running.delete(started.pid));
    return started;
  }

  /** Also stop this PID at the end (a worker process a started master forked). */
  adopt(pid: number): void {
    const started = startTime(pid);
    if (started !== undefined) this.extraPids.set(pid, started);
  }

  /** Whether 127.0.0.1:port accepts a connection where the group's children run. */
  probe(port: number): Promise<boolean> {
    if (this.place.probe) return this.place.probe(port);
    return new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
  }

  isRunning(started: Started): boolean {
    return this.running.has(started.pid);
  }

  tail(started: Started, lines = 8): string {
    try {
      return readFileSync(started.logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. */
  async stop(started: Started, graceMs = 3000): Promise<void> {
    if (!this.running.has(started.pid)) return;
    const exited = new Promise<void>((resolve) => {
      if (started.child.exitCode !== null || started.child.signalCode !== null) resolve();
      else started.child.once('exit', () => resolve());
    });
    signal(started.pid, 'SIGTERM');
    const timer = setTimeout(() => signal(started.pid, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Stops every child still running (in reverse start order), adopted PIDs, then removes the temp dir. */
  async stopAll(): Promise<void> {
    const all = [...this.running.values()].reverse();
    await Promise.all(all.map((started) => this.stop(started)));
    this.killAdopted();
    this.removeDir();
  }

  /** Synchronous last resort for the 'exit' event: SIGKILL by PID, remove the temp dir. */
  killAllNow(): void {
    for (const pid of this.running.keys()) signal(pid, 'SIGKILL');
    this.running.clear();
    this.killAdopted();
    this.removeDir();
  }

  private killAdopted(): void {
    for (const [pid, started] of this.extraPids) {
      if (startTime(pid) === started) signal(pid, 'SIGKILL');
    }
    this.extraPids.clear();
  }

  dispose(): void {
    process.off('exit', this.onExit);
  }

  private removeDir(): void {
    if (this.removed) return;
    this.removed = true;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

/**
 * A free TCP port on 127.0.0.1 below the ephemeral range (so no outgoing connection of another
 * program can take it between our check and the child's bind).
 */
export async function freePort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (taken.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
    });
    if (free) {
      taken.add(port);
      return port;
    }
  }
  throw new BenchError('no free port found in 20000-31999 on 127.0.0.1');
}

/** Polls until `port` accepts a connection; fails early with the child's log if it exits first. */
export async function waitForPort(group: ProcessGroup, started: Started, port: number, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!group.isRunning(started)) {
      throw new BenchError(`${started.label} exited before listening on ${port}:\n${group.tail(started)}`);
    }
    if (await group.probe(port)) return;
    await delay(50);
  }
  throw new BenchError(`${started.label} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms:\n${group.tail(started)}`);
}

/** Runs a program to completion and returns its stdout; a non-zero exit is an error with its stderr. */
export function runToEnd(group: ProcessGroup, label: string, command: string, args: readonly string[]): Promise<string> {
  const started = group.start(label, command, args, { pipeStdout: true });
  const chunks: Buffer[] = [];
  started.child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve, reject) => {
    started.child.once('error', (error) => reject(new BenchError(`${label}: ${error.message}`)));
    started.child.once('close', (code, sig) => {
      const out = Buffer.concat(chunks).toString('utf8');
      if (code === 0) resolve(out);
      else reject(new BenchError(`${label} failed (${sig ?? `exit ${code}`}):\n${group.tail(started)}\n${out.slice(-2000)}`));
    });
  });
}

/**
 * Runs a benchmark program's `main` and exits with its code. A BenchError or a bad argument is one
 * line naming `name`; anything else is an internal error with its stack.
 */
export function runBenchMain(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      const message = error instanceof BenchError || (error instanceof Error && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))
        ? error.message
        : error instanceof Error ? `internal error: ${error.stack ?? error.message}` : String(error);
      process.stderr.write(`${name}: ${message}\n`);
      process.exit(1);
    },
  );
}
