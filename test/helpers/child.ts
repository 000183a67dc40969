/**
 * The built CLI as a child process: its stdout read line by line (JSON log lines parsed), waits on
 * lines and on exit, and a kill by PID for cleanup.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

export const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;

export interface CliChild {
  readonly child: ChildProcess;
  readonly lines: string[];
  stderr(): string;
  /** Resolves with the first stdout line (already seen or to come) that satisfies `match`. */
  waitForLine(match: (line: string) => boolean): Promise<string>;
  /** Resolves with the first JSON log record whose `msg` is `msg` (and that satisfies `match`). */
  waitForRecord(msg: string, match?: (record: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
  /** SIGKILLs the child by its PID if it still runs. */
  kill(): Promise<void>;
}

function parse(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** `nodeArgs` go to node before the script (`--import` of a loader hook, say). */
export function startCli(args: string[], nodeArgs: readonly string[] = []): CliChild {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `npm run build` (npm test does it first)');
  const child = spawn(process.execPath, [...nodeArgs, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let errors = '';
  let partial = '';
  const waiters: { match: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  child.stdout?.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i].match(line)) waiters.splice(i, 1)[0].resolve(line);
      }
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    errors += chunk.toString('utf8');
  });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const waitForLine = (match: (line: string) => boolean): Promise<string> => {
    const found = lines.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => waiters.push({ match, resolve }));
  };
  return {
    child,
    lines,
    stderr: () => errors,
    waitForLine,
    waitForRecord: async (msg, match = () => true) => {
      const line = await waitForLine((text) => {
        const record = parse(text);
        return record !== undefined && record.msg === msg && match(record);
      });
      return parse(line) as Record<string, unknown>;
    },
    exited,
    kill: async () => {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
      await exited;
    },
  };
}

/** What a finished `l4lb` command printed, and its exit code. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `l4lb ARGS` to its end. `env` is added to this process's environment, from which
 * L4LB_TOKEN is removed unless `env` gives it (so a developer's token never leaks into a test).
 */
export function runCli(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  const { L4LB_TOKEN: _inherited, ...inherited } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...inherited, ...env } }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}
