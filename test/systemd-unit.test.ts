/**
 * docs/l4lb.service is a unit systemd accepts and that drives l4lb as it works: `systemd-analyze
 * verify` finds no problem (when the machine has it), and, read with a small parser of the unit
 * file syntax (systemd.syntax(7)), its commands name l4lb subcommands and flags that exist, run and
 * reload share the configuration file and pidfile (in the RuntimeDirectory, and PIDFile= names it so
 * systemd follows the main PID after an upgrade), the stop gives the
 * default drain time and a margin, and the hardening and capabilities are set.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { checkCommand } from '../src/cli/check.js';
import { reloadCommand } from '../src/cli/reload.js';
import { runCommand } from '../src/cli/run.js';
import { DEFAULTS, parseDuration } from '../src/config/index.js';
import { CLI } from './helpers/child.js';

const UNIT = readFileSync(new URL('../docs/l4lb.service', import.meta.url), 'utf8');
const BINARY = '/usr/local/bin/l4lb';
const dir = mkdtempSync(join(tmpdir(), 'l4lb-systemd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Section → key → values (a key may repeat), as systemd reads a unit: comments, blank lines and `\` continuations. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const section = /^\[([^\]]+)\]$/.exec(line);
    if (section !== null) {
      current = new Map();
      sections.set(section[1], current);
      return;
    }
    const pair = /^([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*)$/.exec(line);
    if (pair === null || current === undefined) throw new Error(`line ${index + 1}: not a key=value inside a section: ${line}`);
    current.set(pair[1], [...(current.get(pair[1]) ?? []), pair[2]]);
  });
  return sections;
}

const unit = parseUnit(UNIT);
const service = unit.get('Service') ?? new Map<string, string[]>();
const one = (key: string): string => {
  const values = service.get(key) ?? [];
  if (values.length !== 1) throw new Error(`[Service] ${key}: expected one value, found ${values.length}`);
  return values[0];
};

/** The l4lb arguments of a command line, and its `-c`/`--pidfile` values. */
function l4lbCommand(key: string): { args: string[]; option(name: string): string | undefined } {
  const words = one(key).split(/\s+/);
  expect(words[0], `${key} runs ${BINARY}`).toBe(BINARY);
  const args = words.slice(1);
  return { args, option: (name) => args[args.indexOf(name) + 1] };
}

/** Every flag in `args` is one `command` declares. */
function expectFlagsExist(command: Command, args: string[]): void {
  const known = command.options.flatMap((option) => [option.short, option.long]).filter((flag): flag is string => flag !== undefined);
  for (const flag of args.filter((arg) => arg.startsWith('-'))) expect(known, `l4lb ${command.name()} has ${flag}`).toContain(flag);
}

describe('docs/l4lb.service', () => {
  it('starts with check then run, reloads through `l4lb reload`, with flags the CLI has and one file and pidfile', () => {
    const check = l4lbCommand('ExecStartPre');
    const run = l4lbCommand('ExecStart');
    const reload = l4lbCommand('ExecReload');
    expect(check.args[0]).toBe('check');
    expect(run.args[0]).toBe('run');
    expect(reload.args[0]).toBe('reload');
    expectFlagsExist(checkCommand(), check.args.slice(1));
    expectFlagsExist(runCommand(), run.args.slice(1));
    expectFlagsExist(reloadCommand(), reload.args.slice(1));
    expect(check.option('-c')).toBe(run.option('-c'));
    expect(reload.option('-c')).toBe(run.option('-c'));
    const pidfile = run.option('--pidfile');
    expect(pidfile).toBe(`/run/${one('RuntimeDirectory')}/l4lb.pid`);
    expect(reload.option('--pidfile')).toBe(pidfile);
    // After an upgrade the new l4lb writes it; systemd follows it to the new main PID.
    expect(one('PIDFile')).toBe(pidfile);
  });

  it('stops with SIGTERM and waits longer than the default drain; restarts on failure', () => {
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(one('KillMode')).toBe('mixed');
    const timeout = parseDuration(one('TimeoutStopSec'));
    if (!timeout.ok) throw new Error(timeout.error);
    expect(timeout.value).toBeGreaterThanOrEqual(DEFAULTS.timeouts.drain + 10_000);
    expect(one('Restart')).toBe('on-failure');
  });

  it('is hardened and holds only the capabilities for low ports and kernel services', () => {
    for (const [key, value] of [
      ['NoNewPrivileges', 'yes'],
      ['ProtectSystem', 'strict'],
      ['ProtectHome', 'yes'],
      ['PrivateTmp', 'yes'],
    ]) {
      expect(one(key), key).toBe(value);
    }
    for (const key of ['AmbientCapabilities', 'CapabilityBoundingSet']) expect(one(key).split(/\s+/).sort(), key).toEqual(['CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE']);
    expect(service.has('User') || service.get('DynamicUser')?.[0] === 'yes').toBe(true);
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target']);
  });

  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  it.skipIf(analyze.status !== 0)(`systemd-analyze verify finds nothing to say${analyze.status === 0 ? '' : ' (skipped: no systemd-analyze here; the checks above stand in)'}`, () => {
    // The binary must exist for verify: the built CLI stands in for the installed one.
    const file = join(dir, 'l4lb.service');
    writeFileSync(file, UNIT.replaceAll(BINARY, `${process.execPath} ${CLI}`));
    const verify = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
    expect(verify.stderr).toBe('');
    expect(verify.status).toBe(0);
  });
});
