/**
 * Statements in the docs that were once wrong, each pinned to what the program does, plus the
 * general rules that would have caught them:
 * - an inline `key: value` in the docs names a configuration key that exists (docs/health.md once
 *   told readers to write `expectStatus:`, a key `check` refuses);
 * - the access log's fields are the ones docs/proxy.md lists, and `backend` on a connect-failed
 *   line is the last backend tried, as the page now says (it once said null);
 * - "is there an admin listener by default?" has one answer: none without an `admin` key;
 * - `l4lb check` refuses a DSR tableSize that `dsr render` refuses, in the same words (it once
 *   accepted 262147);
 * - a configuration example stays valid under every edit its own comments suggest
 *   (`balance: maglev  # maglev | ring | rendezvous` is checked with each of the three).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { startBalancer } from '../src/proxy/index.js';
import { schemaKeys } from '../src/reference/index.js';
import { CLI } from './helpers/child.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog } from './helpers/log.js';
import { closed, connectClient, freePort, readAll, startNamedServer } from './helpers/net.js';

/** A `check` process starts Node and loads l4lb: a few hundred ms alone, more beside other test files. */
const CHECK_TIMEOUT = 30_000;
const REPO = new URL('..', import.meta.url).pathname;

function markdownFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}${entry.name}`;
    if (entry.isDirectory()) return markdownFiles(`${path}/`);
    return entry.name.endsWith('.md') ? [path] : [];
  });
}
const DOCS = [`${REPO}README.md`, ...markdownFiles(`${REPO}docs/`)];
const read = (file: string): string => readFileSync(file, 'utf8');

/**
 * Words written as `word: value` in the docs that are not configuration keys: fields of log lines
 * and /stats answers, and JavaScript options named in the architecture notes.
 */
const NOT_CONFIG = new Set(['end', 'worker', 'stopping', 'source', 'serialization', 'msg', 'error', 'draining', 'client', 'state', 'health', 'level', 'time', 'reason', 'result', 'backend', 'service', 'code', 'signal', 'runtime', 'upgrade', 'dns']);

describe('inline configuration in the docs', () => {
  const keys = new Set(schemaKeys().map((key) => key.path.split('.').at(-1) ?? ''));

  it('every `key: value` names a configuration key (or a listed log/stats field)', () => {
    const unknown: string[] = [];
    for (const file of DOCS) {
      for (const match of read(file).matchAll(/`([a-z][A-Za-z]*): [^`\n]*`/g)) {
        const word = match[1] ?? '';
        if (!keys.has(word) && !NOT_CONFIG.has(word)) unknown.push(`${file.slice(REPO.length)}: ${match[0]}`);
      }
    }
    expect(unknown).toEqual([]);
  });
});

describe('the access log, as docs/proxy.md describes it', () => {
  const page = read(`${REPO}docs/proxy.md`);
  const section = page.slice(page.indexOf('## The access log'));
  const documented = [...section.slice(0, section.indexOf('| `end` | meaning |')).matchAll(/^\| ((?:`\w+`(?:, )?)+) \|/gm)].flatMap((row) =>
    [...(row[1] ?? '').matchAll(/`(\w+)`/g)].map((field) => field[1]),
  );

  it('lists the fields a line carries, and a connect-failed line names the last backend tried', async () => {
    const server = await startNamedServer('up');
    const dead = await freePort();
    const log = captureLog();
    const balancer = await startBalancer(configOf(proxyService([backend('up', server.port)], { name: 'good' }), proxyService([backend('gone', dead)], { name: 'bad', retries: 0 })), {
      logger: log.logger,
    });
    try {
      const served = await connectClient(balancer.address('good').port);
      served.end('x');
      await readAll(served);
      const refused = await connectClient(balancer.address('bad').port);
      refused.end();
      await closed(refused);
      const records = await log.waitForAccess(2);
      const byService = new Map(records.map((record) => [record.service, record]));
      const failed = byService.get('bad');
      expect(failed).toMatchObject({ end: 'connect-failed', backend: 'gone', connectMs: -1 });
      expect(byService.get('good')).toMatchObject({ end: 'client-close', backend: 'up' });
      expect((byService.get('good')?.connectMs as number) >= 0).toBe(true);
      const fields = new Set(records.flatMap((record) => Object.keys(record)));
      for (const pino of ['level', 'time', 'msg', 'pid', 'hostname']) fields.delete(pino);
      expect([...fields].filter((field) => !documented.includes(field))).toEqual([]);
    } finally {
      await balancer.close(0);
      await server.close();
    }
    const row = /^\| `backend`, `backendAddress` \| (.+) \|$/m.exec(section)?.[1] ?? '';
    expect(row).toMatch(/last backend tried/);
    expect(row).not.toMatch(/null if none (did|served)/);
  });
});

describe('the admin listener default', () => {
  it('is stated once: no admin key, no admin listener; no page says loopback by default', () => {
    const reference = read(`${REPO}docs/reference/configuration.md`);
    expect(reference).toMatch(/Without this key there is no admin listener at all/);
    const contradictions = DOCS.filter((file) => /admin[^.\n]*loopback by default|loopback by default[^.\n]*admin/i.test(read(file))).map((file) => file.slice(REPO.length));
    expect(contradictions).toEqual([]);
  });
});

describe('configuration examples under the edits their comments suggest', () => {
  const scratch = mkdtempSync(`${tmpdir()}/l4lb-doc-alternatives-`);
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  /** Each YAML block with `key: value  # a | b | c`, once per alternative written in place. */
  const variants: [string, string][] = [];
  for (const file of DOCS) {
    const text = read(file);
    for (const block of text.matchAll(/```ya?ml\n([\s\S]*?)```/g)) {
      const body = block[1] ?? '';
      const lines = body.split('\n');
      lines.forEach((line, index) => {
        const match = /^(\s*-?\s*)(\w+): (\S+)(\s+)# ((?:[\w.-]+ \| )+[\w.-]+)(?::|$|\s)/.exec(line);
        if (match === null) return;
        for (const alternative of (match[5] ?? '').split(' | ')) {
          const edited = [...lines];
          edited[index] = `${match[1]}${match[2]}: ${alternative}`;
          variants.push([`${file.slice(REPO.length)}: ${match[2]}: ${alternative}`, edited.join('\n')]);
        }
      });
    }
  }

  it('finds the README example and its alternatives', () => {
    expect(variants.map(([name]) => name)).toEqual(expect.arrayContaining(['README.md: balance: roundrobin', 'README.md: balance: rendezvous']));
  });

  it.concurrent.each(variants)('%s passes check', async (name, text) => {
    const file = `${scratch}/${name.replace(/[^\w.-]+/g, '_')}.yaml`;
    writeFileSync(file, text);
    const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, 'check', '--no-resolve', '-c', file], { encoding: 'utf8' }, (error, _stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stderr }),
      );
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  }, CHECK_TIMEOUT);
});

describe('check refuses what dsr render refuses, in the same words', () => {
  const scratch = mkdtempSync(`${tmpdir()}/l4lb-doc-dsr-`);
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('a DSR tableSize of 262147 (a prime over the nft limit): check and dsr render both refuse it', async () => {
    const file = `${scratch}/big.yaml`;
    writeFileSync(file, 'services:\n  - { name: web, mode: dsr, vip: 192.0.2.10:80, dscp: 10, tableSize: 262147, backends: [{ name: a, address: 192.0.2.11 }] }\n');
    const run = (args: string[]) =>
      new Promise<{ code: number; stderr: string }>((resolve) => {
        execFile(process.execPath, [CLI, ...args, '-c', file], { encoding: 'utf8' }, (error, _stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stderr }));
      });
    const words = 'tableSize 262147 is too large for the nft director (at most 262144)';
    const check = await run(['check', '--no-resolve']);
    expect(check.code).toBe(1);
    expect(check.stderr).toContain(`services[0].tableSize: ${words}`);
    const render = await run(['dsr', 'render']);
    expect(render.code).toBe(1);
    expect(render.stderr).toContain(words);
  }, CHECK_TIMEOUT);
});
