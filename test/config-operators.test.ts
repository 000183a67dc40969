/**
 * Configuration as operators write it: a listen port alone (nginx's `listen 6432`), `${VAR}` and
 * `${VAR:-default}` from the environment (HAProxy's "${VAR}"), and the admin token from a file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, type ProxyServiceConfig } from '../src/config/index.js';
import { problemsOf } from './helpers/config-problems.js';

const dir = mkdtempSync(join(tmpdir(), 'l4lb-config-operators-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const service = (listen: string): string => `services:\n  - { name: pg, listen: ${listen}, backends: [{ name: a, address: "10.0.0.1:5432" }] }\n`;
const proxy = (text: string, env: Record<string, string> = {}, file = 'c.yaml'): ProxyServiceConfig => parseConfig(text, file, { env }).services[0] as ProxyServiceConfig;

describe('listen: a port alone', () => {
  it.each([
    ['6432', { host: '0.0.0.0', port: 6432 }],
    ['":6432"', { host: '0.0.0.0', port: 6432 }],
    ['"[::]:6432"', { host: '::', port: 6432 }],
    ['127.0.0.1:6432', { host: '127.0.0.1', port: 6432 }],
  ])('listen: %s', (listen, endpoint) => {
    expect(proxy(service(listen)).listen).toEqual([endpoint]);
  });

  it('admin.listen too, and a bad one says what is accepted', () => {
    expect(parseConfig(`admin: { listen: 9900, token: "0123456789abcdef" }\n${service('6432')}`, 'c.yaml').admin?.listen).toEqual({ host: '0.0.0.0', port: 9900 });
    expect(problemsOf(service('70000'))).toEqual(['c.yaml: services[0].listen: port must be an integer 0–65535, got "70000"']);
    expect(problemsOf(service('[]'))).toEqual(['c.yaml: services[0].listen: expected at least one address, got an empty list']);
    expect(problemsOf(service('[6432, true]'))).toEqual(['c.yaml: services[0].listen[1]: expected an address HOST:PORT or a port, got the boolean true']);
  });

  it('a port alone overlaps another service on the same port', () => {
    expect(problemsOf(`${service('6432')}  - { name: b, listen: 127.0.0.1:6432, backends: [{ name: a, address: "10.0.0.1:5432" }] }\n`)).toEqual([
      'c.yaml: services[1].listen: 127.0.0.1:6432 overlaps 0.0.0.0:6432 of service "pg" (services[0].listen)',
    ]);
  });
});

describe('${VAR} from the environment', () => {
  const text = `services:
  - name: pg
    listen: "\${LISTEN:-127.0.0.1:6432}"
    tableSize: \${TABLE_SIZE}
    backends:
      - { name: pg1, address: "\${DB_HOST}:5432", weight: "\${WEIGHT:-2}" }
`;

  it('expands ${VAR} and ${VAR:-default}; a value that is one reference to a number is that number', () => {
    const config = proxy(text, { DB_HOST: 'db1.example', TABLE_SIZE: '251' });
    expect(config.listen).toEqual([{ host: '127.0.0.1', port: 6432 }]);
    expect(config.tableSize).toBe(251);
    expect(config.backends[0]).toMatchObject({ address: { host: 'db1.example', port: 5432 }, weight: 2 });
    expect(proxy(text, { DB_HOST: 'db2', TABLE_SIZE: '251', LISTEN: '[::1]:7000', WEIGHT: '' }).backends[0].weight).toBe(2); // empty: the default, as the shell's :-
    expect(proxy(text, { DB_HOST: 'db2', TABLE_SIZE: '251', LISTEN: '[::1]:7000' }).listen).toEqual([{ host: '::1', port: 7000 }]);
  });

  it('an unset variable: one problem naming it and where it is used, alongside the other problems', () => {
    expect(problemsOf(text.replace('pg1', 'pg 1'), 'c.yaml')).toEqual([
      'c.yaml: services[0].tableSize: ${TABLE_SIZE} is not set in the environment (set it, or give a default: ${TABLE_SIZE:-VALUE})',
      'c.yaml: services[0].backends[0].address: ${DB_HOST} is not set in the environment (set it, or give a default: ${DB_HOST:-VALUE})',
      'c.yaml: services[0].backends[0].name: expected a name of at most 63 letters, digits, ".", "_" or "-", starting with a letter or digit, got "pg 1"',
    ]);
  });

  it('keys and text that is not a reference stay as written', () => {
    expect(problemsOf(service('127.0.0.1:6432').replace('10.0.0.1:5432', '$DB:5432'), 'c.yaml')).toEqual(['c.yaml: services[0].backends[0].address: "$DB" is neither an IP address nor a valid host name']);
  });
});

describe('admin.tokenFile', () => {
  it('reads the token from a file next to the configuration, without its line end', () => {
    writeFileSync(join(dir, 'token'), 'file-token-0123456789\n');
    const config = parseConfig(`admin: { listen: "0.0.0.0:9900", tokenFile: token }\n${service('6432')}`, join(dir, 'l4lb.yaml'));
    expect(config.admin).toEqual({ listen: { host: '0.0.0.0', port: 9900 }, token: 'file-token-0123456789', tokenFile: join(dir, 'token') });
  });

  it('a missing or weak token file, or both keys: a problem at admin.tokenFile', () => {
    const file = join(dir, 'l4lb.yaml');
    writeFileSync(join(dir, 'short'), 'short\n');
    const lines = (admin: string): string[] => {
      try {
        parseConfig(`admin: ${admin}\n${service('6432')}`, file);
      } catch (error) {
        if (error instanceof ConfigError) return error.lines();
        throw error;
      }
      return [];
    };
    expect(lines('{ listen: 127.0.0.1:9900, tokenFile: nope }')).toEqual([`${file}: admin.tokenFile: cannot read "${join(dir, 'nope')}": it does not exist`]);
    expect(lines('{ listen: 127.0.0.1:9900, tokenFile: short }')).toEqual([`${file}: admin.tokenFile: the token in "${join(dir, 'short')}" must be at least 16 characters long, got 5`]);
    expect(lines('{ listen: 127.0.0.1:9900, tokenFile: short, token: "0123456789abcdef" }')).toEqual([`${file}: admin.tokenFile: give token or tokenFile, not both`]);
  });

  it('not read when told not to (check --no-resolve, away from the host)', () => {
    const config = parseConfig(`admin: { listen: 127.0.0.1:9900, tokenFile: /no/such/token }\n${service('6432')}`, 'c.yaml', { readTokenFile: false });
    expect(config.admin).toEqual({ listen: { host: '127.0.0.1', port: 9900 }, tokenFile: '/no/such/token' });
  });

  it('a token from the environment through ${VAR}', () => {
    expect(parseConfig(`admin: { listen: 9900, token: "\${ADMIN_TOKEN}" }\n${service('6432')}`, 'c.yaml', { env: { ADMIN_TOKEN: 'env-token-0123456789' } }).admin?.token).toBe('env-token-0123456789');
  });
});
