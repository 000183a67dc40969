/**
 * `l4lb status`, `l4lb drain|enable|maintenance SERVICE BACKEND`, and the runtime changes
 * `l4lb set-weight|add-backend|remove-backend`: clients of the admin API (src/admin/server.ts), as
 * `hatop`/`socat` are for HAProxy's runtime API. A runtime change lasts until the next reload of
 * the file (docs/operations.md).
 *
 * Where the API is: `--admin URL`, else the `admin.listen` of `-c FILE`, else
 * http://127.0.0.1:9900. The token: `--token`, else `--token-file`, else $L4LB_TOKEN, else the admin
 * token of `-c FILE` (`admin.token` or `admin.tokenFile`).
 * Exit codes: 0 done; 1 the API is unreachable or refused (one line saying which); 2 bad usage,
 * including a service or backend that does not exist (the line lists the valid names).
 */
import { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { formatEndpoint, loadConfig, tokenOfFileText } from '../config/index.js';
import { LbError } from '../errors.js';
import type { AdminState } from '../config/index.js';
import type { DrainStatus, ReloadRecord, RunningConfig } from '../observability/index.js';
import type { BackendStatusStats, ServiceStatusStats } from '../proxy/index.js';
import type { BackendChangeResult } from '../proxy/index.js';
import type { StateResult } from '../services/index.js';
import type { KernelServiceStats } from '../kernel/index.js';
import type { ListenerStats } from '../proxy/index.js';
import { EXIT_FAILURE, EXIT_USAGE, fail } from './common.js';

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9900';

interface AdminCliOptions {
  admin?: string;
  token?: string;
  tokenFile?: string;
  config?: string;
}

interface Target {
  readonly base: URL;
  readonly token: string | undefined;
}

/** The environment variable a token may come from: unlike --token, `ps` does not show it. */
export const TOKEN_ENV = 'L4LB_TOKEN';

/** A token file's content without its line end; LbError naming the file if it cannot be read or is empty. */
async function readTokenFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `--token-file "${file}": cannot read it (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  const token = tokenOfFileText(text);
  if (token === '') throw new LbError('LB_ERR_INVALID_ARGUMENT', `--token-file "${file}": the file is empty`);
  return token;
}

/**
 * `--admin` as a URL; `HOST:PORT`, `[v6]:PORT`, `:PORT` or `PORT` (as admin.listen is written)
 * mean http:// on that address, 127.0.0.1 when only a port is given.
 */
export function adminUrlOf(text: string): string {
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text)) return text;
  if (/^:?\d+$/.test(text)) return `http://127.0.0.1:${text.replace(/^:/, '')}`;
  return `http://${text}`;
}

/**
 * Resolves where the admin API is and which token to send. Throws LbError (usage) on a bad URL.
 * The token: `--token`, else `--token-file`, else $L4LB_TOKEN, else the admin token of `-c FILE`.
 */
export async function resolveTarget(options: AdminCliOptions, env: NodeJS.ProcessEnv = process.env): Promise<Target> {
  let url = options.admin === undefined ? undefined : adminUrlOf(options.admin);
  let token = options.token ?? (options.tokenFile === undefined ? undefined : await readTokenFile(options.tokenFile));
  if (token === undefined && env[TOKEN_ENV] !== undefined && env[TOKEN_ENV] !== '') token = env[TOKEN_ENV];
  if (options.config !== undefined) {
    const config = await loadConfig(options.config);
    if (url === undefined && config.admin !== undefined) url = `http://${formatEndpoint(config.admin.listen)}`;
    token ??= config.admin?.token;
  }
  url ??= DEFAULT_ADMIN_URL;
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `--admin "${options.admin ?? url}": expected an address such as 127.0.0.1:9900 or a URL such as ${DEFAULT_ADMIN_URL}`);
  }
  if (base.protocol !== 'http:') throw new LbError('LB_ERR_INVALID_ARGUMENT', `--admin "${url}": only http:// is supported`);
  return { base, token };
}

interface ApiError {
  error: { code: string; message: string; valid?: string[] };
}

/** Calls the API; on failure prints one line and exits (1 unreachable/refused, 2 unknown names or bad request). */
async function request<T>(target: Target, path: string, init: RequestInit = {}): Promise<T> {
  const url = new URL(path, target.base);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (target.token !== undefined) headers.authorization = `Bearer ${target.token}`;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(url, { ...init, headers, signal: AbortSignal.timeout(5000) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
    fail(new LbError('LB_ERR_ADMIN', `cannot reach the admin API at ${target.base.origin}: ${why} (is l4lb running with admin.listen there? see --admin)`), EXIT_FAILURE);
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    fail(new LbError('LB_ERR_ADMIN', `${target.base.origin} answered HTTP ${response.status} with something that is not the l4lb admin API`), EXIT_FAILURE);
  }
  if (response.ok) return body as T;
  const message = (body as ApiError).error?.message ?? `HTTP ${response.status}`;
  switch (response.status) {
    case 401:
      return fail(new LbError('LB_ERR_ADMIN', `the admin API at ${target.base.origin} refused the request: ${message} (see --token)`), EXIT_FAILURE);
    case 400:
    case 404:
      return fail(new LbError('LB_ERR_INVALID_ARGUMENT', message), EXIT_USAGE);
    default:
      fail(new LbError('LB_ERR_ADMIN', `the admin API answered HTTP ${response.status}: ${message}`), EXIT_FAILURE);
  }
}

function bytes(count: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, column) => {
      widths[column] = Math.max(widths[column] ?? 0, cell.length);
    });
  }
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ').trimEnd());
}

function healthCell(backend: BackendStatusStats): string {
  const ramp = backend.slowStart < 1 ? ` (slow start ${Math.round(backend.slowStart * 100)}%)` : '';
  return `${backend.health}${ramp}`;
}

function lastCheckCell(backend: BackendStatusStats): string {
  const check = backend.lastCheck;
  if (check === null) return backend.reason === 'not checked' ? '-' : backend.reason;
  return `${check.ok ? 'ok' : 'FAIL'} ${check.source === 'passive' ? '(passive) ' : ''}${check.detail} (${check.durationMs} ms)`;
}

/** What /stats says of the process besides its services (absent from an older l4lb). */
export interface ProcessStatus {
  readonly config?: RunningConfig;
  readonly lastReload?: ReloadRecord | null;
  readonly drain?: DrainStatus | null;
  /** Kernel services (mode: nat and dsr), read from nft when asked (absent when none run). */
  readonly kernel?: readonly KernelServiceStats[];
  /** TLS passthrough listeners with their inspection counts (absent when none run). */
  readonly listeners?: readonly ListenerStats[];
}

/**
 * The lines of passthrough listeners: clients being inspected now, then the inspections since
 * start by result and route taken (`sni → name` read a server name and routed by it, `not-tls →
 * default` took the default route, `→ none` were refused or left), most frequent first.
 */
function listenerLines(status: ProcessStatus): string[] {
  const lines: string[] = [];
  for (const listener of status.listeners ?? []) {
    const counts = [...listener.inspections].filter((entry) => entry.count > 0).sort((a, b) => b.count - a.count);
    const total = counts.reduce((sum, entry) => sum + entry.count, 0);
    lines.push(`${listener.owner}  listen ${formatEndpoint(listener.listen)}  TLS passthrough by SNI  inspecting ${listener.inspecting} now, ${total} inspected`);
    if (counts.length > 0) lines.push(`  ${counts.map((entry) => `${entry.result} → ${entry.route} ${entry.count}`).join(', ')}`);
    lines.push('');
  }
  return lines;
}

/**
 * The lines of kernel services: per backend its slots, and packets and bytes as nft counted them
 * (mode: nat) or the pinned flows that name it (mode: dsr, whose ruleset has no per-backend counters).
 */
function kernelLines(status: ProcessStatus): string[] {
  const lines: string[] = [];
  for (const service of status.kernel ?? []) {
    // An older l4lb's rows have no vip.
    const head = `${service.service}  ${service.mode} table ${service.table}${service.vip === undefined ? '' : `  vip ${service.vip}`}  ${service.slots} slots`;
    switch (service.mode) {
      case 'nat': {
        lines.push(`${head}${service.conntrack === undefined ? '' : `  flows ${service.conntrack}`}`);
        const rows = [['  BACKEND', 'ADDRESS', 'HEALTH', 'STATE', 'SLOTS', 'PACKETS', 'BYTES']];
        for (const backend of service.backends) {
          rows.push([`  ${backend.name}`, backend.address, backend.health, backend.state, String(backend.slots), String(backend.packets), bytes(backend.bytes)]);
        }
        lines.push(...table(rows), '');
        break;
      }
      case 'dsr': {
        lines.push(`${head}  pins ${service.pins ?? '-'}`);
        const rows = [['  BACKEND', 'ADDRESS', 'HEALTH', 'STATE', 'SLOTS', 'PINS']];
        for (const backend of service.backends) rows.push([`  ${backend.name}`, backend.address, backend.health, backend.state, String(backend.slots), String(backend.pins ?? '-')]);
        lines.push(...table(rows), '');
        break;
      }
      default: {
        const never: never = service;
        return never;
      }
    }
  }
  return lines;
}

/** The line above the services while stopping (none otherwise). */
function drainLines(status: ProcessStatus): string[] {
  const lines: string[] = [];
  const drain = status.drain;
  if (drain !== undefined && drain !== null) {
    lines.push(
      `STOPPING (${drain.signal} at ${drain.since}): no new connections; draining ${drain.connections} open connection${drain.connections === 1 ? '' : 's'}, ended at ${drain.deadline} (${Math.ceil(drain.remainingMs / 1000)} s left)`,
      '',
    );
  }
  return lines;
}

/** The lines below the services: the running configuration and the last reload. */
function configLines(status: ProcessStatus): string[] {
  const lines: string[] = [];
  if (status.config !== undefined) lines.push(`configuration ${status.config.file}  sha256 ${status.config.hash.slice(0, 12)}  loaded ${status.config.loadedAt}`);
  const reload = status.lastReload;
  if (reload !== undefined && reload !== null) {
    const why = reload.problems.length > 0 ? `: ${reload.problems.join('; ')}` : '';
    lines.push(`last reload ${reload.result} at ${reload.at} (${reload.trigger})${why}`);
  }
  if (lines.length > 0) lines.push('');
  return lines;
}

/** The `l4lb status` text for `services` (and the process's drain and reloads). Pure. */
export function formatStatus(services: readonly ServiceStatusStats[], status: ProcessStatus = {}): string {
  const lines: string[] = drainLines(status);
  for (const service of services) {
    const check = service.healthCheck;
    const checkText = check === null ? 'no health check' : `check ${check.type} every ${check.interval} ms, rise ${check.rise}, fall ${check.fall}`;
    lines.push(
      `${service.name}  listen ${formatEndpoint(service.listen)}  ${checkText}  connections ${service.current} now, ${service.total} total, ${service.queued} queued, ${service.refused} refused  bytes up ${bytes(service.bytesUp)}, down ${bytes(service.bytesDown)}`,
    );
    const rows = [['  BACKEND', 'ADDRESS', 'HEALTH', 'STATE', 'NOW', 'TOTAL', 'FAILED', 'UP', 'DOWN', 'LAST CHECK']];
    for (const backend of service.backends) {
      rows.push([
        `  ${backend.name}${backend.backup ? ' (backup)' : ''}`,
        backend.address,
        healthCell(backend),
        backend.state,
        String(backend.current),
        String(backend.total),
        String(backend.failures),
        bytes(backend.bytesUp),
        bytes(backend.bytesDown),
        lastCheckCell(backend),
      ]);
    }
    lines.push(...table(rows));
    for (const entry of service.dns ?? []) {
      const age = entry.lastSuccessAgeSeconds === null ? 'no good answer yet' : `last good answer ${entry.lastSuccessAgeSeconds} s ago`;
      lines.push(`  ${entry.entry}: ${entry.state}${entry.lastError === null ? '' : ` (${entry.lastError})`}, ${entry.backends.length} backend(s), ${age}`);
    }
    if (service.runtime !== undefined) {
      const { added, removed, weights } = service.runtime;
      const parts = [added.length > 0 ? `added ${added.join(', ')}` : '', removed.length > 0 ? `removed ${removed.join(', ')}` : '', ...Object.entries(weights).map(([name, weight]) => `${name} weight ${weight}`)];
      lines.push(`  runtime changes until the next reload: ${parts.filter((part) => part !== '').join('; ')}`);
    }
    lines.push('');
  }
  lines.push(...listenerLines(status));
  lines.push(...kernelLines(status));
  lines.push(...configLines(status));
  return lines.join('\n');
}

function withAdminOptions(command: Command): Command {
  return command
    .option('--admin <address>', `admin API address HOST:PORT or URL (default: admin.listen of -c FILE, else ${DEFAULT_ADMIN_URL})`)
    .option('--token <token>', `bearer token; visible to ps: prefer --token-file or $${TOKEN_ENV} (default: admin token of -c FILE)`)
    .option('--token-file <file>', 'read the bearer token from this file')
    .option('-c, --config <file>', 'configuration file to take the admin address and token from');
}

async function targetOrExit(options: AdminCliOptions): Promise<Target> {
  try {
    return await resolveTarget(options);
  } catch (error) {
    fail(error, EXIT_USAGE);
  }
}

function stateCommand(name: string, state: AdminState, description: string): Command {
  return withAdminOptions(new Command(name))
    .description(description)
    .argument('<service>', 'service name')
    .argument('<backend>', 'backend name')
    .action(async (service: string, backend: string, options: AdminCliOptions) => {
      const target = await targetOrExit(options);
      const path = `/services/${encodeURIComponent(service)}/backends/${encodeURIComponent(backend)}/state`;
      const result = await request<StateResult>(target, path, { method: 'POST', body: JSON.stringify({ state }) });
      process.stdout.write(`${result.service}/${result.backend}: ${result.previous} -> ${result.state}\n`);
    });
}

const percent = (share: number): string => `${(share * 100).toFixed(share > 0 && share < 0.001 ? 3 : 1)}%`;

/**
 * One runtime change's answer for a person: the change, then what moved, e.g.
 * `pg/b4 added: 13107 of 65537 slots moved (20.0%)` and one line per backend that gained or lost.
 */
export function formatChange(result: BackendChangeResult): string {
  const done = result.change === 'add' ? 'added' : result.change === 'remove' ? 'removed' : 'weight set';
  const { moves } = result;
  const lines = [
    moves.unit === 'weight'
      ? `${result.service}/${result.backend} ${done}: ${result.backends} backends; ${moves.balance} keeps no client on a backend, so none moved`
      : `${result.service}/${result.backend} ${done}: ${moves.moved} of ${moves.total} ${moves.unit === 'slots' ? 'slots' : 'sampled keys'} moved (${percent(moves.share)})`,
  ];
  for (const backend of moves.backends) {
    if (backend.gained === 0 && backend.lost === 0) continue;
    const change = [backend.gained > 0 ? `+${backend.gained}` : '', backend.lost > 0 ? `-${backend.lost}` : ''].filter((part) => part !== '').join(' ');
    lines.push(`  ${backend.name}: ${backend.before} -> ${backend.after} (${change})`);
  }
  return `${lines.join('\n')}\n`;
}

function changeCommand(name: string, description: string): Command {
  return withAdminOptions(new Command(name)).description(`${description}; lasts until the next reload of the file`);
}

const backendPath = (service: string, backend?: string): string =>
  `/services/${encodeURIComponent(service)}/backends${backend === undefined ? '' : `/${encodeURIComponent(backend)}`}`;

/** `set-weight`, `add-backend`, `remove-backend`: HAProxy's `set server weight`, `add server`, `del server`. */
function runtimeCommands(): Command[] {
  const setWeight = changeCommand('set-weight', "set a backend's weight (HAProxy: set server weight)")
    .argument('<service>', 'service name')
    .argument('<backend>', 'backend name (a discovered one is ADDRESS:PORT)')
    .argument('<weight>', 'a number > 0, at most 1000')
    .action(async (service: string, backend: string, weightText: string, options: AdminCliOptions) => {
      const weight = Number(weightText);
      if (weightText.trim() === '' || !Number.isFinite(weight)) fail(new LbError('LB_ERR_INVALID_ARGUMENT', `<weight>: expected a number, got "${weightText}"`), EXIT_USAGE);
      const target = await targetOrExit(options);
      const result = await request<BackendChangeResult>(target, `${backendPath(service, backend)}/weight`, { method: 'POST', body: JSON.stringify({ weight }) });
      process.stdout.write(formatChange(result));
    });
  const addBackend = changeCommand('add-backend', 'add a backend to a service (HAProxy: add server)')
    .argument('<service>', 'service name')
    .argument('<name>', 'the new backend\'s name')
    .argument('<address>', 'HOST:PORT (a host name is resolved once, now)')
    .option('--weight <weight>', 'weight, a number > 0 (default 1)')
    .option('--backup', 'serve only when no primary backend is usable')
    .option('--max-connections <n>', 'connections to it at most')
    .option('--slow-start <duration>', 'ramp its share up over this long when it becomes usable')
    .action(async (service: string, name: string, address: string, options: AdminCliOptions & { weight?: string; backup?: boolean; maxConnections?: string; slowStart?: string }) => {
      const body: Record<string, unknown> = { name, address };
      const number = (flag: string, text: string): number => {
        const value = Number(text);
        if (text.trim() === '' || !Number.isFinite(value)) fail(new LbError('LB_ERR_INVALID_ARGUMENT', `${flag}: expected a number, got "${text}"`), EXIT_USAGE);
        return value;
      };
      if (options.weight !== undefined) body.weight = number('--weight', options.weight);
      if (options.backup === true) body.backup = true;
      if (options.maxConnections !== undefined) body.maxConnections = number('--max-connections', options.maxConnections);
      if (options.slowStart !== undefined) body.slowStart = options.slowStart;
      const target = await targetOrExit(options);
      const result = await request<BackendChangeResult>(target, backendPath(service), { method: 'POST', body: JSON.stringify(body) });
      process.stdout.write(formatChange(result));
    });
  const removeBackend = changeCommand('remove-backend', 'remove a backend from a service (HAProxy: del server); its open connections continue')
    .argument('<service>', 'service name')
    .argument('<backend>', 'backend name (a discovered one is ADDRESS:PORT)')
    .action(async (service: string, backend: string, options: AdminCliOptions) => {
      const target = await targetOrExit(options);
      const result = await request<BackendChangeResult>(target, backendPath(service, backend), { method: 'DELETE' });
      process.stdout.write(formatChange(result));
    });
  return [setWeight, addBackend, removeBackend];
}

/** `status`, `drain`, `enable`, `maintenance`, and the runtime changes. */
export function adminCommands(): Command[] {
  const status = withAdminOptions(new Command('status'))
    .description('show services and backends: health, state, connections, bytes, last check')
    .option('--json', 'print the admin API\'s JSON as it is')
    .action(async (options: AdminCliOptions & { json?: boolean }) => {
      const target = await targetOrExit(options);
      const stats = await request<ProcessStatus & { services: ServiceStatusStats[] }>(target, '/stats');
      process.stdout.write(options.json === true ? `${JSON.stringify(stats, null, 2)}\n` : formatStatus(stats.services, stats));
    });
  return [
    status,
    stateCommand('drain', 'draining', 'stop sending new clients to a backend; open connections continue'),
    stateCommand('enable', 'active', 'make a backend active again (it still needs to be healthy to get traffic)'),
    stateCommand('maintenance', 'maintenance', 'take a backend out of service: no new clients'),
    ...runtimeCommands(),
  ];
}
