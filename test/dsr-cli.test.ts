/**
 * `l4lb dsr` as a user runs it: outputs, the proxy/director agreement through a real config file, and
 * one line plus exit 1 (bad config) or 2 (bad usage) for every refusal.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, type DsrServiceConfig, type ProxyServiceConfig } from '../src/config/index.js';
import { createPicker } from '../src/hashing/index.js';
import { jhashSlotHash } from '../src/hashing/jhash.js';
import { flowKey } from '../src/hashing/keys.js';

const CLI = new URL('../dist/cli.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'l4lb-dsr-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function dsr(...args: string[]) {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run `npm run build` (npm test does it first)');
  return spawnSync(process.execPath, [CLI, 'dsr', ...args], { encoding: 'utf8' });
}

const backends = (names: string[]) => names.map((name, i) => `      - { name: ${name}, address: 203.0.113.${11 + i} }`).join('\n');
const dsrService = (names: string[], extra = '') => `  - name: web
    mode: dsr
    vip: 192.0.2.200:80
    dscp: 10
    hashKey: source-ip-port
    hashSeed: 7
    tableSize: 251${extra}
    backends:
${backends(names)}
`;
const proxyService = (names: string[]) => `  - name: web-proxy
    mode: proxy
    listen: 127.0.0.1:0
    balance: maglev
    hashKey: source-ip-port
    flowHash: jhash
    hashSeed: 7
    tableSize: 251
    backends:
${names.map((name, i) => `      - { name: ${name}, address: 203.0.113.${11 + i}:80 }`).join('\n')}
`;
const full = file('full.yaml', `services:\n${dsrService(['be1', 'be2', 'be3', 'be4'])}${proxyService(['be1', 'be2', 'be3', 'be4'])}`);
const fewer = file('fewer.yaml', `services:\n${dsrService(['be1', 'be2', 'be3'])}`);

describe('l4lb dsr', () => {
  it('render prints the ruleset of the dsr services only', () => {
    const result = dsr('render', '-c', full);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('table ip l4lb_dsr {');
    expect(result.stdout).toContain('jhash ip saddr . tcp sport mod 251 seed 0x00000007');
    expect(result.stdout).not.toContain('web-proxy');
  });

  it('lookup, the proxy picker with flowHash jhash, and a dsr service choose the same backend', async () => {
    const config = await loadConfig(full);
    const proxy = config.services.find((s): s is ProxyServiceConfig => s.mode === 'proxy')!;
    const director = config.services.find((s): s is DsrServiceConfig => s.mode === 'dsr')!;
    expect(proxy.backends.map((b) => b.name)).toEqual(director.backends.map((b) => b.name));
    const picker = createPicker('maglev', proxy.backends, { tableSize: proxy.tableSize, slotHash: jhashSlotHash(proxy.hashSeed) });
    const flows = Array.from({ length: 200 }, (_, i) => `198.51.100.${1 + (i % 50)}:${30000 + i * 7}`);
    const result = dsr('lookup', '-c', full, ...flows);
    expect(result.status).toBe(0);
    const lines = result.stdout.trim().split('\n').map((line) => line.split('\t'));
    expect(lines).toHaveLength(200);
    lines.forEach(([flow, service, , backend], i) => {
      const [address, port] = flows[i].split(':');
      expect([flow, service]).toEqual([flows[i], 'web']);
      expect(backend).toBe(picker.pick(flowKey(address, Number(port)))?.name);
    });
  });

  it('diff prints one transaction with the moved slots only', () => {
    const result = dsr('diff', '-c', full, '-c', fewer);
    expect(result.status).toBe(0);
    const header = /# service web: (\d+) of 251 slots move, (\d+) map elements rewritten/.exec(result.stdout);
    expect(header).not.toBeNull();
    expect(header![1]).toBe(header![2]);
    const added = result.stdout.slice(result.stdout.indexOf('add element'));
    expect([...added.matchAll(/\d+ : 203\.0\.113\.\d+/g)]).toHaveLength(Number(header![1]));
    expect(added).not.toContain('203.0.113.14');
  });

  it('render-backend prints a shell script for that backend', () => {
    const result = dsr('render-backend', '-c', full, '--backend', 'be2');
    expect(result.status).toBe(0);
    expect(result.stdout.startsWith('#!/bin/sh\n')).toBe(true);
    expect(result.stdout).toContain('ip daddr 203.0.113.12 ip dscp 10 tcp dport 80 notrack');
  });

  it.each<[string, number, string[], RegExp]>([
    ['no dsr service', 1, ['render', '-c', 'PROXY_ONLY'], /^l4lb: the config has no service with mode: dsr$/],
    ['an unknown service', 1, ['render', '-c', 'FULL', '--service', 'nope'], /^l4lb: no dsr service named "nope" \(dsr services: web\)$/],
    ['an unknown backend', 1, ['render-backend', '-c', 'FULL', '--backend', 'be9'], /^l4lb: no dsr service has a backend named "be9"/],
    ['a table too large for nft', 1, ['render', '-c', 'HUGE'], /^l4lb: .*huge\.yaml.*tableSize 1048573 is too large for the nft director \(at most 262144\)/],
    ['a missing file', 1, ['render', '-c', '/nonexistent/l4lb.yaml'], /^l4lb: \/nonexistent\/l4lb\.yaml: /],
    ['a diff with one config', 2, ['diff', '-c', 'FULL'], /^l4lb: diff needs -c OLD -c NEW \(got 1 -c\)$/],
    ['a diff that changes the table size', 1, ['diff', '-c', 'FULL', '-c', 'RESIZED'], /tableSize changed from 251 to 257; a diff only moves slots/],
    ['an unknown method', 2, ['render', '-c', 'FULL', '--method', 'l4'], /^l4lb: --method "l4": expected one of l3, l2$/],
    ['no config', 2, ['render'], /^l4lb: give exactly one -c FILE \(got 0\)$/],
    ['render-backend without --backend', 2, ['render-backend', '-c', 'FULL'], /required option/],
  ])('%s: exit %d, one line', (_, status, args, message) => {
    const files: Record<string, string> = {
      FULL: full,
      PROXY_ONLY: file('proxy.yaml', `services:\n${proxyService(['a', 'b'])}`),
      HUGE: file('huge.yaml', `services:\n${dsrService(['be1', 'be2']).replace('tableSize: 251', 'tableSize: 1048573')}`),
      RESIZED: file('resized.yaml', `services:\n${dsrService(['be1', 'be2', 'be3', 'be4']).replace('tableSize: 251', 'tableSize: 257')}`),
    };
    const result = dsr(...args.map((arg) => files[arg] ?? arg));
    expect(result.status).toBe(status);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trim().split('\n').filter((line) => !line.startsWith('(run with --help'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
  });
});
