/**
 * The configuration limits (src/config/limits.ts): each refusal is one line naming the limit, and
 * each is found before the work it bounds: the size before the file is read, bracket nesting
 * before the YAML parser, counts before the schema. A file at the limits loads.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONFIG_LIMITS, ConfigError, parseConfig, readConfig } from '../src/config/index.js';
import { flowDepth, structureProblems } from '../src/config/limits.js';

const dir = mkdtempSync(join(tmpdir(), 'l4lb-config-limits-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function service(name: string, port: number, backends: number): string {
  const lines = [`  - name: ${name}`, `    listen: 127.0.0.1:${port}`, '    backends:'];
  for (let i = 0; i < backends; i++) lines.push(`      - {name: b${i}, address: 10.0.${i >> 8}.${i & 255}:80}`);
  return lines.join('\n');
}

function refusal(text: string, file = 'c.yaml'): string[] {
  try {
    parseConfig(text, file);
  } catch (error) {
    if (error instanceof ConfigError) return error.lines();
    throw error;
  }
  return [];
}

describe('the configuration limits', () => {
  it('loads a file of 10,000 backends in one service', () => {
    const config = parseConfig(`services:\n${service('web', 8080, CONFIG_LIMITS.maxBackendsPerService)}\n`, 'c.yaml');
    expect(config.services[0].backends).toHaveLength(10_000);
  });

  it('refuses a service of 10,001 backends, by count, in one line', () => {
    expect(refusal(`services:\n${service('web', 8080, 10_001)}\n`)).toEqual(['c.yaml: services[0].backends: 10001 backends; the limit is 10000 per service (see "Limits" in docs/configuration.md)']);
  });

  it('refuses more services than the limit', () => {
    const services = Array.from({ length: CONFIG_LIMITS.maxServices + 1 }, (_, i) => ({ name: `s${i}`, listen: 1000 + i, backends: [{ name: 'a', address: '10.0.0.1:80' }] }));
    expect(refusal(JSON.stringify({ services }), 'c.json')).toEqual(['c.json: services: 1001 services; the limit is 1000 (see "Limits" in docs/configuration.md)']);
  });

  it('refuses more backends in all than the limit, each service within its own', () => {
    const data = { services: Array.from({ length: 6 }, () => ({ backends: new Array(9_000).fill({}) })) };
    expect(structureProblems(data)).toEqual([{ path: 'services', message: '54000 backends in all; the limit is 50000 (see "Limits" in docs/configuration.md)' }]);
  });

  it('refuses text over the size limit before parsing it (its content is never looked at)', () => {
    const text = `services: [${' '.repeat(CONFIG_LIMITS.maxFileBytes)}`;
    expect(refusal(text)).toEqual([`c.yaml: the file is 4.0 MiB (${CONFIG_LIMITS.maxFileBytes + 11} bytes); the limit is 4.0 MiB (see "Limits" in docs/configuration.md)`]);
  });

  it('refuses a file over the size limit before reading it', async () => {
    const file = join(dir, 'big.yaml');
    writeFileSync(file, Buffer.alloc(CONFIG_LIMITS.maxFileBytes + 1, 0x20));
    await expect(readConfig(file)).rejects.toThrow(`${file}: the file is 4.0 MiB (${CONFIG_LIMITS.maxFileBytes + 1} bytes); the limit is 4.0 MiB`);
  });

  it('refuses brackets nested past the limit before parsing, and block nesting after', () => {
    const deep = `${'['.repeat(65)}${']'.repeat(65)}`;
    expect(refusal(`x: ${deep}\n`)).toEqual(['c.yaml: lists and mappings nest more than 64 deep (see "Limits" in docs/configuration.md)']);
    const block = Array.from({ length: 70 }, (_, depth) => `${'  '.repeat(depth)}k${depth}:`).join('\n');
    expect(refusal(`${block} 1\n`)).toEqual(['c.yaml: lists and mappings nest more than 64 deep (see "Limits" in docs/configuration.md)']);
  });

  it('counts brackets outside quotes and comments only', () => {
    expect(flowDepth('a: "[[[[" # [[[[\nb: \'{{\' \nc: [[1]]\nd: don\'t [x]\n', 64)).toBe(2);
    expect(flowDepth('{"a": [{"b": "]]]"}]}', 64)).toBe(3);
    expect(flowDepth('[[[[[[', 3)).toBe(4);
  });

  it('refuses a YAML alias bomb while it expands', () => {
    const bomb = 'a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n';
    expect(refusal(bomb)).toEqual(['c.yaml: YAML error: Excessive alias count indicates a resource exhaustion attack (aliases may expand to at most 100 nodes; see "Limits" in docs/configuration.md)']);
  });

  it('still takes an alias used as configuration is written (one health check for two services)', () => {
    const text = ['services:', '  - name: a', '    listen: 127.0.0.1:1', '    healthCheck: &check { type: tcp, interval: 2s }', '    backends: [{ name: b, address: 10.0.0.1:80 }]', '  - name: c', '    listen: 127.0.0.1:2', '    healthCheck: *check', '    backends: [{ name: b, address: 10.0.0.1:80 }]', ''].join('\n');
    expect(parseConfig(text, 'c.yaml').services.map((each) => each.mode === 'proxy' && each.healthCheck?.interval)).toEqual([2000, 2000]);
  });
});
