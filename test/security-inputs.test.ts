/**
 * Bad input, measured (docs/security.md), the part that is not bytes on a socket:
 *
 * - configuration files with every field wrong in turn (each field of a full proxy service, each
 *   replaced by each of a dozen wrong values): parsed in process — a ConfigError naming that field
 *   or, when the value happens to be valid there, a config — and then sent to a running
 *   `l4lb run` by SIGHUP while a well-behaved client loops through it: every bad reload is
 *   refused with its problems listed, and the client sees zero failures;
 * - CLI arguments out of range: exit 1 or 2 with one `l4lb: …` or `error: …` line, never a stack.
 *
 * Exact messages per key are tested in test/config-errors.test.ts and test/security-config.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config/index.js';
import { CLI, startCli, type CliChild } from './helpers/child.js';
import { connectClient, freePort, startEchoServer, type TestServer } from './helpers/net.js';

const dir = mkdtempSync(join(tmpdir(), 'l4lb-security-inputs-'));
const LONG = 120_000;

/** A full, valid proxy service using every key this suite mutates. */
function baseConfig(listenPort: number, backendPort: number): Record<string, unknown> {
  return {
    services: [
      {
        name: 'svc',
        listen: `127.0.0.1:${listenPort}`,
        balance: 'maglev',
        hashKey: 'source-ip',
        flowHash: 'murmur3',
        hashSeed: 7,
        tableSize: 251,
        balanceFactor: 1.5,
        maxConnections: 1000,
        retries: 2,
        timeouts: { connect: '1s', idle: '1m', queue: '1s', drain: '1s', proxyHeader: '2s' },
        proxyProtocol: { accept: ['127.0.0.2'] },
        allow: ['127.0.0.0/8'],
        deny: ['127.0.0.99'],
        limits: { perSourceConnections: 50, perSourceRate: '1000/s', maxSources: 1000 },
        backends: [{ name: 'e1', address: `127.0.0.1:${backendPort}`, weight: 1, maxConnections: 100 }],
      },
    ],
  };
}

const FIELDS = [
  'name', 'listen', 'balance', 'hashKey', 'flowHash', 'hashSeed', 'tableSize', 'balanceFactor', 'maxConnections', 'retries',
  'timeouts.connect', 'timeouts.idle', 'timeouts.queue', 'timeouts.drain', 'timeouts.proxyHeader',
  'proxyProtocol.accept', 'proxyProtocol.send', 'allow', 'deny', 'limits.perSourceConnections', 'limits.perSourceRate', 'limits.maxSources',
  'backends[0].name', 'backends[0].address', 'backends[0].weight', 'backends[0].maxConnections',
];

const WRONG: unknown[] = [null, true, -1, 0, 0.5, 1e300, '', 'garbage', '10.0.0.0/33', [], [''], {}, 'x'.repeat(10_000), '\u0000'];

/** `path` like `timeouts.idle` or `backends[0].name` inside services[0], set to `value`. */
function mutate(config: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(config);
  let target = (copy.services as Record<string, unknown>[])[0];
  const parts = path.replace(/\[(\d+)\]/g, '.$1').split('.');
  for (const part of parts.slice(0, -1)) target = target[part] as Record<string, unknown>;
  target[parts[parts.length - 1]] = value;
  return copy;
}

interface Mutation {
  field: string;
  value: unknown;
  text: string;
  /** undefined: accepted (the value is valid there). */
  lines: string[] | undefined;
}

function mutations(listenPort: number, backendPort: number): Mutation[] {
  const base = baseConfig(listenPort, backendPort);
  return FIELDS.flatMap((field) =>
    WRONG.map((value): Mutation => {
      const text = JSON.stringify(mutate(base, field, value));
      try {
        parseConfig(text, 'c.json');
        return { field, value, text, lines: undefined };
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        return { field, value, text, lines: error.lines() };
      }
    }),
  );
}

describe('configs with every field wrong in turn', () => {
  let echo: TestServer;
  let run: CliChild | undefined;
  beforeAll(async () => {
    echo = await startEchoServer();
  });
  afterAll(async () => {
    await run?.kill();
    await echo.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('parsed: each refused file names the field it broke, in one line per problem, never a stack', () => {
    const all = mutations(6000, 7000);
    const refused = all.filter((m) => m.lines !== undefined);
    for (const { field, lines } of refused) {
      const path = `services[0].${field}`;
      expect(lines?.some((line) => line.startsWith(`c.json: ${path}`) || line.startsWith(`c.json: ${path.replace(/\.[^.[]+$/, '')}`))).toBe(true);
      for (const line of lines ?? []) {
        expect(line).toMatch(/^c\.json(:\d+:\d+)?: /);
        expect(line).not.toMatch(/\n|\s+at \S+ \(/);
        expect(line.length).toBeLessThan(400); // a 10,000-character value is shortened in messages
      }
    }
    // Which wrong values happened to be valid somewhere (e.g. "garbage" is a fine name).
    const accepted = all.filter((m) => m.lines === undefined).map((m) => `${m.field}=${JSON.stringify(m.value)}`);
    console.log(`config mutations: ${all.length} files, ${refused.length} refused, ${accepted.length} accepted as valid: ${accepted.join(' ')}`);
    expect(refused.length).toBeGreaterThan(all.length * 0.9);
  }, LONG);

  it('sent to a running `l4lb run` by SIGHUP: every bad file is refused and a well-behaved client never fails', async () => {
    const port = await freePort();
    const file = join(dir, 'live.json');
    const base = baseConfig(port, echo.port);
    writeFileSync(file, JSON.stringify(base));
    run = startCli(['run', '-c', file]);
    await run.waitForRecord('listening');

    let stopped = false;
    let ok = 0;
    const failures: string[] = [];
    const client = (async () => {
      for (let round = 0; !stopped || round < 5; round++) {
        try {
          const socket: Socket = await connectClient(port, '127.0.0.1');
          const line = `ping ${round}\n`;
          const back = new Promise<string>((resolve, reject) => {
            let got = '';
            socket.on('data', (chunk: Buffer) => (got += chunk.toString()));
            socket.once('end', () => resolve(got));
            socket.once('error', reject);
          });
          socket.end(line);
          const got = await back;
          socket.destroy();
          if (got === line) ok++;
          else failures.push(JSON.stringify(got));
        } catch (error) {
          failures.push(String(error));
        }
      }
    })();

    const refused = mutations(port, echo.port).filter((m) => m.lines !== undefined);
    // Every field once, with a different wrong value each time (bounded: one SIGHUP per field).
    const chosen = FIELDS.map((field, i) => refused.filter((m) => m.field === field)[i % 3] ?? refused.find((m) => m.field === field)).filter((m): m is Mutation => m !== undefined);
    for (const [i, mutation] of chosen.entries()) {
      writeFileSync(file, mutation.text);
      run.child.kill('SIGHUP');
      const record = await run.waitForRecord('reload refused: still running the previous configuration', () => run?.lines.filter((l) => l.includes('reload refused')).length === i + 1);
      expect((record.problems as string[]).length).toBeGreaterThan(0);
    }
    stopped = true;
    await client;
    console.log(`SIGHUP with ${chosen.length} bad files: all refused; well-behaved connections meanwhile: ${ok}, failed: ${failures.length}`);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThanOrEqual(5);
    expect(chosen).toHaveLength(FIELDS.length);
    expect(run.stderr()).toBe('');
  }, LONG);
});

const CLI_CASES: [string, string[]][] = [
  ['route: unknown algorithm', ['route', '--algorithm', 'foo', '--backend', 'a', 'k']],
  ['route: weight 0', ['route', '--backend', 'a=0', 'k']],
  ['route: negative weight', ['route', '--backend', 'a=-1', 'k']],
  ['route: weight not a number', ['route', '--backend', 'a=heavy', 'k']],
  ['route: empty backend name', ['route', '--backend', '=2', 'k']],
  ['route: no backend', ['route', 'k']],
  ['route: table size 0', ['route', '--backend', 'a', '--table-size', '0', 'k']],
  ['route: table size not prime', ['route', '--backend', 'a', '--table-size', '65536', 'k']],
  ['route: table size huge', ['route', '--backend', 'a', '--table-size', '99999999999', 'k']],
  ['route: table size text', ['route', '--backend', 'a', '--table-size', 'big', 'k']],
  ['route: table size with ring', ['route', '--algorithm', 'ring', '--backend', 'a', '--table-size', '7', 'k']],
  ['demo: port 0', ['demo', '--port', '0']],
  ['demo: port 70000', ['demo', '--port', '70000']],
  ['demo: port -1', ['demo', '--port', '-1']],
  ['demo: port 1.5', ['demo', '--port', '1.5']],
  ['demo: port text', ['demo', '--port', 'http']],
  ['run: no -c', ['run']],
  ['run: missing file', ['run', '-c', '/nonexistent/l4lb.yaml']],
  ['run: a directory', ['run', '-c', '/']],
  ['check: empty file', ['check', '-c', '/dev/null']],
  ['dsr render: unknown method', ['dsr', 'render', '--method', 'l7', '-c', '/dev/null']],
  ['unknown command', ['explode']],
  ['unknown option', ['run', '--bogus']],
];

describe('CLI arguments out of range', () => {
  it.each(CLI_CASES)('%s: exit 1 or 2, one line, no stack', (_name, args) => {
    const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000, input: '' });
    expect(result.signal).toBeNull();
    expect([1, 2]).toContain(result.status);
    const lines = result.stderr.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('(run with --help'));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines[0]).toMatch(/^(l4lb: |error: |\/dev\/null: |\/nonexistent|\/: )/);
    expect(result.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
  });
});
