/**
 * docs/examples/*.yaml, the commented files an operator starts from, pass `l4lb check --no-resolve`
 * (their host names and token file belong to the hosts they would run on), and say so.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI } from './helpers/child.js';

const EXAMPLES = new URL('../docs/examples/', import.meta.url).pathname;
const { L4LB_ADMIN_TOKEN: _ignored, ...inherited } = process.env;

function check(file: string, env: Record<string, string>) {
  return spawnSync(process.execPath, [CLI, 'check', '--no-resolve', '-c', `${EXAMPLES}${file}`], { encoding: 'utf8', env: { ...inherited, ...env } });
}

describe('docs/examples', () => {
  it('holds the PostgreSQL, Redis and DSR examples', () => {
    expect(readdirSync(EXAMPLES).sort()).toEqual(['dsr.yaml', 'postgres.yaml', 'redis.yaml']);
  });

  it.each([
    ['postgres.yaml', /OK, 1 service \(postgres: maglev over 4 backends on 0\.0\.0\.0:6432\), admin on 127\.0\.0\.1:9900; admin\.tokenFile not read/],
    ['redis.yaml', /OK, 1 service \(redis: leastconn over 3 backends on \[::\]:6379\), admin on 0\.0\.0\.0:9900\n$/],
    ['dsr.yaml', /OK, 1 service \(web: dsr maglev over 3 backends on VIP 192\.0\.2\.10:80 dscp 10\)\n$/],
  ])('l4lb check --no-resolve accepts %s', (file, summary) => {
    const result = check(file, { L4LB_ADMIN_TOKEN: 'example-token-0123456789' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(summary);
  });

  it('redis.yaml without its token in the environment: one line naming the variable', () => {
    const result = check('redis.yaml', {});
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/redis\.yaml: admin\.token: \$\{L4LB_ADMIN_TOKEN\} is not set in the environment \(set it, or give a default: \$\{L4LB_ADMIN_TOKEN:-VALUE\}\)\n$/);
  });
});

/**
 * Every configuration block of README.md and docs/ (```yaml, ```yml, ```json) passes `l4lb check`.
 * A complete file is checked as it is; a fragment (top-level keys, or keys of a service, a backend
 * list…) is checked in place in the smallest file around it, so an example cannot name a key that
 * does not exist or a value the key refuses. A block preceded by `<!-- invalid: TEXT -->` must be
 * refused with TEXT in the message; `<!-- not-config -->` marks blocks that are not configuration
 * (a log line, a metrics scrape). A shell block preceded by `<!-- runnable -->` is run from the
 * repository root and must exit 0.
 */

/** A `check` process starts Node and loads l4lb: a few hundred ms alone, more beside other test files. */
const CHECK_TIMEOUT = 30_000;
const REPO = new URL('../', import.meta.url).pathname;

/** A process's exit status and output; never rejects. */
function runFile(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', env }, (error, stdout, stderr) => {
      resolve({ status: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr });
    });
  });
}

interface Block {
  readonly where: string;
  readonly lang: string;
  readonly text: string;
  readonly marker: { kind: 'invalid'; expect: string } | { kind: 'not-config' } | { kind: 'runnable' } | undefined;
}

function markdownFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}${entry.name}`;
    if (entry.isDirectory()) return entry.name === 'examples' ? [] : markdownFiles(`${path}/`);
    return entry.name.endsWith('.md') ? [path] : [];
  });
}

function blocksOf(file: string): Block[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w+)\s*$/.exec(lines[i]);
    if (open === null) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i].startsWith('```'); i++) body.push(lines[i]);
    let marker: Block['marker'];
    for (let back = start - 1; back >= 0 && back >= start - 2; back--) {
      const line = lines[back].trim();
      const invalid = /^<!-- invalid: (.+) -->$/.exec(line);
      if (invalid !== null) marker = { kind: 'invalid', expect: invalid[1] };
      else if (line === '<!-- not-config -->') marker = { kind: 'not-config' };
      else if (line === '<!-- runnable -->') marker = { kind: 'runnable' };
      if (marker !== undefined || line !== '') break;
    }
    blocks.push({ where: `${file.slice(REPO.length)}:${start + 1}`, lang: open[1], text: body.join('\n'), marker });
  }
  return blocks;
}

const DOC_FILES = [`${REPO}README.md`, ...markdownFiles(`${REPO}docs/`)];
const BLOCKS = DOC_FILES.flatMap(blocksOf);
const CONFIG_BLOCKS = BLOCKS.filter((block) => ['yaml', 'yml', 'json'].includes(block.lang) && block.marker?.kind !== 'not-config');
const RUNNABLE = BLOCKS.filter((block) => block.marker?.kind === 'runnable');

const TOP_LEVEL = new Set(['admin', 'workers', 'log', 'accessLog', 'resolvers', 'listeners', 'services']);
const DSR_ONLY = new Set(['vip', 'dscp']);
const NAT_ONLY = new Set(['snat']);
const backend = { name: 'doc-b1', address: '127.0.0.1:15432' };

/** The services a fragment's `listeners` routes name (a route's service must exist), each with one backend and no listen. */
function routedServices(listeners: unknown): { name: string; backends: (typeof backend)[] }[] {
  const names = new Set<string>();
  for (const listener of Array.isArray(listeners) ? (listeners as unknown[]) : []) {
    const routes = typeof listener === 'object' && listener !== null ? (listener as { routes?: unknown }).routes : undefined;
    for (const route of Array.isArray(routes) ? (routes as unknown[]) : []) {
      if (typeof route !== 'object' || route === null) continue;
      const { service, default: fallback } = route as { service?: unknown; default?: unknown };
      for (const name of [service, fallback]) if (typeof name === 'string' && name !== 'doc-service') names.add(name);
    }
  }
  return [...names].map((name) => ({ name, backends: [backend] }));
}

/** The smallest whole configuration around a block's value. */
function wholeFile(fragment: unknown): unknown {
  // A listener's routes alone: inside a listener of their own.
  const value = typeof fragment === 'object' && fragment !== null && !Array.isArray(fragment) && Object.keys(fragment).join() === 'routes' ? { listeners: [{ listen: '127.0.0.1:15443', ...fragment }] } : fragment;
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
  if (Array.isArray(value)) return { services: value };
  if (!isObject) return value;
  const keys = Object.keys(value);
  if ('services' in value) return value;
  if (keys.every((key) => TOP_LEVEL.has(key))) return { ...value, services: [{ name: 'doc-service', listen: '127.0.0.1:15000', backends: [backend] }, ...routedServices((value as { listeners?: unknown }).listeners)] };
  if (keys.some((key) => NAT_ONLY.has(key))) return { services: [{ name: 'doc-nat', mode: 'nat', vip: '192.0.2.1:80', tableSize: 13, backends: [{ name: 'n1', address: '192.0.2.11:8080' }], ...value }] };
  if (keys.some((key) => DSR_ONLY.has(key))) return { services: [{ name: 'doc-dsr', mode: 'dsr', vip: '192.0.2.1:80', dscp: 9, tableSize: 13, backends: [{ name: 'd1', address: '192.0.2.11' }], ...value }] };
  return { services: [{ name: 'doc-service', listen: '127.0.0.1:15000', backends: [backend], ...value }] };
}

describe('configuration blocks in README.md and docs/', () => {
  const scratch = mkdtempSync(`${tmpdir()}/l4lb-doc-blocks-`);
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('finds the blocks (the scan itself works)', () => {
    expect(CONFIG_BLOCKS.length).toBeGreaterThan(10);
    expect(CONFIG_BLOCKS.some((block) => block.where.startsWith('README.md'))).toBe(true);
  });

  // Concurrent: each check is a process of its own, and most of its time is Node's start-up.
  it.concurrent.each(CONFIG_BLOCKS.map((block) => [block.where, block] as const))('%s', async (where, block) => {
    const value: unknown = block.lang === 'json' ? JSON.parse(block.text) : parseYaml(block.text);
    const file = `${scratch}/${where.replace(/[/:]/g, '_')}.json`;
    writeFileSync(file, JSON.stringify(wholeFile(value)));
    const result = await runFile(process.execPath, [CLI, 'check', '--no-resolve', '-c', file], { ...inherited, L4LB_ADMIN_TOKEN: 'example-token-0123456789' });
    if (block.marker?.kind === 'invalid') {
      expect(result.status, result.stdout).toBe(1);
      expect(result.stderr).toContain(block.marker.expect);
    } else {
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
    }
  }, CHECK_TIMEOUT);
});

describe('shell blocks marked runnable', () => {
  it('finds some', () => {
    expect(RUNNABLE.length).toBeGreaterThan(0);
  });

  it.each(RUNNABLE.map((block) => [block.where, block] as const))('%s exits 0', (_where, block) => {
    // No BASH_ENV, no rc files: the block runs as written, whatever the shell that started the tests.
    const { BASH_ENV: _bashEnv, ...env } = process.env;
    const result = spawnSync('bash', ['--noprofile', '--norc', '-euo', 'pipefail', '-c', block.text.replace(/^l4lb /gm, 'node dist/cli.js ')], { cwd: REPO, encoding: 'utf8', env, timeout: 60_000 });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});
