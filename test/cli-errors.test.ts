/**
 * One error style for every command: each line on stderr starts `l4lb: `, whether commander found
 * a usage error (its own prefix is `error: `) or the work failed (a file with two problems gives
 * two lines, each prefixed); only commander's hint to run --help stands alone.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI } from './helpers/child.js';

const dir = mkdtempSync(join(tmpdir(), 'l4lb-cli-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const bad = join(dir, 'bad.yaml');
writeFileSync(bad, 'services:\n  - name: a\n    listen: 127.0.0.1:1\n    balance: nope\n    backends: []\n');

const HINT = '(run with --help for usage)';

describe('every command prefixes its errors with "l4lb: "', () => {
  it.each([
    [['nope'], 2],
    [['run'], 2],
    [['run', '-c', join(dir, 'missing.yaml')], 1],
    [['run', '-c', bad], 1],
    [['route', '--frobnicate', 'k'], 2],
    [['route', 'k'], 2],
    [['dsr', 'render'], 2],
    [['dsr', 'render', '--nope'], 2],
    [['status', '--admin'], 2],
    [['drain', 'svc'], 2],
    [['demo', '--port', '99999'], 2],
  ] as const)('l4lb %j: exit %i', (args, code) => {
    const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
    expect(result.status).toBe(code);
    const lines = result.stderr.split('\n').filter((line) => line !== '' && line !== HINT);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatch(/^l4lb: \S/);
  });

  it('a file with two problems: two lines, each prefixed', () => {
    const result = spawnSync(process.execPath, [CLI, 'run', '-c', bad], { encoding: 'utf8', timeout: 20_000 });
    expect(result.stderr.split('\n').filter((line) => line !== '')).toEqual([
      `l4lb: ${bad}: services[0].balance: expected one of maglev, ring, rendezvous, roundrobin, leastconn, got "nope"`,
      `l4lb: ${bad}: services[0].backends: expected at least 1 entry, got 0`,
    ]);
  });
});
