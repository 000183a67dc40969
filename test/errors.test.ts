/**
 * src/errors.ts: every class keeps its code and fields across IPC (JSON and the structured-clone
 * algorithm node:cluster uses with serialization 'advanced'), problemsOf words refusals one line each,
 * and docs/errors.md has a row for every code.
 */
import { readFileSync } from 'node:fs';
import { deserialize, serialize } from 'node:v8';
import { describe, expect, it } from 'vitest';
import {
  CheckOptionError,
  ClosedError,
  ConfigError,
  fromWire,
  isLbErrorWire,
  LB_ERROR_CODES,
  LbError,
  ListenError,
  listenFailureOf,
  problemsOf,
  RefusedError,
  ResolveError,
  UnknownBackendError,
  UnknownServiceError,
  type LbErrorWire,
} from '../src/errors.js';

/** One of each class, with fields that exercise every branch of its wire form. */
const SAMPLES: readonly LbError[] = [
  new LbError('LB_ERR_NO_BACKENDS', 'no backends given'),
  new RefusedError('LB_ERR_CONFIG', ['worker 1: services[0].tiemouts: unknown key', 'worker 2: cannot listen']),
  new ConfigError('c.yaml', [
    { path: 'services[0].listen', message: 'the port is missing' },
    { path: '', message: 'YAML syntax error: bad indentation', line: 3, column: 7 },
  ]),
  new ResolveError({ where: 'services[0] (web) backends[1] (b)', host: 'db.invalid', cause: 'ENOTFOUND' }),
  new ListenError({ where: 'services[0] (web)', address: '[::1]:80', failure: 'address-in-use', cause: 'EADDRINUSE' }),
  new UnknownServiceError({ service: 'wbe', known: ['web', 'pg'] }),
  new UnknownServiceError({ service: 'web', known: [] }),
  new UnknownBackendError({ service: 'web', backend: 'c', known: ['a', 'b'] }),
  new ClosedError({ component: 'balancer' }, 'the balancer is closing: configuration not applied'),
  new CheckOptionError({ option: 'expectStatus', detail: '"9xx" is not a status (100-599), "Nxx", or a range "A-B"' }),
];

/** What a receiver can observe of an error: class, code, name, message, lines and own fields. */
function observed(error: LbError): Record<string, unknown> {
  return { class: error.constructor, ...Object.fromEntries(Object.entries(error)), message: error.message, name: error.name, lines: error.lines() };
}

const viaJson = (wire: LbErrorWire): unknown => JSON.parse(JSON.stringify(wire));
const viaStructuredClone = (wire: LbErrorWire): unknown => deserialize(serialize(wire));

describe('toWire / fromWire', () => {
  it.each(SAMPLES.map((error) => [error.name, error] as const))('%s survives JSON and structured clone with its class, code and fields', (_name, error) => {
    for (const carry of [viaJson, viaStructuredClone]) {
      const received = carry(error.toWire());
      expect(isLbErrorWire(received)).toBe(true);
      const rebuilt = fromWire(received as LbErrorWire);
      expect(rebuilt).toBeInstanceOf(error.constructor);
      expect(observed(rebuilt)).toEqual(observed(error));
      expect(rebuilt.toWire()).toEqual(error.toWire());
    }
  });

  it('puts the facts in fields and the lines in problems', () => {
    expect(new UnknownBackendError({ service: 'web', backend: 'c', known: ['a', 'b'] }).toWire()).toEqual({
      code: 'LB_ERR_UNKNOWN_BACKEND',
      name: 'UnknownBackendError',
      message: 'service "web" has no backend "c" (backends: a, b)',
      fields: { service: 'web', backend: 'c', known: ['a', 'b'] },
    });
    const config = new ConfigError('c.yaml', [{ path: 'services', message: 'missing' }]).toWire();
    expect(config.problems).toEqual(['c.yaml: services: missing']);
    expect(config.fields).toEqual({ file: 'c.yaml', issues: [{ path: 'services', message: 'missing' }] });
  });

  it('rebuilds a subclass it does not know as an LbError (or a RefusedError) with the sender\'s code, name and message', () => {
    class ElsewhereError extends LbError {
      constructor(readonly offset: number) {
        super('LB_ERR_PROXY_MALFORMED', `PROXY header: bad byte (at byte ${offset})`);
        this.name = 'ElsewhereError';
      }
    }
    const plain = fromWire(new ElsewhereError(3).toWire());
    expect(plain.constructor).toBe(LbError);
    expect([plain.code, plain.name, plain.message]).toEqual(['LB_ERR_PROXY_MALFORMED', 'ElsewhereError', 'PROXY header: bad byte (at byte 3)']);

    class ReloadRefusedElsewhere extends RefusedError {
      constructor(problems: readonly string[]) {
        super('LB_ERR_CONFIG', problems);
        this.name = 'ReloadRefusedElsewhere';
      }
    }
    const refused = fromWire(new ReloadRefusedElsewhere(['a', 'b']).toWire());
    expect(refused).toBeInstanceOf(RefusedError);
    expect([refused.name, refused.lines()]).toEqual(['ReloadRefusedElsewhere', ['a', 'b']]);
  });

  it('falls back to a plain LbError, code and message kept, when the fields do not fit the class', () => {
    const wire: LbErrorWire = { code: 'LB_ERR_RESOLVE', name: 'ResolveError', message: 'x: cannot resolve "h" (E)', fields: { where: 'x', host: 7 } };
    const rebuilt = fromWire(wire);
    expect(rebuilt.constructor).toBe(LbError);
    expect([rebuilt.code, rebuilt.name, rebuilt.message]).toEqual(['LB_ERR_RESOLVE', 'ResolveError', 'x: cannot resolve "h" (E)']);
    // A known name sent with another code is not trusted to be that class either.
    expect(fromWire({ ...new ClosedError({ component: 'balancer' }, 'closing').toWire(), code: 'LB_ERR_ADMIN' }).constructor).toBe(LbError);
  });

  it('refuses shapes that are not a wire error', () => {
    for (const value of [null, 'LB_ERR_CONFIG', {}, { code: 'LB_ERR_NOPE', name: 'LbError', message: 'm', fields: {} }, { code: 'LB_ERR_CONFIG', name: 'LbError', message: 'm' }, { code: 'LB_ERR_CONFIG', name: 'LbError', message: 'm', fields: {}, problems: [1] }]) {
      expect(isLbErrorWire(value)).toBe(false);
    }
  });
});

describe('the classes', () => {
  it('word their messages as the raisers always have', () => {
    expect(new ResolveError({ where: 'services[0] (web)', host: 'db', cause: 'ENOTFOUND' }).message).toBe('services[0] (web): cannot resolve "db" (ENOTFOUND)');
    expect(new ListenError({ where: 'services[0] (web)', address: '127.0.0.1:80', failure: 'address-in-use', cause: 'EADDRINUSE' }).message).toBe('services[0] (web): cannot listen on 127.0.0.1:80: address already in use');
    expect(new ListenError({ where: 'admin.listen', address: '127.0.0.1:1', failure: 'permission-denied', cause: 'EACCES' }).message).toBe('admin.listen: cannot listen on 127.0.0.1:1: permission denied');
    expect(new ListenError({ where: 'admin.listen', address: '192.0.2.1:9', failure: 'other', cause: 'EADDRNOTAVAIL' }).message).toBe('admin.listen: cannot listen on 192.0.2.1:9: EADDRNOTAVAIL');
    expect(new UnknownServiceError({ service: 'x', known: [] }).message).toBe('no service "x" (services: none)');
    expect(new CheckOptionError({ option: 'path', detail: "must start with '/'" }).message).toBe("http health check path must start with '/'");
    expect(new CheckOptionError({ option: 'user', detail: 'must be 1..63 bytes' }).message).toBe('pgsql health check user must be 1..63 bytes');
  });

  it('CheckOptionError words the problem under the name the caller uses for the option', () => {
    expect(new CheckOptionError({ option: 'expectStatus', detail: '"9xx" is not a status' }).describe('expect')).toBe('expect: "9xx" is not a status');
    expect(new CheckOptionError({ option: 'database', detail: 'must be 1..63 bytes' }).describe('database')).toBe('database must be 1..63 bytes');
  });

  it('maps listen(2) errno codes to failures', () => {
    expect(['EADDRINUSE', 'EACCES', 'EPERM', 'EADDRNOTAVAIL', undefined].map(listenFailureOf)).toEqual(['address-in-use', 'permission-denied', 'permission-denied', 'other', 'other']);
  });

  it('ConfigError is an LbError with code LB_ERR_CONFIG whose message is its lines', () => {
    const error = new ConfigError('c.yaml', [{ path: '', message: 'bad', line: 2 }]);
    expect(error).toBeInstanceOf(LbError);
    expect(error.code).toBe('LB_ERR_CONFIG');
    expect(error.problems).toEqual(['c.yaml:2:1: bad']);
    expect(error.message).toBe(error.lines().join('\n'));
  });
});

describe('problemsOf', () => {
  it('gives one line per problem: a refusal\'s lines, an LbError\'s message, otherwise an internal error', () => {
    expect(problemsOf(new ConfigError('c.yaml', [{ path: 'a', message: 'x' }, { path: 'b', message: 'y' }]))).toEqual(['c.yaml: a: x', 'c.yaml: b: y']);
    expect(problemsOf(new RefusedError('LB_ERR_CONFIG', ['one', 'two']))).toEqual(['one', 'two']);
    expect(problemsOf(new LbError('LB_ERR_LISTEN', 'cannot listen'))).toEqual(['cannot listen']);
    expect(problemsOf(new TypeError('x is undefined'))).toEqual(['internal error: x is undefined']);
    expect(problemsOf('thrown text')).toEqual(['internal error: thrown text']);
  });
});

describe('docs/errors.md', () => {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');

  it('has a row for every code, and names no code that does not exist', () => {
    const rows = new Set([...doc.matchAll(/^\| `(LB_ERR_[A-Z_]+)` \|/gm)].map((match) => match[1]));
    expect([...rows]).toEqual([...LB_ERROR_CODES]);
    const mentioned = new Set(doc.match(/LB_ERR_[A-Z_]+/g));
    expect([...mentioned].filter((code) => !(LB_ERROR_CODES as readonly string[]).includes(code))).toEqual([]);
  });
});
