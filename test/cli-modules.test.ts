/**
 * What `l4lb run` loads at start: the admin API, prom-client and the metrics only when the
 * configuration has an `admin:` block (an idle process without one is about 2.4 MB smaller; see
 * docs/soak.md). A loader hook (`--import`) writes every module URL it resolves to stderr.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startCli, type CliChild } from './helpers/child.js';
import { freePort } from './helpers/net.js';

const dir = mkdtempSync(join(tmpdir(), 'l4lb-cli-modules-'));
const running: CliChild[] = [];

afterAll(async () => {
  for (const run of running) await run.kill();
  rmSync(dir, { recursive: true, force: true });
});

const HOOKS = `export async function resolve(specifier, context, next) {
  const found = await next(specifier, context);
  process.stderr.write('MODULE ' + found.url + '\\n');
  return found;
}
`;
const REGISTER = `import { register } from 'node:module';
register(${JSON.stringify(`file://${join(dir, 'hooks.mjs')}`)});
`;
writeFileSync(join(dir, 'hooks.mjs'), HOOKS);
writeFileSync(join(dir, 'register.mjs'), REGISTER);

/** The modules resolved by the time `l4lb run` logged `ready`, with `admin` an admin block or none. */
async function modulesOfRun(name: string, admin: string | undefined, ready: string): Promise<string[]> {
  const file = join(dir, `${name}.yaml`);
  const lines = [...(admin === undefined ? [] : [admin]), 'services:', '  - name: web', `    listen: 127.0.0.1:${await freePort()}`, '    backends:', '      - { name: a, address: 127.0.0.1:9 }', ''];
  writeFileSync(file, lines.join('\n'));
  const run = startCli(['run', '-c', file], ['--import', join(dir, 'register.mjs')]);
  running.push(run);
  await run.waitForRecord(ready);
  return run
    .stderr()
    .split('\n')
    .filter((line) => line.startsWith('MODULE '));
}

describe('l4lb run loads', () => {
  it('no admin API, prom-client or metrics without an admin block', async () => {
    const modules = await modulesOfRun('plain', undefined, 'listening');
    expect(modules.some((line) => line.includes('/dist/runtime/'))).toBe(true); // the hook saw the start
    expect(modules.filter((line) => line.includes('prom-client') || line.includes('/dist/admin/') || line.includes('/dist/observability/'))).toEqual([]);
  });

  it('the admin API and prom-client with one', async () => {
    const modules = await modulesOfRun('admin', `admin: { listen: 127.0.0.1:${await freePort()} }`, 'admin API listening');
    expect(modules.some((line) => line.includes('prom-client'))).toBe(true);
    expect(modules.some((line) => line.includes('/dist/admin/'))).toBe(true);
  });
});
