/**
 * The configuration layer on good input: durations and addresses parse to what the docs promise, and
 * the fixture files (YAML and JSON, minimal and full) load to exactly the typed Config other modules
 * code against, defaults included (docs/configuration.md).
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULTS,
  endpointsOverlap,
  formatDuration,
  formatEndpoint,
  MAX_DURATION_MS,
  loadConfig,
  parseConfig,
  parseDuration,
  parseEndpoint,
  summarizeConfig,
  type Config,
} from '../src/config/index.js';

const fixture = (name: string): string => new URL(`./fixtures/config/${name}`, import.meta.url).pathname;

describe('parseDuration', () => {
  it.each([
    ['0', 0],
    ['500ms', 500],
    ['3s', 3_000],
    ['30m', 1_800_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['1h30m', 5_400_000],
    ['2s500ms', 2_500],
    ['1.5s', 1_500],
    [' 3s ', 3_000],
  ])('%j is %i ms', (text, expected) => {
    expect(parseDuration(text)).toEqual({ ok: true, value: expected });
  });

  it.each([
    ['', 'expected a duration such as "500ms", "3s", "30m", "1h" or "1m30s", got an empty string'],
    ['3', '"3" has no unit: write "3ms" or "3s"'],
    ['3sec', 'expected a duration such as "500ms", "3s", "30m", "1h" or "1m30s", got "3sec"'],
    ['-1s', 'expected a duration such as "500ms", "3s", "30m", "1h" or "1m30s", got "-1s"'],
    ['30s1m', '"30s1m": units must go from the largest down (h, m, s, ms), each at most once'],
    ['1s1s', '"1s1s": units must go from the largest down (h, m, s, ms), each at most once'],
    ['0.5ms', '"0.5ms" is not a whole number of milliseconds'],
    ['1000h', '"1000h" is too long: at most 596h31m23s647ms (about 24 days)'],
  ])('%j is refused: %s', (text, error) => {
    expect(parseDuration(text)).toEqual({ ok: false, error });
  });

  it('round-trips: parseDuration(formatDuration(ms)) = ms for every representable duration', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_DURATION_MS }), (ms) => {
        expect(parseDuration(formatDuration(ms))).toEqual({ ok: true, value: ms });
      }),
      { seed: 42, numRuns: 2000 },
    );
  });

  it('formats back to the same notation', () => {
    expect([0, 500, 3_000, 90_000, 5_400_000, 3_600_001].map(formatDuration)).toEqual(['0', '500ms', '3s', '1m30s', '1h30m', '1h1ms']);
  });
});

describe('parseEndpoint', () => {
  const listen = { host: 'ip', minPort: 0 } as const;
  const backend = { host: 'ip-or-hostname', minPort: 1 } as const;

  it.each([
    ['127.0.0.1:6432', listen, { host: '127.0.0.1', port: 6432 }],
    ['[::1]:80', listen, { host: '::1', port: 80 }],
    ['[2001:db8::1]:0', listen, { host: '2001:db8::1', port: 0 }],
    ['0.0.0.0:65535', listen, { host: '0.0.0.0', port: 65535 }],
    ['db.example.com:5432', backend, { host: 'db.example.com', port: 5432 }],
    ['localhost:1', backend, { host: 'localhost', port: 1 }],
  ])('%s parses', (text, rule, expected) => {
    expect(parseEndpoint(text, rule)).toEqual({ ok: true, value: expected });
  });

  it.each([
    ['localhost:80', listen, 'expected an IP address (v4 or v6), got the host name "localhost": listen addresses are not resolved'],
    ['::1:80', listen, '"::1:80": write an IPv6 address in brackets, e.g. "[::1]:80"'],
    ['[::1]', listen, '"[::1]": the port is missing (expected [::1]:PORT)'],
    ['[127.0.0.1]:80', listen, '"[127.0.0.1]:80": brackets are for IPv6 addresses only, "127.0.0.1" is not one'],
    ['[::1:80', listen, '"[::1:80": "[" without a closing "]"'],
    [':80', listen, '":80": the host is missing (expected HOST:PORT)'],
    ['1.2.3.4:65536', listen, 'port must be an integer 0–65535, got "65536"'],
    ['1.2.3.4:-1', listen, 'port must be an integer 0–65535, got "-1"'],
    ['1.2.3.4:http', listen, 'port must be an integer 0–65535, got "http"'],
    ['db:0', backend, 'port must be an integer 1–65535, got "0"'],
    ['10.0.0.300:80', backend, '"10.0.0.300" is neither an IP address nor a valid host name'],
    ['bad_name:80', backend, '"bad_name" is neither an IP address nor a valid host name'],
  ])('%s is refused: %s', (text, rule, error) => {
    expect(parseEndpoint(text, rule)).toEqual({ ok: false, error });
  });

  it('round-trips: any IPv4/IPv6 literal and port formats to text that parses back to the same endpoint', () => {
    const host = fc.oneof(fc.ipV4(), fc.ipV6());
    fc.assert(
      fc.property(host, fc.integer({ min: 0, max: 65535 }), (address, port) => {
        expect(parseEndpoint(formatEndpoint({ host: address, port }), listen)).toEqual({ ok: true, value: { host: address, port } });
      }),
      { seed: 42, numRuns: 1000 },
    );
  });

  it('formats IPv6 in brackets', () => {
    expect(formatEndpoint({ host: '::1', port: 80 })).toBe('[::1]:80');
    expect(formatEndpoint({ host: 'db', port: 5 })).toBe('db:5');
  });

  it('knows which binds collide', () => {
    const at = (host: string, port: number) => ({ host, port });
    expect(endpointsOverlap(at('127.0.0.1', 80), at('127.0.0.1', 80))).toBe(true);
    expect(endpointsOverlap(at('0.0.0.0', 80), at('127.0.0.1', 80))).toBe(true);
    expect(endpointsOverlap(at('::', 80), at('127.0.0.1', 80))).toBe(true);
    expect(endpointsOverlap(at('127.0.0.1', 80), at('127.0.0.2', 80))).toBe(false);
    expect(endpointsOverlap(at('0.0.0.0', 80), at('::1', 80))).toBe(false);
    expect(endpointsOverlap(at('127.0.0.1', 80), at('127.0.0.1', 81))).toBe(false);
    expect(endpointsOverlap(at('127.0.0.1', 0), at('127.0.0.1', 0))).toBe(false);
  });
});

const MINIMAL: Config = {
  services: [
    {
      mode: 'proxy',
      name: 'postgres',
      listen: [{ host: '127.0.0.1', port: 6432 }],
      balance: 'maglev',
      hashKey: 'source-ip',
      flowHash: 'murmur3',
      hashSeed: 0,
      tableSize: 65537,
      maxConnections: 10_000,
      retries: 2,
      timeouts: { connect: 3_000, idle: 1_800_000, queue: 5_000, drain: 30_000 },
      backends: [{ name: 'pg1', address: { host: '127.0.0.1', port: 5432 }, weight: 1 }],
    },
  ],
};

const FULL: Config = {
  admin: { listen: { host: '::1', port: 9900 } },
  services: [
    {
      mode: 'proxy',
      name: 'postgres',
      listen: [{ host: '127.0.0.1', port: 6432 }],
      balance: 'maglev',
      hashKey: 'source-ip-port',
      flowHash: 'jhash',
      hashSeed: 7,
      tableSize: 251,
      balanceFactor: 1.25,
      maxConnections: 500,
      retries: 0,
      timeouts: { connect: 500, idle: 5_400_000, queue: 2_000, drain: 0 },
      backends: [
        { name: 'pg1', address: { host: '127.0.0.1', port: 5432 }, weight: 2, maxConnections: 100 },
        { name: 'pg2', address: { host: '::1', port: 5433 }, weight: 0.5 },
        { name: 'pg3', address: { host: 'db3.internal', port: 5432 }, weight: 1 },
      ],
    },
    {
      mode: 'proxy',
      name: 'redis',
      listen: [{ host: '::1', port: 7000 }],
      balance: 'leastconn',
      hashKey: 'source-ip',
      flowHash: 'murmur3',
      hashSeed: 0,
      tableSize: 65537,
      maxConnections: 10_000,
      retries: 2,
      timeouts: { connect: 3_000, idle: 300_000, queue: 5_000, drain: 30_000 },
      backends: [{ name: 'r1', address: { host: 'localhost', port: 6379 }, weight: 1 }],
    },
    {
      mode: 'dsr',
      name: 'web',
      vip: { host: '192.0.2.10', port: 80 },
      dscp: 10,
      hashKey: 'source-ip-port',
      hashSeed: 42,
      tableSize: 13,
      onDown: 'close',
      backends: [
        { name: 'be1', address: { host: '198.51.100.11', port: 80 }, weight: 1 },
        { name: 'be2', address: { host: '198.51.100.12', port: 80 }, weight: 3 },
      ],
    },
  ],
};

describe('good files', () => {
  it.each([
    ['minimal.yaml', MINIMAL],
    ['minimal.json', MINIMAL],
    ['full.yaml', FULL],
    ['full.json', FULL],
  ])('%s loads to the expected Config, defaults filled in', async (name, expected) => {
    expect(await loadConfig(fixture(name))).toStrictEqual(expected);
  });

  it('the minimal file gets exactly the documented defaults', async () => {
    const service = (await loadConfig(fixture('minimal.yaml'))).services[0];
    if (service.mode !== 'proxy') throw new Error('expected a proxy service');
    expect(service.timeouts).toEqual(DEFAULTS.timeouts);
    expect([service.balance, service.hashKey, service.flowHash, service.hashSeed, service.tableSize]).toEqual([
      DEFAULTS.balance, DEFAULTS.hashKey, DEFAULTS.flowHash, DEFAULTS.hashSeed, DEFAULTS.tableSize,
    ]);
    expect([service.maxConnections, service.retries, service.backends[0].weight]).toEqual([DEFAULTS.maxConnections, DEFAULTS.retries, DEFAULTS.weight]);
    expect('balanceFactor' in service).toBe(false);
    expect('maxConnections' in service.backends[0]).toBe(false);
  });

  it('a file without a known extension is read as JSON when it starts with "{", else as YAML', () => {
    const json = readFileSync(fixture('minimal.json'), 'utf8');
    const yaml = readFileSync(fixture('minimal.yaml'), 'utf8');
    expect(parseConfig(json, 'l4lb.conf')).toStrictEqual(MINIMAL);
    expect(parseConfig(yaml, 'l4lb.conf')).toStrictEqual(MINIMAL);
    expect(parseConfig(`\uFEFF${json}`, 'c.json')).toStrictEqual(MINIMAL); // a byte-order mark is skipped
  });

  it('a timeout given alone overrides only itself', () => {
    const config = parseConfig('services: [{ name: a, listen: 127.0.0.1:1, timeouts: { queue: 1s }, backends: [{ name: b, address: h:2 }] }]', 'c.yaml');
    const service = config.services[0];
    expect(service.mode === 'proxy' && service.timeouts).toEqual({ ...DEFAULTS.timeouts, queue: 1_000 });
  });

  it('two DSR services on one VIP address may share a DSCP value', () => {
    const text = `services:
  - { name: a, mode: dsr, vip: 192.0.2.1:80, dscp: 9, backends: [{ name: x, address: 10.0.0.1 }] }
  - { name: b, mode: dsr, vip: 192.0.2.1:443, dscp: 9, backends: [{ name: x, address: 10.0.0.1 }] }
`;
    expect(parseConfig(text, 'c.yaml').services.map((service) => service.name)).toEqual(['a', 'b']);
  });

  it('workers: an integer or auto is kept as written (absent stays absent: one process) and summarized', () => {
    const base = 'services: [{ name: a, listen: 127.0.0.1:1, backends: [{ name: b, address: h:2 }] }]\n';
    expect('workers' in parseConfig(base, 'c.yaml')).toBe(false);
    expect(parseConfig(`workers: 4\n${base}`, 'c.yaml').workers).toBe(4);
    const auto = parseConfig(`workers: auto\n${base}`, 'c.yaml');
    expect(auto.workers).toBe('auto');
    expect(summarizeConfig(auto)).toBe('1 service (a: maglev over 1 backend on 127.0.0.1:1), workers: auto');
  });

  it('summarizes in one line', async () => {
    expect(summarizeConfig(await loadConfig(fixture('full.yaml')))).toBe(
      '3 services (postgres: maglev over 3 backends on 127.0.0.1:6432; redis: leastconn over 1 backend on [::1]:7000; ' +
        'web: dsr maglev over 2 backends on VIP 192.0.2.10:80 dscp 10), admin on [::1]:9900',
    );
    expect(summarizeConfig(MINIMAL)).toBe('1 service (postgres: maglev over 1 backend on 127.0.0.1:6432)');
  });
});
