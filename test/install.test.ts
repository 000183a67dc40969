/**
 * `npm install -g` gives a working `l4lb`: a copy of the checkout without dist/ is packed (the
 * `prepare` script must build dist/ into the tarball, bench programs left out), the tarball is
 * installed globally into a temporary prefix, and `<prefix>/bin/l4lb` answers `--version` with
 * package.json's version and `check -c` on a valid file. No network: dependencies are resolved by a
 * registry on loopback (test/helpers/npm-registry.ts) and taken from npm's cache.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalRegistry, type LocalRegistry } from './helpers/npm-registry.js';

const REPO = new URL('..', import.meta.url).pathname;
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const dir = mkdtempSync(join(tmpdir(), 'l4lb-install-'));
let registry: LocalRegistry | undefined;

afterAll(async () => {
  await registry?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The environment without the npm_config_* that `npm test` exports (a global prefix, say), keeping where the cache is. */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('npm_') || key === 'npm_config_cache' || key === 'npm_config_userconfig') env[key] = value;
  }
  return env;
}

function npm(args: string[], cwd: string): SpawnSyncReturns<string> {
  return spawnSync('npm', [...args, '--no-audit', '--no-fund', '--no-update-notifier'], { cwd, encoding: 'utf8', env: npmEnv(), timeout: 180_000 });
}

/** As npm() but without blocking this process: the registry it talks to runs in it. */
function npmAsync(args: string[], cwd: string): Promise<SpawnSyncReturns<string>> {
  return new Promise((resolve) => {
    const child = spawn('npm', [...args, '--no-audit', '--no-fund', '--no-update-notifier'], { cwd, env: npmEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', (error) => resolve({ pid: 0, output: [], stdout, stderr, status: null, signal: null, error }));
    child.once('close', (status, signal) => resolve({ pid: child.pid ?? 0, output: [], stdout, stderr, status, signal }));
  });
}

function explain(result: SpawnSyncReturns<string>): string {
  return `exit ${String(result.status)}${result.error === undefined ? '' : ` (${result.error.message})`}\n${result.stdout}\n${result.stderr}`;
}

describe('npm pack and npm install -g', () => {
  const checkout = join(dir, 'checkout');
  const prefix = join(dir, 'prefix');
  let tarball = '';
  let packed: string[] = [];

  beforeAll(() => {
    // A checkout as git leaves it: sources, no dist/; node_modules is the one `npm ci` made.
    mkdirSync(checkout);
    for (const name of ['package.json', 'package-lock.json', 'tsconfig.json', 'README.md', 'LICENSE', 'src']) cpSync(join(REPO, name), join(checkout, name), { recursive: true });
    symlinkSync(realpathSync(join(REPO, 'node_modules')), join(checkout, 'node_modules'));
    const pack = npm(['pack', '--json', '--pack-destination', dir], checkout);
    if (pack.status !== 0) throw new Error(`npm pack failed: ${explain(pack)}`);
    const report = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('[\n'))) as { filename: string; files: { path: string }[] }[];
    tarball = join(dir, report[0].filename);
    packed = report[0].files.map((file) => file.path);
  }, 240_000);

  it('packs dist/ (built by prepare) and leaves the benchmarks out', () => {
    expect(packed).toContain('dist/cli.js');
    expect(packed).toContain('package.json');
    expect(packed.filter((path) => path.startsWith('dist/bench/'))).toEqual([]);
    expect(packed.filter((path) => path.startsWith('src/') || path.startsWith('test/'))).toEqual([]);
    expect(readFileSync(join(checkout, 'dist', 'cli.js'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it('installs globally into a prefix: bin/l4lb runs --version and check', async () => {
    registry = await startLocalRegistry(join(REPO, 'package-lock.json'));
    const install = await npmAsync(['install', '--global', '--prefix', prefix, '--registry', registry.url, '--prefer-offline', tarball], dir);
    expect(install.status, `${explain(install)}\nnot found at the local registry: ${registry.misses.join(', ') || 'nothing'}`).toBe(0);

    const l4lb = join(prefix, 'bin', 'l4lb');
    const version = spawnSync(l4lb, ['--version'], { encoding: 'utf8' });
    expect(version.status, explain(version)).toBe(0);
    expect(version.stdout.trim()).toBe(VERSION);

    const file = join(dir, 'l4lb.yaml');
    writeFileSync(file, ['services:', '  - name: db', '    listen: 127.0.0.1:6432', '    backends:', '      - { name: pg1, address: 127.0.0.1:5432 }', ''].join('\n'));
    const check = spawnSync(l4lb, ['check', '-c', file], { encoding: 'utf8' });
    expect(check.status, explain(check)).toBe(0);
    expect(check.stdout).toMatch(/: OK, /);
  }, 120_000);
});
