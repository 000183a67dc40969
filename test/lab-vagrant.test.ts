/**
 * The Vagrantfile that reproduces the DSR lab in a VM: Ruby accepts it (`ruby -c`), it asks for a
 * Debian 12 box and Node.js ≥ 20, and every lab script and npm script it calls exists. Needs ruby:
 * with CI=true a missing ruby fails; elsewhere the suite is skipped with the reason in its title.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { requirement } from './helpers/skip.js';

const REPO = new URL('..', import.meta.url).pathname;
const VAGRANTFILE = `${REPO}Vagrantfile`;
const hasRuby = spawnSync('ruby', ['--version']).status === 0;
const vagrantfile = requirement('Vagrantfile', hasRuby ? undefined : 'no ruby');

describe.skipIf(vagrantfile.skip)(vagrantfile.title, () => {
  const text = readFileSync(VAGRANTFILE, 'utf8');

  it('is valid Ruby (ruby -c)', () => {
    const result = spawnSync('ruby', ['-c', VAGRANTFILE], { encoding: 'utf8' });
    expect(result.error, 'ruby must be installed (CI=true)').toBeUndefined();
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe('Syntax OK');
  });

  it('uses a Debian 12 box and installs Node.js 20 or later, nftables, iproute2, iperf3, bird2', () => {
    expect(text).toMatch(/config\.vm\.box = 'debian\/bookworm64'/);
    expect(text).toContain('setup_20.x');
    for (const pkg of ['nftables', 'iproute2', 'iperf3', 'bird2']) expect(text).toMatch(new RegExp(`apt-get install[^\\n]*\\b${pkg}\\b`));
  });

  it('calls only lab scripts that exist and are executable, up.sh then verify.sh', () => {
    const scripts = [...text.matchAll(/^\s*(lab\/[\w.-]+\.sh)\b/gm)].map((m) => m[1]);
    expect(scripts).toEqual(['lab/up.sh', 'lab/verify.sh']);
    const mentioned = new Set([...text.matchAll(/\blab\/[\w.-]+\.sh\b/g)].map((m) => m[0]));
    for (const script of mentioned) {
      expect(existsSync(`${REPO}${script}`), script).toBe(true);
      expect(() => accessSync(`${REPO}${script}`, constants.X_OK), `${script} is executable`).not.toThrow();
    }
  });

  it('runs npm scripts that package.json defines', () => {
    const scripts = (JSON.parse(readFileSync(`${REPO}package.json`, 'utf8')) as { scripts: Record<string, string> }).scripts;
    const used = [...text.matchAll(/npm run ([\w:-]+)/g)].map((m) => m[1]);
    expect(used.length).toBeGreaterThan(0);
    for (const name of used) expect(scripts[name], `npm run ${name}`).toBeDefined();
  });
});
