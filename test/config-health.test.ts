/**
 * Health and runtime-state configuration keys: `healthCheck` (HAProxy's defaults when omitted),
 * `onDown`, backend `backup`/`slowStart`/`state`, and `admin.token` (required beyond loopback). Each
 * bad file is a row with every line `l4lb check` prints for it.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig, type ProxyServiceConfig } from '../src/config/index.js';
import { problemsOf } from './helpers/config-problems.js';

const proxy = (extra = '', backends = '[{ name: pg1, address: 127.0.0.1:5432 }, { name: pg2, address: 127.0.0.1:5433 }]'): string =>
  `services:\n  - { name: pg, listen: 127.0.0.1:6432, ${extra}${extra === '' ? '' : ', '}backends: ${backends} }\n`;


const serviceOf = (text: string): ProxyServiceConfig => parseConfig(text, 'c.yaml').services[0] as ProxyServiceConfig;

describe('healthCheck', () => {
  it('fills HAProxy defaults: tcp, inter 2s, timeout = inter, rise 2, fall 3, init-state up', () => {
    expect(serviceOf(proxy('healthCheck: {}')).healthCheck).toEqual({ type: 'tcp', interval: 2000, timeout: 2000, rise: 2, fall: 3, initial: 'up' });
  });

  it('keeps every option it was given', () => {
    const service = serviceOf(proxy('healthCheck: { type: http, interval: 500ms, timeout: 300ms, rise: 1, fall: 2, initial: fully-down, path: /health, expect: "2xx-3xx" }, onDown: close'));
    expect(service.healthCheck).toEqual({ type: 'http', interval: 500, timeout: 300, rise: 1, fall: 2, initial: 'fully-down', path: '/health', expect: '2xx-3xx' });
    expect(service.onDown).toBe('close');
    expect(serviceOf(proxy('healthCheck: { type: pgsql, user: monitor, database: app }')).healthCheck).toMatchObject({ type: 'pgsql', user: 'monitor', database: 'app' });
  });

  it('is absent when not configured (every backend then counts as up), and so is onDown', () => {
    const service = serviceOf(proxy());
    expect(service.healthCheck).toBeUndefined();
    expect(service.onDown).toBeUndefined();
  });
});

describe('backends: backup, slowStart, state', () => {
  it('are parsed and absent unless given', () => {
    const service = serviceOf(proxy('', '[{ name: a, address: 127.0.0.1:1, backup: true, slowStart: 30s, state: draining }, { name: b, address: 127.0.0.1:2 }]'));
    expect(service.backends[0]).toMatchObject({ backup: true, slowStart: 30000, state: 'draining' });
    expect(service.backends[1]).toEqual({ name: 'b', address: { host: '127.0.0.1', port: 2 }, weight: 1 });
  });
});

describe('admin', () => {
  it('accepts a loopback listen without a token, and any listen with one', () => {
    expect(parseConfig(`admin: { listen: "[::1]:9900" }\n${proxy()}`, 'c.yaml').admin).toEqual({ listen: { host: '::1', port: 9900 } });
    expect(parseConfig(`admin: { listen: 0.0.0.0:9900, token: 0123456789abcdef }\n${proxy()}`, 'c.yaml').admin?.token).toBe('0123456789abcdef');
  });
});

const BAD: [string, string, string[]][] = [
  ['unknown check type', proxy('healthCheck: { type: https }'), ['c.yaml: services[0].healthCheck.type: expected one of tcp, redis, pgsql, mysql, http, got "https" (did you mean "http"?)']],
  ['misspelt check key', proxy('healthCheck: { intreval: 1s }'), ['c.yaml: services[0].healthCheck: unknown key "intreval" (did you mean "interval"?)']],
  ['interval without unit', proxy('healthCheck: { interval: 2 }'), ['c.yaml: services[0].healthCheck.interval: expected a duration with a unit such as "500ms" or "3s", got the number 2 (a bare number has no unit)']],
  ['rise 0, fall too big', proxy('healthCheck: { rise: 0, fall: 101 }'), [
    'c.yaml: services[0].healthCheck.rise: must be at least 1, got 0',
    'c.yaml: services[0].healthCheck.fall: must be at most 100, got 101',
  ]],
  ['http option on a redis check', proxy('healthCheck: { type: redis, path: /health }'), ['c.yaml: services[0].healthCheck.path: applies only to type: http; this check is type: redis']],
  ['pgsql option on the default tcp check', proxy('healthCheck: { user: bob }'), ['c.yaml: services[0].healthCheck.user: applies only to type: pgsql; this check is type: tcp']],
  ['bad http path', proxy('healthCheck: { type: http, path: "health" }'), ["c.yaml: services[0].healthCheck.path: path must start with '/' and contain no spaces or control characters, got \"health\""]],
  ['bad expected status', proxy('healthCheck: { type: http, expect: "9xx" }'), ['c.yaml: services[0].healthCheck.expect: expect: "9xx" is not a status (100-599), "Nxx", or a range "A-B"']],
  ['bad element of an expected status list', proxy('healthCheck: { type: http, expect: [200, "2xx-1xx"] }'), ['c.yaml: services[0].healthCheck.expect: expect: "2xx-1xx" is not a status (100-599), "Nxx", or a range "A-B"']],
  ['bad Host header', proxy('healthCheck: { type: http, host: "a b" }'), ['c.yaml: services[0].healthCheck.host: host must be visible ASCII without spaces, got "a b"']],
  // The key comes from the error's option field: a bad path that mentions a host is still the path.
  ['absolute URL as a path', proxy('healthCheck: { type: http, path: "http://host/health" }'), ["c.yaml: services[0].healthCheck.path: path must start with '/' and contain no spaces or control characters, got \"http://host/health\""]],
  ['empty pgsql user', proxy('healthCheck: { type: pgsql, user: "" }'), ['c.yaml: services[0].healthCheck.user: user must be 1..63 bytes without NUL, got ""']],
  ['pgsql user that names a database', proxy(`healthCheck: { type: pgsql, user: "${'database'.repeat(8)}" }`), [`c.yaml: services[0].healthCheck.user: user must be 1..63 bytes without NUL, got "${'database'.repeat(7)}d..."`]],
  ['pgsql database too long', proxy(`healthCheck: { type: pgsql, database: "${'d'.repeat(64)}" }`), [`c.yaml: services[0].healthCheck.database: database must be 1..63 bytes without NUL, got "${'d'.repeat(57)}..."`]],
  ['onDown without a healthCheck', proxy('onDown: close'), ['c.yaml: services[0].onDown: applies only with a healthCheck (without one no backend ever goes down)']],
  ['bad onDown', proxy('healthCheck: {}, onDown: kill'), ['c.yaml: services[0].onDown: expected one of keep, close, got "kill"']],
  ['every backend a backup', proxy('', '[{ name: a, address: 127.0.0.1:1, backup: true }]'), ['c.yaml: services[0].backends: every backend is a backup: at least one must be a primary (backups serve only when no primary can)']],
  ['backup as a string', proxy('', '[{ name: a, address: 127.0.0.1:1, backup: "yes" }]'), ['c.yaml: services[0].backends[0].backup: expected true or false, got "yes"']],
  ['slowStart 0', proxy('', '[{ name: a, address: 127.0.0.1:1, slowStart: 0 }]'), ['c.yaml: services[0].backends[0].slowStart: must be longer than 0, got 0']],
  ['unknown state', proxy('', '[{ name: a, address: 127.0.0.1:1, state: maintainance }]'), ['c.yaml: services[0].backends[0].state: expected one of active, draining, maintenance, got "maintainance" (did you mean "maintenance"?)']],
  ['admin beyond loopback without a token', `admin: { listen: 0.0.0.0:9900 }\n${proxy()}`, [
    'c.yaml: admin.token: required when admin.listen is not a loopback address (got "0.0.0.0"): anyone who reaches it could drain backends; set a token or listen on 127.0.0.1',
  ]],
  ['short token', `admin: { listen: 127.0.0.1:9900, token: abc }\n${proxy()}`, ['c.yaml: admin.token: must be at least 16 characters long, got 3']],
  ['token with a space', `admin: { listen: 127.0.0.1:9900, token: "abc def ghi jkl mno" }\n${proxy()}`, ['c.yaml: admin.token: must be printable ASCII without spaces (it is sent as "Authorization: Bearer TOKEN")']],
  ['health keys in a dsr backend', 'services:\n  - { name: web, mode: dsr, vip: 192.0.2.10:80, dscp: 10, backends: [{ name: a, address: 198.51.100.1, backup: true }] }\n', [
    'c.yaml: services[0].backends[0]: unknown key "backup" in a backend of a mode: dsr service (it applies only to backends of mode: proxy; the DSR director keeps no connection state)',
  ]],
];

describe('bad files', () => {
  it.each(BAD)('%s', (_name, text, lines) => {
    expect(problemsOf(text)).toEqual(lines);
  });
});
