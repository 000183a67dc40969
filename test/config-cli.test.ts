/**
 * `l4lb check -c FILE` as a user runs it (the built dist/cli.js, which `npm test` builds first):
 * exit 0 with one summary line on stdout, exit 1 with every problem on stderr, exit 2 on bad usage,
 * and never a stack trace.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = new URL('../', import.meta.url).pathname;
const CLI = `${ROOT}dist/cli.js`;
const FIXTURES = `${ROOT}test/fixtures/config`;

function check(args: string[]) {
  return spawnSync(process.execPath, [CLI, 'check', ...args], { cwd: FIXTURES, encoding: 'utf8' });
}

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `npm run build` (npm test does it first)');
  const built = statSync(`${ROOT}dist/config/load.js`, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const newest = Math.max(...readdirSync(`${ROOT}src/config`).map((name) => statSync(`${ROOT}src/config/${name}`).mtimeMs));
  if (built < newest) throw new Error('dist/ is older than src/config: run `npm run build` (npm test does it first)');
});

describe('l4lb check', () => {
  it('a valid YAML file: exit 0 and one summary line (--no-resolve: its names are not this machine\'s)', () => {
    const result = check(['-c', 'full.yaml', '--no-resolve']);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(
      'full.yaml: OK, 3 services (postgres: maglev over 3 backends on 127.0.0.1:6432; redis: leastconn over 1 backend on [::1]:7000; ' +
        'web: dsr maglev over 2 backends on VIP 192.0.2.10:80 dscp 10), admin on [::1]:9900; 2 backend host names not resolved (--no-resolve)\n',
    );
    expect(result.status).toBe(0);
  });

  it('a valid JSON file, with the long option', () => {
    const result = check(['--config', 'minimal.json']);
    expect(result.stdout).toBe('minimal.json: OK, 1 service (postgres: maglev over 1 backend on 127.0.0.1:6432)\n');
    expect(result.status).toBe(0);
  });

  it.each([
    ['bad.yaml', [
      'bad.yaml: services[0].backends[1].address: "127.0.0.1": the port is missing (expected 127.0.0.1:PORT)',
      'bad.yaml: services[0]: unknown key "tiemouts" (did you mean "timeouts"?)',
    ]],
    ['syntax-error.yaml', ['syntax-error.yaml:4:1: YAML syntax error: Sequence item without - indicator']],
    ['empty.yaml', ['empty.yaml: the file is empty: expected a mapping with a "services" list']],
    ['missing.yaml', ['missing.yaml: cannot read the file: it does not exist']],
  ])('%s: exit 1 and every problem on stderr, nothing on stdout', (file, lines) => {
    const result = check(['-c', file]);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(lines.map((line) => `${line}\n`).join(''));
    expect(result.status).toBe(1);
  });

  it('without -c: exit 2 with a usage line, no stack', () => {
    const result = check([]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/^l4lb: required option '-c, --config <file>' not specified\n/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
