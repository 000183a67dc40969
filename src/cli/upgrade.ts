/**
 * `l4lb upgrade -c FILE`: has the running l4lb start a new l4lb from the files now on disk on its
 * listening sockets, and says how it went (src/runtime/handover.ts; nginx's `kill -USR2`, HAProxy's
 * `-x`/`-sf`). No connection is refused: the new one listens on the same sockets before the old
 * one stops accepting; the old one then drains its open connections and exits.
 *
 * Through the admin API (the `admin.listen` of FILE, or `--admin URL`): POST /upgrade answers once
 * the new l4lb is ready (with its PID) or has failed (with its problems: the old one serves on).
 * Without an admin API, `--pidfile FILE`: FILE is validated here, then the PID gets SIGUSR2 and
 * this command waits until the pidfile names another running process (the new l4lb writes it
 * before it reports ready); a failure is then in the running l4lb's log only.
 *
 * Exit codes: 0 upgraded; 1 failed (the running l4lb serves on), unreachable, or no new l4lb
 * within `--timeout`; 2 bad usage (no way to find the running l4lb).
 */
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import type { ConfigError } from '../config/index.js';
import { LbError } from '../errors.js';
import { EXIT_FAILURE, EXIT_USAGE, fail } from './common.js';
import { adminRequest, answerOf, duration, locateRunning, unreachable, type AdminPlace } from './reload.js';

interface UpgradeOptions {
  config: string;
  admin?: string;
  token?: string;
  pidfile?: string;
  timeout: number;
}

/** How often the pidfile is read while waiting for the new l4lb to write it. */
const PIDFILE_POLL_MS = 100;

interface UpgradeAnswer {
  upgrade?: { pid: number; previous: number; readyMs: number };
  error?: { code: string; message: string; problems?: string[] };
}

/** POST /upgrade; prints the outcome and exits with its code. */
async function upgradeThroughAdmin(place: AdminPlace, token: string | undefined, timeoutMs: number): Promise<never> {
  const { base, headers } = adminRequest(place, token);
  let response: Response;
  try {
    response = await fetch(new URL('/upgrade', base), { method: 'POST', headers, signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    unreachable(error, base, timeoutMs);
  }
  const answer = await answerOf<UpgradeAnswer>(response, base);
  if (response.ok && answer.upgrade !== undefined) {
    const { pid, previous, readyMs } = answer.upgrade;
    process.stdout.write(`upgraded: l4lb runs as PID ${pid}, ready in ${Math.round(readyMs)} ms; PID ${previous} drains its open connections and exits\n`);
    process.exit(0);
  }
  if (response.status === 404) fail(new LbError('LB_ERR_ADMIN', `the l4lb at ${base.origin} has no POST /upgrade (an older version: restart it once to get upgrades)`), EXIT_FAILURE);
  const problems = answer.error?.problems ?? [answer.error?.message ?? `HTTP ${response.status}`];
  const lines = response.status === 401 ? [`the admin API at ${base.origin} refused the request: ${problems[0]} (see --token)`] : problems;
  process.stderr.write(lines.map((line) => `l4lb: ${line}\n`).join(''));
  if (response.status === 422) process.stderr.write('l4lb: the running l4lb serves on\n');
  process.exit(EXIT_FAILURE);
}

/** The PID in `pidfile`, or undefined if it cannot be read or holds none. */
async function pidIn(pidfile: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(pidfile, 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Validates `file`, SIGUSR2s the PID in `pidfile`, then waits for the pidfile to name a new running l4lb. */
async function upgradeThroughPidfile(pidfile: string, file: string, problems: ConfigError | undefined, timeoutMs: number): Promise<never> {
  if (problems !== undefined) {
    process.stderr.write(`l4lb: upgrade not sent: ${file} is invalid, the new l4lb would refuse it\n${problems.lines().join('\n')}\n`);
    process.exit(EXIT_FAILURE);
  }
  const previous = await pidIn(pidfile);
  if (previous === undefined) fail(new LbError('LB_ERR_ADMIN', `--pidfile ${pidfile}: holds no PID (is l4lb running with --pidfile there?)`), EXIT_FAILURE);
  try {
    process.kill(previous, 'SIGUSR2');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    fail(new LbError('LB_ERR_ADMIN', `--pidfile ${pidfile}: cannot signal PID ${previous}: ${code === 'ESRCH' ? 'no such process (a stale pidfile?)' : (code ?? String(error))}`), EXIT_FAILURE);
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pid = await pidIn(pidfile);
    if (pid !== undefined && pid !== previous && running(pid)) {
      process.stdout.write(`upgraded: l4lb runs as PID ${pid}; PID ${previous} drains its open connections and exits\n`);
      process.exit(0);
    }
    if (Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, PIDFILE_POLL_MS));
  }
  fail(new LbError('LB_ERR_ADMIN', `sent SIGUSR2 to l4lb (PID ${previous}) but no new l4lb wrote ${pidfile} within ${timeoutMs} ms: its log says why (it serves on)`), EXIT_FAILURE);
}

export function upgradeCommand(): Command {
  return new Command('upgrade')
    .description('have the running l4lb start a new l4lb from the files on disk on its listening sockets, then drain; no connection is refused')
    .requiredOption('-c, --config <file>', 'the configuration file (the running l4lb is found through its admin.listen)')
    .option('--admin <url>', 'admin API URL (default: admin.listen of -c FILE)')
    .option('--token <token>', 'bearer token (default: admin.token of -c FILE)')
    .option('--pidfile <file>', 'without an admin API: the pidfile `l4lb run --pidfile` wrote; FILE is checked here, then the PID gets SIGUSR2')
    .option('--timeout <duration>', 'how long to wait for the new l4lb to be ready', duration, 70_000)
    .action(async (options: UpgradeOptions) => {
      const { problems, place } = await locateRunning(options.config, options.admin);
      if (place !== undefined) await upgradeThroughAdmin(place, options.token ?? place.token, options.timeout);
      if (options.pidfile !== undefined) await upgradeThroughPidfile(options.pidfile, options.config, problems, options.timeout);
      fail(new LbError('LB_ERR_INVALID_ARGUMENT', `${options.config} has no admin.listen: give --admin URL, or --pidfile FILE of \`l4lb run --pidfile\``), EXIT_USAGE);
    });
}
