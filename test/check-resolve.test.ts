/**
 * `l4lb check` resolves backend host names as `run` will, as `haproxy -c` and `nginx -t` do: a
 * name that resolves nowhere is a problem at its path (exit 1), `--no-resolve` skips the lookups.
 * The unit tests inject the lookup; the CLI tests use only `localhost` and a `.invalid` name, which
 * RFC 6761 §6.4 guarantees resolves nowhere.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkFile } from '../src/cli/check.js';
import { ConfigError } from '../src/config/index.js';
import { CLI } from './helpers/child.js';

const dir = mkdtempSync(join(tmpdir(), 'l4lb-check-resolve-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, backends: string[]): string {
  const path = join(dir, name);
  const list = backends.map((address, i) => `      - { name: b${i}, address: "${address}" }`).join('\n');
  writeFileSync(path, `services:\n  - name: pg\n    listen: 127.0.0.1:6432\n    backends:\n${list}\n`);
  return path;
}

function check(args: string[]) {
  return spawnSync(process.execPath, [CLI, 'check', ...args], { encoding: 'utf8' });
}

describe('l4lb check resolves backend names', () => {
  const asked: string[] = [];
  const lookup = (host: string): Promise<string> => {
    asked.push(host);
    if (host === 'db1.example') return Promise.resolve('192.0.2.1');
    return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }));
  };

  it('reports every name that resolves nowhere at its path, each name asked once (injected lookup)', async () => {
    const path = file('mixed.yaml', ['db1.example:5432', 'gone.example:5432', '10.0.0.3:5432', 'gone.example:5433', 'db1.example:5433']);
    asked.length = 0;
    const error = await checkFile(path, true, lookup).then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).lines()).toEqual([
      `${path}: services[0].backends[1].address: backend "b1": cannot resolve "gone.example" (ENOTFOUND): run would refuse this file (--no-resolve skips the lookup)`,
      `${path}: services[0].backends[3].address: backend "b3": cannot resolve "gone.example" (ENOTFOUND): run would refuse this file (--no-resolve skips the lookup)`,
    ]);
    expect(asked).toEqual(['db1.example', 'gone.example']);
  });

  it('says it resolved the names, or that it did not', async () => {
    const path = file('ok.yaml', ['db1.example:5432', '10.0.0.3:5432']);
    expect(await checkFile(path, true, lookup)).toBe(
      `${path}: OK, 1 service (pg: maglev over 2 backends on 127.0.0.1:6432); 1 backend host name resolved, as run will (db1.example)`,
    );
    asked.length = 0;
    expect(await checkFile(path, false, lookup)).toBe(`${path}: OK, 1 service (pg: maglev over 2 backends on 127.0.0.1:6432); 1 backend host name not resolved (--no-resolve)`);
    expect(asked).toEqual([]);
  });

  it('the command: a name that resolves nowhere is exit 1 with its path; localhost resolves; --no-resolve passes both', () => {
    const bad = file('invalid.yaml', ['localhost:5432', 'no-such-host.invalid:5432']);
    const refused = check(['-c', bad]);
    expect(refused.status).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/^.*invalid\.yaml: services\[0\]\.backends\[1\]\.address: backend "b1": cannot resolve "no-such-host\.invalid" \(\w+\): run would refuse this file/);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);

    const skipped = check(['-c', bad, '--no-resolve']);
    expect(skipped.status).toBe(0);
    expect(skipped.stdout).toMatch(/; 2 backend host names not resolved \(--no-resolve\)\n$/);

    const good = check(['-c', file('localhost.yaml', ['localhost:5432'])]);
    expect(good.stderr).toBe('');
    expect(good.stdout).toMatch(/; 1 backend host name resolved, as run will \(localhost\)\n$/);
  });
});
