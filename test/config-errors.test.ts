/**
 * The configuration layer on bad input, as a table of bad files, each with the exact message
 * expected. Each row is one file and every line `l4lb check` would print for it, in order: one
 * problem per line as `FILE: path: message`, what was expected and what was found, never a stack.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/index.js';
import { problemsOf } from './helpers/config-problems.js';

/** A valid proxy service as a flow mapping, with `extra` keys spliced in (or replacing). */
const proxy = (extra = '', backends = '[{ name: pg1, address: 127.0.0.1:5432 }]'): string =>
  `services:\n  - { name: pg, listen: 127.0.0.1:6432, ${extra}${extra === '' ? '' : ', '}backends: ${backends} }\n`;
const dsr = (extra = '', backends = '[{ name: be1, address: 198.51.100.1 }]'): string =>
  `services:\n  - { name: web, mode: dsr, vip: 192.0.2.10:80, ${extra}${extra === '' ? '' : ', '}backends: ${backends} }\n`;


const CASES: [string, string, string[]][] = [
  // --- the file as a whole
  ['empty file', '', ['c.yaml: the file is empty: expected a mapping with a "services" list']],
  ['only a comment', '# nothing yet\n', ['c.yaml: the file is empty: expected a mapping with a "services" list']],
  ['a list at the top', '- a\n', ['c.yaml: expected a mapping, got a list']],
  ['no services key', 'admin: { listen: 127.0.0.1:9900 }\n', ['c.yaml: services: missing: expected a list of services']],
  ['empty services', 'services: []\n', ['c.yaml: services: expected at least 1 entry, got 0']],
  ['YAML syntax error', 'services:\n  - name: a\n   listen: x\n', ['c.yaml:3:1: YAML syntax error: Sequence item without - indicator']],
  ['YAML duplicate key', 'services: []\nservices: []\n', ['c.yaml:2:1: YAML syntax error: key "services" appears twice in one mapping']],
  ['JSON syntax error', '{ "services": [ }', ['c.json:1:17: JSON syntax error: Unexpected token \'}\'']],
  ['YAML duplicate key in a service', 'services:\n  - name: a\n    listen: 127.0.0.1:1\n    name: b\n', ['c.yaml:4:5: YAML syntax error: key "name" appears twice in one mapping']],
  ['JSON duplicate key', '{ "services": [],\n  "services": [] }', ['c.json:2:3: JSON error: key "services" appears twice in one mapping']],
  ['JSON cut short', '{ "services": [', ['c.json:1:16: JSON syntax error: Unexpected end of JSON input']],
  ['YAML alias expansion bomb', 'a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n', [
    'c.yaml: YAML error: Excessive alias count indicates a resource exhaustion attack (aliases may expand to at most 100 nodes; see "Limits" in docs/configuration.md)',
  ]],
  ['a __proto__ key is just an unknown key', '{ "__proto__": { "services": [] }, "services": [] }', [
    'c.json: services: expected at least 1 entry, got 0',
    'c.json: unknown key "__proto__" (expected one of: admin, workers, log, accessLog, resolvers, listeners, services)',
  ]],
  ['JSON file, schema error', '{ "services": [{ "name": "a", "listen": true, "backends": [] }] }', [
    'c.json: services[0].listen: expected an address HOST:PORT or a port, got the boolean true',
    'c.json: services[0].backends: expected at least 1 entry, got 0',
  ]],

  // --- unknown keys at each level
  ['unknown top-level key', `servics: []\n${proxy()}`, ['c.yaml: unknown key "servics" (did you mean "services"?)']],
  ['unknown admin key', `admin: { listen: 127.0.0.1:9900, tokn: x }\n${proxy()}`, ['c.yaml: admin: unknown key "tokn" (did you mean "token"?)']],
  ['misspelt service key', proxy('tiemouts: { connect: 1s }'), ['c.yaml: services[0]: unknown key "tiemouts" (did you mean "timeouts"?)']],
  ['wrong case', proxy('hashkey: source-ip'), ['c.yaml: services[0]: unknown key "hashkey" (did you mean "hashKey"?)']],
  ['snake case', proxy('table_size: 251'), ['c.yaml: services[0]: unknown key "table_size" (did you mean "tableSize"?)']],
  ['dsr key in a proxy service', proxy('dscp: 10'), ['c.yaml: services[0]: unknown key "dscp" in a mode: proxy service (it applies only to mode: dsr)']],
  ['proxy key in a dsr service', dsr('dscp: 10, balance: ring'), ['c.yaml: services[0]: unknown key "balance" in a mode: dsr service (it applies only to mode: proxy)']],
  ['unknown timeouts key', proxy('timeouts: { connct: 1s }'), ['c.yaml: services[0].timeouts: unknown key "connct" (did you mean "connect"?)']],
  ['unknown backend key', proxy('', '[{ name: pg1, address: 127.0.0.1:5432, wieght: 2 }]'), ['c.yaml: services[0].backends[0]: unknown key "wieght" (did you mean "weight"?)']],
  ['maxConnections on a dsr backend', dsr('dscp: 10', '[{ name: be1, address: 198.51.100.1, maxConnections: 5 }]'), [
    'c.yaml: services[0].backends[0]: unknown key "maxConnections" in a backend of a mode: dsr service (it applies only to backends of mode: proxy; the DSR director keeps no connection state)',
  ]],

  // --- each field wrong in turn
  ['missing name', 'services:\n  - { listen: 127.0.0.1:1, backends: [{ name: a, address: h:1 }] }\n', ['c.yaml: services[0].name: missing: expected a name']],
  ['bad name', 'services:\n  - { name: "my db", listen: 127.0.0.1:1, backends: [{ name: a, address: h:1 }] }\n', [
    'c.yaml: services[0].name: expected a name of at most 63 letters, digits, ".", "_" or "-", starting with a letter or digit, got "my db"',
  ]],
  ['bad mode', proxy('mode: tcp'), ['c.yaml: services[0].mode: expected one of proxy, dsr, nat, got "tcp"']],
  ['bad balance', proxy('balance: magelv'), ['c.yaml: services[0].balance: expected one of maglev, ring, rendezvous, roundrobin, leastconn, got "magelv" (did you mean "maglev"?)']],
  ['bad hashKey', proxy('hashKey: dest-ip'), ['c.yaml: services[0].hashKey: expected one of source-ip, source-ip-port, sni, got "dest-ip"']],
  ['bad flowHash', proxy('flowHash: crc32'), ['c.yaml: services[0].flowHash: expected one of murmur3, jhash, got "crc32"']],
  ['negative hashSeed', proxy('hashSeed: -1'), ['c.yaml: services[0].hashSeed: must be at least 0, got -1']],
  ['hashSeed over 32 bits', proxy('hashSeed: 4294967296'), ['c.yaml: services[0].hashSeed: must be at most 4294967295, got 4294967296']],
  ['non-prime tableSize', proxy('tableSize: 65536'), ['c.yaml: services[0].tableSize: must be a prime number (Maglev needs one), got 65536; nearest primes: 65521 or 65537']],
  ['tableSize as text', proxy('tableSize: "251"'), ['c.yaml: services[0].tableSize: expected a prime number, got "251"']],
  ['tableSize below backends', proxy('tableSize: 2', '[{ name: a, address: h:1 }, { name: b, address: h:2 }, { name: c, address: h:3 }]'), [
    'c.yaml: services[0].tableSize: must be at least the number of backends (3), got 2',
  ]],
  ['tableSize with ring', proxy('balance: ring, tableSize: 251'), ['c.yaml: services[0].tableSize: applies only to balance: maglev; this service uses balance: ring']],
  ['hashKey with roundrobin', proxy('balance: roundrobin, hashKey: source-ip'), [
    'c.yaml: services[0].hashKey: applies only to hashing balancers (maglev, ring, rendezvous); this service uses balance: roundrobin',
  ]],
  ['balanceFactor of 1', proxy('balanceFactor: 1'), ['c.yaml: services[0].balanceFactor: must be greater than 1, got 1']],
  ['maxConnections 0', proxy('maxConnections: 0'), ['c.yaml: services[0].maxConnections: must be at least 1, got 0']],
  ['retries too many', proxy('retries: 11'), ['c.yaml: services[0].retries: must be at most 10, got 11']],
  ['retries fractional', proxy('retries: 1.5'), ['c.yaml: services[0].retries: expected an integer 0–10, got the number 1.5']],
  ['timeouts not a mapping', proxy('timeouts: 3s'), ['c.yaml: services[0].timeouts: expected a mapping, got "3s"']],

  // --- workers (processes sharing the listeners)
  ['workers 0', `workers: 0\n${proxy()}`, ['c.yaml: workers: must be at least 1, got 0']],
  ['workers too many', `workers: 257\n${proxy()}`, ['c.yaml: workers: must be at most 256, got 257']],
  ['workers fractional', `workers: 1.5\n${proxy()}`, ['c.yaml: workers: expected an integer 1–256 or "auto", got the number 1.5']],
  ['workers quoted', `workers: "4"\n${proxy()}`, ['c.yaml: workers: expected an integer 1–256 or "auto", got "4" (write the number without quotes)']],
  ['workers Auto', `workers: Auto\n${proxy()}`, ['c.yaml: workers: expected an integer 1–256 or "auto", got "Auto" (write auto in lower case, without spaces)']],
  ['workers as a word', `workers: many\n${proxy()}`, ['c.yaml: workers: expected an integer 1–256 or "auto", got "many"']],
  ['workers empty', `workers:\n${proxy()}`, ['c.yaml: workers: expected an integer 1–256 or "auto", got an empty value (null)']],
  ['misspelt workers', `wokers: 2\n${proxy()}`, ['c.yaml: unknown key "wokers" (did you mean "workers"?)']],

  // --- durations
  ['duration without unit', proxy('timeouts: { connect: 3000 }'), [
    'c.yaml: services[0].timeouts.connect: expected a duration with a unit such as "500ms" or "3s", got the number 3000 (a bare number has no unit)',
  ]],
  ['duration garbage', proxy('timeouts: { idle: 5 minutes }'), ['c.yaml: services[0].timeouts.idle: expected a duration such as "500ms", "3s", "30m", "1h" or "1m30s", got "5 minutes"']],
  ['zero queue timeout', proxy('timeouts: { queue: 0s }'), ['c.yaml: services[0].timeouts.queue: must be longer than 0, got "0s"']],
  ['duration out of order', proxy('timeouts: { drain: 30s1m }'), ['c.yaml: services[0].timeouts.drain: "30s1m": units must go from the largest down (h, m, s, ms), each at most once']],

  // --- addresses
  ['listen on a host name', proxy().replace('127.0.0.1:6432', 'localhost:6432'), [
    'c.yaml: services[0].listen: expected an IP address (v4 or v6), got the host name "localhost": listen addresses are not resolved',
  ]],
  ['IPv6 without brackets', proxy('', '[{ name: a, address: "::1:5432" }]'), ['c.yaml: services[0].backends[0].address: "::1:5432": write an IPv6 address in brackets, e.g. "[::1]:5432"']],
  ['port missing', proxy('', '[{ name: a, address: 127.0.0.1 }]'), ['c.yaml: services[0].backends[0].address: "127.0.0.1": the port is missing (expected 127.0.0.1:PORT)']],
  ['port out of range', proxy('', '[{ name: a, address: "db:70000" }]'), ['c.yaml: services[0].backends[0].address: port must be an integer 1–65535, got "70000"']],
  ['bad admin listen', `admin: { listen: "*:9900" }\n${proxy()}`, ['c.yaml: admin.listen: expected an IP address (v4 or v6), got "*": listen addresses are not resolved']],

  // --- backends
  ['no backends', proxy('', '[]'), ['c.yaml: services[0].backends: expected at least 1 entry, got 0']],
  ['backend not a mapping', proxy('', '[pg1]'), ['c.yaml: services[0].backends[0]: expected a mapping, got "pg1"']],
  ['backend without address', proxy('', '[{ name: a }]'), ['c.yaml: services[0].backends[0].address: missing: expected an address HOST:PORT']],
  ['weight 0', proxy('', '[{ name: a, address: h:1, weight: 0 }]'), ['c.yaml: services[0].backends[0].weight: must be greater than 0, got 0']],
  ['weight as text', proxy('', '[{ name: a, address: h:1, weight: heavy }]'), ['c.yaml: services[0].backends[0].weight: expected a number > 0, got "heavy"']],
  ['backend maxConnections fractional', proxy('', '[{ name: a, address: h:1, maxConnections: 2.5 }]'), [
    'c.yaml: services[0].backends[0].maxConnections: expected a positive integer, got the number 2.5',
  ]],
  ['duplicate backend names', proxy('', '[{ name: a, address: h:1 }, { name: a, address: h:2 }]'), ['c.yaml: services[0].backends[1].name: duplicate backend name "a" (also backends[0])']],

  // --- dsr
  ['dsr without dscp', dsr(), ['c.yaml: services[0].dscp: missing: expected an integer 1–63']],
  ['dscp 0', dsr('dscp: 0'), ['c.yaml: services[0].dscp: must be at least 1, got 0']],
  ['dscp 64', dsr('dscp: 64'), ['c.yaml: services[0].dscp: must be at most 63, got 64']],
  ['IPv6 VIP', dsr('dscp: 10').replace('192.0.2.10:80', '"[2001:db8::1]:80"'), ['c.yaml: services[0].vip: expected an IPv4 address, got the IPv6 address "2001:db8::1"']],
  ['dsr backend by host name', dsr('dscp: 10', '[{ name: be1, address: be1.example }]'), ['c.yaml: services[0].backends[0].address: expected an IPv4 address, got the host name "be1.example"']],
  ['dsr backend on another port', dsr('dscp: 10', '[{ name: be1, address: 198.51.100.1:8080 }]'), [
    'c.yaml: services[0].backends[0].address: port 8080 differs from the VIP port 80: DSR does not rewrite ports (leave the port out)',
  ]],
  ['flowHash on dsr', dsr('dscp: 10, flowHash: jhash'), ['c.yaml: services[0]: unknown key "flowHash" in a mode: dsr service (it applies only to mode: proxy)']],

  // --- across services
  ['duplicate service names', `services:
  - { name: a, listen: 127.0.0.1:1, backends: [{ name: x, address: h:1 }] }
  - { name: a, listen: 127.0.0.1:2, backends: [{ name: x, address: h:1 }] }
`, ['c.yaml: services[1].name: duplicate service name "a" (also services[0])']],
  ['same listen address twice', `services:
  - { name: a, listen: 127.0.0.1:80, backends: [{ name: x, address: h:1 }] }
  - { name: b, listen: 0.0.0.0:80, backends: [{ name: x, address: h:1 }] }
`, ['c.yaml: services[1].listen: 0.0.0.0:80 overlaps 127.0.0.1:80 of service "a" (services[0].listen)']],
  ['service on the admin address', `admin: { listen: 127.0.0.1:9900 }
services:
  - { name: a, listen: 127.0.0.1:9900, backends: [{ name: x, address: h:1 }] }
`, ['c.yaml: services[0].listen: 127.0.0.1:9900 overlaps 127.0.0.1:9900 of admin']],
  ['the same VIP twice', `services:
  - { name: a, mode: dsr, vip: 192.0.2.1:80, dscp: 9, backends: [{ name: x, address: 10.0.0.1 }] }
  - { name: b, mode: dsr, vip: 192.0.2.1:80, dscp: 9, backends: [{ name: x, address: 10.0.0.2 }] }
`, ['c.yaml: services[1].vip: 192.0.2.1:80 overlaps 192.0.2.1:80 of service "a" (services[0].vip)']],
  ['one dscp for two VIPs', `services:
  - { name: a, mode: dsr, vip: 192.0.2.1:80, dscp: 9, backends: [{ name: x, address: 10.0.0.1 }] }
  - { name: b, mode: dsr, vip: 192.0.2.2:80, dscp: 9, backends: [{ name: x, address: 10.0.0.1 }] }
`, ['c.yaml: services[1].dscp: dscp 9 already marks VIP 192.0.2.1 (services[0]); each DSCP value must identify one VIP']],

  ['clashes across services are reported alongside problems inside one', `admin: { listen: 127.0.0.1:80 }
services:
  - { name: a, listen: 127.0.0.1:80, retries: -1, backends: [{ name: x, address: h:1 }] }
  - { name: a, listen: "[::]:80", backends: [] }
  - { name: d, mode: dsr, vip: 192.0.2.1:80, dscp: 9, backends: [{ name: x, address: h }] }
  - { name: e, mode: dsr, vip: 192.0.2.2:80, dscp: 9, backends: [{ name: x, address: 10.0.0.1 }] }
`, [
    'c.yaml: services[0].retries: must be at least 0, got -1',
    'c.yaml: services[1].backends: expected at least 1 entry, got 0',
    'c.yaml: services[2].backends[0].address: expected an IPv4 address, got the host name "h"',
    'c.yaml: services[1].name: duplicate service name "a" (also services[0])',
    'c.yaml: services[3].dscp: dscp 9 already marks VIP 192.0.2.1 (services[2]); each DSCP value must identify one VIP',
    'c.yaml: services[0].listen: 127.0.0.1:80 overlaps 127.0.0.1:80 of admin',
    'c.yaml: services[1].listen: [::]:80 overlaps 127.0.0.1:80 of admin',
  ]],

  // --- many problems at once: all of them, in document order of the schema
  ['several problems in one file', `services:
  - name: pg
    listen: 127.0.0.1:6432
    balance: ring
    retries: -1
    tiemouts: {}
    backends:
      - { name: pg1, address: 127.0.0.1:5432 }
      - { name: pg2, address: 127.0.0.1 }
`, [
    'c.yaml: services[0].retries: must be at least 0, got -1',
    'c.yaml: services[0].backends[1].address: "127.0.0.1": the port is missing (expected 127.0.0.1:PORT)',
    'c.yaml: services[0]: unknown key "tiemouts" (did you mean "timeouts"?)',
  ]],
  ['rules across fields are reported alongside bad values in the same service', `services:
  - name: pg
    listen: 127.0.0.1:99999
    balance: ring
    tableSize: 251
    onDown: close
    timeouts: { connect: 3 }
    backends:
      - { name: pg1, address: "10.0.0.1:5432" }
      - { name: pg1, address: "10.0.0.2:70000" }
  - mode: dsr
    name: web
    vip: 192.0.2.1:80
    dscp: 99
    tableSize: 250
    backends:
      - { name: a, address: "10.0.0.1:81" }
      - { name: a, address: "10.0.0.2" }
`, [
    'c.yaml: services[0].listen: port must be an integer 0–65535, got "99999"',
    'c.yaml: services[0].timeouts.connect: expected a duration with a unit such as "500ms" or "3s", got the number 3 (a bare number has no unit)',
    'c.yaml: services[0].backends[1].address: port must be an integer 1–65535, got "70000"',
    'c.yaml: services[0].tableSize: applies only to balance: maglev; this service uses balance: ring',
    'c.yaml: services[0].onDown: applies only with a healthCheck (without one no backend ever goes down)',
    'c.yaml: services[0].backends[1].name: duplicate backend name "pg1" (also backends[0])',
    'c.yaml: services[1].dscp: must be at most 63, got 99',
    'c.yaml: services[1].tableSize: must be a prime number (Maglev needs one), got 250; nearest primes: 241 or 251',
    'c.yaml: services[1].backends[1].name: duplicate backend name "a" (also backends[0])',
    'c.yaml: services[1].backends[0].address: port 81 differs from the VIP port 80: DSR does not rewrite ports (leave the port out)',
  ]],
];

describe('bad configuration files', () => {
  it.each(CASES)('%s', (_title, text, expected) => {
    const file = text.trimStart().startsWith('{') ? 'c.json' : 'c.yaml';
    expect(problemsOf(text, file)).toEqual(expected);
  });

  it('has a case for every rule this table is meant to cover', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(25);
  });

  it('a missing file is one clear line', async () => {
    await expect(loadConfig('/nonexistent/l4lb.yaml')).rejects.toThrow(new ConfigError('/nonexistent/l4lb.yaml', [{ path: '', message: 'cannot read the file: it does not exist' }]));
    await expect(loadConfig('/nonexistent/l4lb.yaml')).rejects.toMatchObject({ message: '/nonexistent/l4lb.yaml: cannot read the file: it does not exist' });
  });

  it('a directory is one clear line', async () => {
    await expect(loadConfig(new URL('./fixtures/config/', import.meta.url).pathname)).rejects.toMatchObject({
      message: expect.stringMatching(/fixtures\/config\/: cannot read the file: it is a directory$/),
    });
  });
});
