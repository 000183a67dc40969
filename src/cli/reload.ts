/**
 * `l4lb reload -c FILE`: has the running l4lb re-read its configuration and says how it went, as
 * `systemctl reload` (ExecReload) and `haproxy -sf`/`nginx -s reload` users expect.
 *
 * Through the admin API (the `admin.listen` of FILE, or `--admin URL`): POST /reload runs the same
 * reload as SIGHUP, coalesced with it, and answers with that reload's outcome, so the exit code is
 * the reload's own. Chosen over SIGHUP and polling /stats: the answer belongs to this request
 * (no guessing which reload a poll saw when several are coalesced), it needs no permission to
 * signal the process and no shared PID namespace (containers), and it is token-protected like
 * every other change. The admin address is read from FILE even when the rest of FILE is invalid
 * (the running l4lb refuses it and says why).
 *
 * Without an admin API, `--pidfile FILE` (what `run --pidfile` writes): FILE is validated here, and
 * only a valid one is signalled with SIGHUP; the outcome of binding and resolving is then in the
 * running l4lb's log only.
 *
 * Exit codes: 0 reloaded (or signalled); 1 refused (every problem on stderr, one per line),
 * unreachable or stopping; 2 bad usage (no way to find the running l4lb, or it runs another file:
 * it only ever re-reads its own `-c`, so that is refused before anything is reloaded).
 */
import { readFile, realpath } from 'node:fs/promises';
import { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { ConfigError, formatEndpoint, loadConfig, parseDuration, type Config } from '../config/index.js';
import { LbError } from '../errors.js';
import { EXIT_FAILURE, EXIT_USAGE, fail, invalid } from './common.js';

interface ReloadOptions {
  config: string;
  admin?: string;
  token?: string;
  pidfile?: string;
  timeout: number;
}

export interface AdminPlace {
  readonly url: string;
  readonly token: string | undefined;
}

/**
 * `admin.listen` and `admin.token` of a file that may not validate: read as plain YAML/JSON, so a
 * broken service elsewhere in it does not hide where to send the reload.
 */
export async function adminOfInvalidFile(file: string): Promise<AdminPlace | undefined> {
  let document: unknown;
  try {
    document = parseYaml(await readFile(file, 'utf8'));
  } catch {
    return undefined;
  }
  const admin = (document as { admin?: { listen?: unknown; token?: unknown } } | null)?.admin;
  const listen = typeof admin?.listen === 'number' ? String(admin.listen) : admin?.listen;
  if (typeof listen !== 'string') return undefined;
  // A port alone (`9900`, `:9900`) listens on every address, loopback included.
  const where = /^:?\d+$/.test(listen) ? `127.0.0.1:${listen.replace(/^:/, '')}` : listen;
  return { url: `http://${where}`, token: typeof admin?.token === 'string' ? admin.token : undefined };
}

export function adminOf(config: Config): AdminPlace | undefined {
  return config.admin === undefined ? undefined : { url: `http://${formatEndpoint(config.admin.listen)}`, token: config.admin.token };
}

interface ReloadAnswer {
  reload?: { result: string; hash: string | null; at: string; problems: string[] };
  config?: { file: string; hash: string };
  error?: { code: string; message: string; problems?: string[] };
}

/** The admin API's base URL and request headers; a bad `--admin` ends the command (exit 2). */
export function adminRequest(place: AdminPlace, token: string | undefined): { base: URL; headers: Record<string, string> } {
  let base: URL;
  try {
    base = new URL(place.url);
  } catch {
    fail(new LbError('LB_ERR_INVALID_ARGUMENT', `--admin "${place.url}": expected a URL such as http://127.0.0.1:9900`), EXIT_USAGE);
  }
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return { base, headers };
}

/** A request that got no answer ends the command with why (exit 1). */
export function unreachable(error: unknown, base: URL, timeoutMs: number): never {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const why = (error as { name?: string }).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error)));
  fail(new LbError('LB_ERR_ADMIN', `cannot reach the admin API at ${base.origin}: ${why} (is l4lb running with admin.listen there?)`), EXIT_FAILURE);
}

/** The JSON of an admin answer; anything else ends the command (exit 1). */
export async function answerOf<T>(response: Response, base: URL): Promise<T> {
  try {
    return JSON.parse(await response.text()) as T;
  } catch {
    fail(new LbError('LB_ERR_ADMIN', `${base.origin} answered HTTP ${response.status} with something that is not the l4lb admin API`), EXIT_FAILURE);
  }
}

/** POST /reload; prints the outcome and exits with its code. */
async function reloadThroughAdmin(place: AdminPlace, token: string | undefined, file: string, timeoutMs: number): Promise<never> {
  const { base, headers } = adminRequest(place, token);
  let response: Response;
  try {
    // The running l4lb re-reads its own file: refuse, before asking, when that is not FILE.
    const stats = await fetch(new URL('/stats', base), { headers, signal: AbortSignal.timeout(timeoutMs) });
    const running = stats.ok ? ((await stats.json()) as { config?: { file?: string } }).config?.file : undefined;
    if (running !== undefined && (await realpath(running).catch(() => running)) !== (await realpath(file).catch(() => file))) {
      fail(new LbError('LB_ERR_INVALID_ARGUMENT', `the l4lb at ${base.origin} runs ${running}, not ${file}: it re-reads its own file (edit that one, or restart l4lb with -c ${file}); nothing was reloaded`), EXIT_USAGE);
    }
    response = await fetch(new URL('/reload', base), { method: 'POST', headers, signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    unreachable(error, base, timeoutMs);
  }
  const answer = await answerOf<ReloadAnswer>(response, base);
  if (response.ok && answer.reload !== undefined) {
    process.stdout.write(`reloaded ${answer.config?.file ?? file} (sha256 ${answer.reload.hash ?? '?'})\n`);
    process.exit(0);
  }
  if (response.status === 422) {
    const problems = answer.error?.problems ?? [];
    process.stderr.write(`l4lb: ${answer.error?.message ?? 'reload refused'}\n${problems.map((line) => `${line}\n`).join('')}`);
    process.exit(EXIT_FAILURE);
  }
  const message = answer.error?.message ?? `HTTP ${response.status}`;
  fail(new LbError('LB_ERR_ADMIN', response.status === 401 ? `the admin API at ${base.origin} refused the request: ${message} (see --token)` : message), EXIT_FAILURE);
}

/** Validates `file`, then SIGHUPs the PID in `pidfile`. */
async function reloadThroughPidfile(pidfile: string, file: string, problems: ConfigError | undefined): Promise<never> {
  if (problems !== undefined) {
    process.stderr.write(`l4lb: reload not sent: ${file} is invalid, the running l4lb would refuse it\n${problems.lines().join('\n')}\n`);
    process.exit(EXIT_FAILURE);
  }
  let text: string;
  try {
    text = await readFile(pidfile, 'utf8');
  } catch (error) {
    fail(new LbError('LB_ERR_ADMIN', `--pidfile ${pidfile}: cannot read it: ${(error as NodeJS.ErrnoException).code ?? String(error)} (is l4lb running with --pidfile there?)`), EXIT_FAILURE);
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) fail(new LbError('LB_ERR_ADMIN', `--pidfile ${pidfile}: holds no PID ("${text.trim().slice(0, 20)}")`), EXIT_FAILURE);
  try {
    process.kill(pid, 'SIGHUP');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    fail(new LbError('LB_ERR_ADMIN', `--pidfile ${pidfile}: cannot signal PID ${pid}: ${code === 'ESRCH' ? 'no such process (a stale pidfile?)' : (code ?? String(error))}`), EXIT_FAILURE);
  }
  process.stdout.write(`sent SIGHUP to l4lb (PID ${pid}) to reload ${file}; without an admin API its outcome is in its log only\n`);
  process.exit(0);
}

/**
 * Where the l4lb that runs `file` answers (`--admin URL` first, else the file's admin.listen),
 * and the file's problems if it is invalid (its admin.listen is then read as far as it parses).
 */
export async function locateRunning(file: string, admin: string | undefined): Promise<{ problems: ConfigError | undefined; place: AdminPlace | undefined }> {
  let config: Config | undefined;
  let problems: ConfigError | undefined;
  try {
    config = await loadConfig(file);
  } catch (error) {
    if (!(error instanceof ConfigError)) fail(error);
    problems = error;
  }
  const inFile = config !== undefined ? adminOf(config) : await adminOfInvalidFile(file);
  const place = admin !== undefined ? { url: admin, token: inFile?.token } : inFile;
  return { problems, place };
}

export function duration(text: string): number {
  const parsed = parseDuration(text);
  if (!parsed.ok) invalid(parsed.error);
  return parsed.value;
}

export function reloadCommand(): Command {
  return new Command('reload')
    .description('have the running l4lb re-read its configuration; exits 1 with every problem when it refuses the file')
    .requiredOption('-c, --config <file>', 'the configuration file (the running l4lb is found through its admin.listen)')
    .option('--admin <url>', 'admin API URL (default: admin.listen of -c FILE)')
    .option('--token <token>', 'bearer token (default: admin.token of -c FILE)')
    .option('--pidfile <file>', 'without an admin API: the pidfile `l4lb run --pidfile` wrote; FILE is checked here, then the PID gets SIGHUP')
    .option('--timeout <duration>', 'how long to wait for the outcome (resolving names, binding ports)', duration, 60_000)
    .action(async (options: ReloadOptions) => {
      const { problems, place } = await locateRunning(options.config, options.admin);
      if (place !== undefined) await reloadThroughAdmin(place, options.token ?? place.token, options.config, options.timeout);
      if (options.pidfile !== undefined) await reloadThroughPidfile(options.pidfile, options.config, problems);
      if (problems !== undefined) {
        process.stderr.write(`l4lb: reload not sent: ${options.config} is invalid and names no admin.listen\n${problems.lines().join('\n')}\n`);
        process.exit(EXIT_FAILURE);
      }
      fail(new LbError('LB_ERR_INVALID_ARGUMENT', `${options.config} has no admin.listen: give --admin URL, or --pidfile FILE of \`l4lb run --pidfile\``), EXIT_USAGE);
    });
}
