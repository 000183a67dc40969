/**
 * `l4lb route` as a user runs it: output format and order, streaming from standard input, agreement
 * with npm hashring for the ring, and exit code 2 with one line naming the bad argument.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import HashRing from 'hashring';
import { describe, expect, it } from 'vitest';

const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;

function route(args: string[], input?: string) {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `npm run build` (npm test does it first)');
  return spawnSync(process.execPath, [CLI, 'route', ...args], { input, encoding: 'utf8' });
}

describe('l4lb route', () => {
  it('prints KEY<TAB>BACKEND per key in input order, the same as npm hashring for the ring (text keys: hashring hashes text)', () => {
    const servers = { 'pg1:5432': 1, 'pg2:5432': 2, 'pg3:5432': 1 };
    const keys = Array.from({ length: 50 }, (_, i) => `client-${i}.example`);
    const result = route(['-a', 'ring', ...Object.entries(servers).map(([n, w]) => `--backend=${n}=${w}`), ...keys]);
    expect(result.status).toBe(0);
    const oracle = new HashRing(servers);
    expect(result.stdout).toBe(keys.map((k) => `${k}\t${oracle.range(k, 1)[0]}\n`).join(''));
  });

  it('reads keys from standard input, one a line, when none are given', () => {
    const keys = Array.from({ length: 1000 }, (_, i) => `client-${i}`);
    const args = ['-a', 'maglev', '-m', '251', '-b', 'a', '-b', 'b', '-b', 'c'];
    const streamed = route(args, keys.join('\n') + '\n');
    const direct = route([...args, ...keys]);
    expect(streamed.status).toBe(0);
    expect(streamed.stdout).toBe(direct.stdout);
    expect(streamed.stdout.split('\n')).toHaveLength(1001);
  });

  it('streams: answers the first key before standard input ends', async () => {
    const child = spawn(process.execPath, [CLI, 'route', '-a', 'rendezvous', '-b', 'a', '-b', 'b']);
    child.stdin.write('first-key\n');
    const line = await new Promise<string>((resolve) => child.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString())));
    expect(line).toMatch(/^first-key\t[ab]\n$/);
    child.stdin.end();
    await new Promise((resolve) => child.once('close', resolve));
  });

  it.each([
    [['-a', 'chash', '-b', 'a', 'k'], /--algorithm "chash": expected one of ring, maglev, rendezvous/],
    [['-b', 'a=0', 'k'], /--backend "a=0": weight must be a number > 0/],
    [['-b', 'a=-1', 'k'], /--backend "a=-1": weight must be a number > 0/],
    [['-b', 'a=x', 'k'], /--backend "a=x": weight must be a number > 0/],
    [['-b', 'a', '-b', 'a', 'k'], /--backend: duplicate backend name "a"/],
    [['k'], /--backend: give at least one backend/],
    [['-b', 'a', '-m', '65536', 'k'], /--table-size: table size must be a prime number, got 65536/],
    [['-b', 'a', '-m', '2147483647', 'k'], /--table-size: table size must be at most 16777216, got 2147483647/],
    [['-b', 'a', '-m', 'many', 'k'], /--table-size: table size must be a prime number, got NaN/],
    [['-a', 'ring', '-b', 'a', '-m', '7', 'k'], /--table-size applies to maglev only/],
    [['-b', 'a', '--frobnicate', 'k'], /unknown option '--frobnicate'/],
  ])('rejects %j with exit code 2 and one line', (args, message) => {
    const result = route(args);
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
