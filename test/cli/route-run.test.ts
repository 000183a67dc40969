/**
 * `l4lb route -c FILE -s SERVICE` answers what `l4lb run` does: 60 clients from distinct loopback
 * sources connect through a real `run` of the same file, each reads the name of the backend that
 * answered, and `route` must name the same backend for every one of them, for every hashing
 * algorithm, both Maglev flow hashes and both hash keys. A dsr service's answer must be `dsr lookup`'s.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CLI, startCli } from '../helpers/child.js';
import { connectClient, freePort, readLine, startNamedServer, type TestServer } from '../helpers/net.js';

const dir = mkdtempSync(join(tmpdir(), 'l4lb-route-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function route(args: string[]) {
  return spawnSync(process.execPath, [CLI, 'route', ...args], { encoding: 'utf8' });
}

/** Sources 127.0.0.2 … 127.0.0.61. */
const SOURCES = Array.from({ length: 60 }, (_, i) => `127.0.0.${i + 2}`);

interface Case {
  name: string;
  service: Record<string, unknown>;
  /** source-ip-port: the key carries the client's (kernel-chosen, then known) local port. */
  withPort: boolean;
}

const CASES: Case[] = [
  { name: 'maglev-murmur3', service: { balance: 'maglev', flowHash: 'murmur3', hashSeed: 7, tableSize: 251 }, withPort: false },
  { name: 'maglev-jhash', service: { balance: 'maglev', flowHash: 'jhash', hashSeed: 3405691582 }, withPort: false },
  { name: 'maglev-port', service: { balance: 'maglev', hashKey: 'source-ip-port', tableSize: 1009 }, withPort: true },
  { name: 'ring', service: { balance: 'ring' }, withPort: false },
  { name: 'ring-port', service: { balance: 'ring', hashKey: 'source-ip-port' }, withPort: true },
  { name: 'rendezvous', service: { balance: 'rendezvous' }, withPort: false },
  { name: 'rendezvous-port', service: { balance: 'rendezvous', hashKey: 'source-ip-port' }, withPort: true },
];

describe('l4lb route -c agrees with l4lb run', () => {
  it('names the backend that answered each of 60 loopback clients, for every algorithm', async () => {
    const servers: TestServer[] = [];
    for (const name of ['alpha', 'bravo', 'charlie', 'delta']) {
      const server = await startNamedServer(name);
      cleanups.push(() => server.close());
      servers.push(server);
    }
    const [alpha, bravo, charlie, delta] = servers;
    const ports = new Map<string, number>();
    for (const c of CASES) ports.set(c.name, await freePort());
    const file = join(dir, 'services.json');
    const services = CASES.map((c) => ({
      name: c.name,
      listen: `127.0.0.1:${ports.get(c.name)}`,
      ...c.service,
      backends: [
        { name: 'alpha', address: `127.0.0.1:${alpha.port}`, weight: 1 },
        { name: 'bravo', address: `127.0.0.1:${bravo.port}`, weight: 2 },
        { name: 'charlie', address: `127.0.0.1:${charlie.port}`, weight: 1 },
        // Configured out of rotation: route must skip it as the balancer's gate does.
        { name: 'delta', address: `127.0.0.1:${delta.port}`, weight: 3, state: 'maintenance' },
      ],
    }));
    writeFileSync(file, JSON.stringify({ services }));

    const run = startCli(['run', '-c', file]);
    cleanups.push(() => run.kill());
    for (const c of CASES) await run.waitForRecord('listening', (record) => record.service === c.name);

    for (const c of CASES) {
      const keys: string[] = [];
      const served: string[] = [];
      for (const source of SOURCES) {
        const socket = await connectClient(ports.get(c.name) as number, source);
        keys.push(c.withPort ? `${source}:${socket.localPort}` : source);
        served.push(await readLine(socket));
        socket.destroy();
      }
      const predicted = route(['-c', file, '-s', c.name, ...keys]);
      expect(predicted.stderr, c.name).toBe('');
      expect(predicted.status, c.name).toBe(0);
      expect(predicted.stdout, c.name).toBe(keys.map((key, i) => `${key}\t${served[i]}\n`).join(''));
      // The sources spread: a test where every client lands on one backend would prove little.
      expect(new Set(served).size, c.name).toBeGreaterThan(1);
      expect(served, c.name).not.toContain('delta');
    }
  }, 60_000);

  it('a dsr service: the jhash slot and backend of `dsr lookup`', () => {
    const file = join(dir, 'dsr.yaml');
    writeFileSync(
      file,
      [
        'services:',
        '  - { mode: dsr, name: web, vip: "192.0.2.200:80", dscp: 10, hashSeed: 42, tableSize: 251, backends: [{ name: be1, address: 203.0.113.11 }, { name: be2, address: 203.0.113.12 }, { name: be3, address: 203.0.113.13 }] }',
        '  - { mode: dsr, name: web-port, vip: "192.0.2.201:80", dscp: 11, hashKey: source-ip-port, backends: [{ name: be1, address: 203.0.113.11 }, { name: be2, address: 203.0.113.12 }] }',
      ].join('\n'),
    );
    for (const [service, flows] of [
      ['web', SOURCES.map((source) => source.replace('127.0.0', '198.51.100'))],
      ['web-port', SOURCES.map((_, i) => `198.51.100.${i + 2}:${40000 + i}`)],
    ] as const) {
      const lookup = spawnSync(process.execPath, [CLI, 'dsr', 'lookup', '-c', file, '-s', service, ...flows], { encoding: 'utf8' });
      expect(lookup.status).toBe(0);
      const expected = lookup.stdout
        .trim()
        .split('\n')
        .map((line) => {
          const [flow, , slot, backend] = line.split('\t');
          return `${flow}\t${backend}\t${slot}\n`;
        })
        .join('');
      const predicted = route(['-c', file, '-s', service, ...flows]);
      expect(predicted.stderr).toBe('');
      expect(predicted.stdout).toBe(expected);
    }
  });

  it.each([
    [['-c', 'FILE', '-s', 'maglev-port', '127.0.0.5'], /key "127.0.0.5": service "maglev-port" hashes the source port too/],
    [['-c', 'FILE', '-s', 'ring', 'client-7'], /key "client-7": not a client address; service "ring" hashes ADDRESS/],
    [['-c', 'FILE', '127.0.0.5'], /has 2 services: choose one with -s \(ring, maglev-port\)/],
    [['-c', 'FILE', '-s', 'nope', '127.0.0.5'], /--service "nope": no such service in .* \(services: ring, maglev-port\)/],
    [['-c', 'FILE', '-a', 'ring', '-s', 'ring', '127.0.0.5'], /option '-a, --algorithm <name>' cannot be used with option '-c, --config <file>'/],
    [['-s', 'ring', '-b', 'a', '127.0.0.5'], /--service needs -c FILE/],
  ])('refuses %j with exit code 2 and one line', (args, message) => {
    const file = join(dir, 'two.yaml');
    writeFileSync(
      file,
      'services:\n  - { name: ring, listen: "127.0.0.1:0", balance: ring, backends: [{ name: a, address: "127.0.0.1:1" }] }\n' +
        '  - { name: maglev-port, listen: "127.0.0.1:0", hashKey: source-ip-port, backends: [{ name: a, address: "127.0.0.1:1" }] }\n',
    );
    const result = route(args.map((arg) => (arg === 'FILE' ? file : arg)));
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')[0]).toMatch(message);
  });

  it('a nat service: the slot map `kernel render` loads, indexed by the kernel jhash slot', () => {
    const file = join(dir, 'nat.yaml');
    writeFileSync(
      file,
      [
        'services:',
        '  - { mode: nat, name: web, vip: "127.0.0.1:8000", hashKey: source-ip-port, hashSeed: 42, tableSize: 13, backends: [{ name: b1, address: "127.0.0.1:8001" }, { name: b2, address: "127.0.0.1:8002" }, { name: b3, address: "127.0.0.1:8003", state: draining }] }',
      ].join('\n'),
    );
    const rendered = spawnSync(process.execPath, [CLI, 'kernel', 'render', '-c', file], { encoding: 'utf8' });
    expect(rendered.status).toBe(0);
    const body = /map slots_web \{[^]*?elements = \{([^}]*)\}/.exec(rendered.stdout)?.[1] ?? '';
    const map = new Map([...body.matchAll(/(\d+) : 127\.0\.0\.1 \. 800(\d)/g)].map((m) => [m[1], `b${m[2]}`]));
    expect(map.size).toBe(13);
    expect([...map.values()]).not.toContain('b3');
    const flows = SOURCES.map((source, i) => `${source}:${40000 + i}`);
    const predicted = route(['-c', file, '-s', 'web', ...flows]);
    expect(predicted.stderr).toBe('');
    for (const line of predicted.stdout.trim().split('\n')) {
      const [, backend, slot] = line.split('\t');
      expect(map.get(slot ?? '')).toBe(backend);
    }
  });

  it('refuses a roundrobin service: its answer does not depend on the key', () => {
    const file = join(dir, 'rr.yaml');
    writeFileSync(file, 'services:\n  - { name: rr, listen: "127.0.0.1:0", balance: roundrobin, backends: [{ name: a, address: "127.0.0.1:1" }] }\n');
    const result = route(['-c', file, '127.0.0.5']);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/service "rr" uses balance: roundrobin, which does not hash the client/);
  });

  it('without -c an address is hashed as run hashes it (the issue: 127.0.0.3 lands on bravo, as in the demo)', () => {
    const result = route(['-a', 'maglev', '-b', 'alpha', '-b', 'bravo', '-b', 'charlie', '127.0.0.3', '::ffff:127.0.0.3']);
    expect(result.stdout).toBe('127.0.0.3\tbravo\n::ffff:127.0.0.3\tbravo\n');
  });
});
