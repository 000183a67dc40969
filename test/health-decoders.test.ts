/**
 * The protocol halves of the checkers, on byte arrays: no sockets. Known answers per protocol,
 * garbage and truncation, and fast-check for "never throws, always decides at end of input".
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isLbError } from '../src/errors.js';
import { decodeHttpStatus, describeStatusRanges, hostHeader, httpRequest, parseExpectedStatus } from '../src/health/http.js';
import { decodeMysqlGreeting } from '../src/health/mysql.js';
import { decodePgsqlStartupReply, parseErrorFields, pgsqlStartupMessage } from '../src/health/pgsql.js';
import type { Verdict } from '../src/health/probe.js';
import { decodeRedisPong } from '../src/health/redis.js';

const FC = { seed: 42, numRuns: 300, verbose: 1 } as const;
const bytes = (text: string): Uint8Array => Buffer.from(text, 'latin1');
const hex = (text: string): Uint8Array => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const summary = (v: Verdict | undefined): string => (v === undefined ? 'more' : v.ok ? `ok: ${v.detail}` : `${v.kind}: ${v.reason}`);

const outcome = (v: Verdict | undefined): string => (v === undefined ? 'more' : v.ok ? 'ok' : v.kind);
type Decode = (r: Uint8Array, ended: boolean) => Verdict | undefined;

/** Feeds `reply` one byte at a time and returns the first verdict (as a server trickling bytes). */
function trickle(decode: Decode, reply: Uint8Array): Verdict | undefined {
  for (let n = 1; n <= reply.length; n++) {
    const v = decode(reply.subarray(0, n), false);
    if (v !== undefined) return v;
  }
  return decode(reply, true);
}

/**
 * The verdict on `reply` arriving in one piece (then the server closing), checked to agree in
 * outcome with the same bytes arriving one at a time. Reasons may differ: they quote what came.
 */
function judge(decode: Decode, reply: Uint8Array): string {
  const whole = decode(reply, false) ?? decode(reply, true);
  expect(outcome(trickle(decode, reply))).toBe(outcome(whole));
  return summary(whole);
}

describe('redis PING reply', () => {
  it.each([
    ['+PONG\r\n', 'ok: PONG'],
    ['+PONG\r\n+extra', 'ok: PONG'],
    ['-LOADING Redis is loading the dataset in memory\r\n', 'status: LOADING Redis is loading the dataset in memory'],
    ['-NOAUTH Authentication required.\r\n', 'status: NOAUTH Authentication required.'],
    ['+OK\r\n', 'invalid: expected +PONG, got "+OK"'],
    ['+PONGX\r\n', 'invalid: expected +PONG, got "+PONGX"'],
    ['$4\r\nPONG\r\n', 'invalid: not a Redis reply: "$4??PONG??"'],
    ['HTTP/1.1 400 Bad Request\r\n', 'invalid: not a Redis reply: "HTTP/1.1 400 Bad Request??"'],
    ['+PONG\rX', 'invalid: reply line not ended by CRLF'],
  ])('%j -> %s', (reply, expected) => {
    expect(judge(decodeRedisPong, bytes(reply))).toBe(expected);
  });

  it('waits for the line end, then reports a truncated reply as closed', () => {
    expect(decodeRedisPong(bytes('+PON'), false)).toBeUndefined();
    expect(decodeRedisPong(bytes('+PONG\r'), false)).toBeUndefined();
    expect(summary(decodeRedisPong(bytes('+PONG\r'), true))).toMatch(/^closed: /);
    expect(summary(decodeRedisPong(new Uint8Array(0), true))).toMatch(/^closed: /);
  });
});

describe('pgsql StartupMessage', () => {
  it('encodes protocol 3.0 and the user like HAProxy (reg-tests/checks/pgsql-check.vtc)', () => {
    // HAProxy's regtest pins these 23 bytes for "option pgsql-check user postgres".
    expect(Buffer.from(pgsqlStartupMessage({ user: 'postgres' })).toString('hex')).toBe('00000017000300007573657200706f7374677265730000');
  });

  it('defaults the user to l4lb and can name a database', () => {
    expect(Buffer.from(pgsqlStartupMessage()).subarray(8).toString('latin1')).toBe('user\0l4lb\0\0');
    const message = Buffer.from(pgsqlStartupMessage({ user: 'u', database: 'db' }));
    expect(message.readUInt32BE(0)).toBe(message.length);
    expect(message.subarray(8).toString('latin1')).toBe('user\0u\0database\0db\0\0');
  });

  it.each([{ user: '' }, { user: 'a\0b' }, { user: 'x'.repeat(64) }, { user: 'ok', database: '' }])('rejects %j with a typed error', (options) => {
    expect(() => pgsqlStartupMessage(options)).toThrow(expect.objectContaining({ code: 'LB_ERR_INVALID_ARGUMENT' }));
  });
});

function saslRequest(...mechanisms: string[]): Uint8Array {
  const list = Buffer.from(`${mechanisms.join('\0')}\0\0`, 'latin1');
  const head = Buffer.alloc(9);
  head[0] = 0x52;
  head.writeUInt32BE(8 + list.length, 1);
  head.writeUInt32BE(10, 5);
  return Buffer.concat([head, list]);
}

describe('pgsql reply', () => {
  const error = (fields: string): Uint8Array => {
    const body = Buffer.from(fields, 'latin1');
    const head = Buffer.alloc(5);
    head[0] = 0x45;
    head.writeUInt32BE(body.length + 4, 1);
    return Buffer.concat([head, body]);
  };

  it.each([
    // HAProxy's regtest vectors: AuthenticationOk passes, SASL (SCRAM-SHA-256) passes.
    ['520000000800000000', 'ok: authentication request: ok (trust)'],
    ['52000000170000000A534352414D2D5348412D3235360000', 'ok: authentication request: SASL (SCRAM-SHA-256)'],
    [saslRequest('SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'), 'ok: authentication request: SASL (SCRAM-SHA-256-PLUS,SCRAM-SHA-256)'],
    ['520000000c0000000501020304', 'ok: authentication request: MD5 password'],
    ['520000000800000003', 'ok: authentication request: cleartext password'],
    // Malformed or unexpected authentication requests.
    ['520000000800000005', 'invalid: MD5 authentication request with 0 salt bytes'],
    ['52000000080000000b', 'invalid: unexpected authentication request code 11'],
    ['52000000090000000000', 'invalid: authentication request 0 with 1 unexpected bytes'],
    ['520000000c0000000a41420000', 'ok: authentication request: SASL (AB)'],
    ['520000000a0000000a0000', 'invalid: malformed SASL mechanism list'],
    ['5200000003', 'invalid: not a PostgreSQL reply: message length 3'],
    ['52ffffffff', 'invalid: not a PostgreSQL reply: message length 4294967295'],
    // Not PostgreSQL at all (HAProxy's s3: "Not a PostgreSQL response").
    [Buffer.from('Not a PostgreSQL response').toString('hex'), 'invalid: not a PostgreSQL reply: first bytes 4e6f74206120506f737467726553514c...'],
    ['4e00000008', 'invalid: not a PostgreSQL reply: first bytes 4e00000008'],
  ] as const)('%s -> %s', (reply, expected) => {
    expect(judge(decodePgsqlStartupReply, reply instanceof Uint8Array ? reply : hex(reply))).toBe(expected);
  });

  it('fails an ErrorResponse with the server message (HAProxy: Layer7 invalid response)', () => {
    const starting = error('SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0Fpostmaster.c\0\0');
    expect(judge(decodePgsqlStartupReply, starting)).toBe('status: FATAL 57P03: the database system is starting up');
    expect(judge(decodePgsqlStartupReply, error('SFATAL\0\0'))).toBe('status: FATAL: no message');
    // HAProxy's s2 vector lacks the ErrorResponse's final NUL: HAProxy fails it with "FATAL", we
    // fail it as malformed. Either way the check fails.
    expect(judge(decodePgsqlStartupReply, hex('450000000B53464154414C00'))).toBe('invalid: malformed ErrorResponse');
  });

  it('rejects ErrorResponses whose fields do not frame', () => {
    expect(judge(decodePgsqlStartupReply, error('SFATAL\0MNo terminator'))).toBe('invalid: malformed ErrorResponse');
    expect(judge(decodePgsqlStartupReply, error('SFATAL\0\0extra'))).toBe('invalid: malformed ErrorResponse');
    expect(parseErrorFields(Buffer.from('\0'))).toEqual(new Map());
  });

  it('reports truncation as closed', () => {
    expect(decodePgsqlStartupReply(hex('5200000008000000'), false)).toBeUndefined();
    expect(summary(decodePgsqlStartupReply(hex('5200000008000000'), true))).toBe('closed: connection closed after 8 of 9 bytes');
    expect(summary(decodePgsqlStartupReply(hex('5200'), true))).toMatch(/^closed: /);
  });
});

describe('mysql greeting', () => {
  const packet = (payload: Uint8Array, sequence = 0): Uint8Array => {
    const head = Buffer.from([payload.length & 0xff, (payload.length >> 8) & 0xff, payload.length >> 16, sequence]);
    return Buffer.concat([head, payload]);
  };
  // HAProxy's reg-tests/checks/mysql-check.vtc greeting (MySQL 8.0.19, caching_sha2_password).
  const haproxyGreeting = hex(
    '4A0000000A382E302E3139000A0000006F3C025E6249410D00FFFFFF0200FFC715000000000000000000007C182159106E2761144322200063616368696E675F736861325F70617373776F726400',
  );

  it.each([
    [haproxyGreeting, 'ok: MySQL protocol 10, server 8.0.19'],
    [packet(Buffer.concat([Buffer.from([0x0a]), Buffer.from('5.5.5-10.11.6-MariaDB\0'), Buffer.alloc(4), Buffer.alloc(8, 1), Buffer.from([0, 0xff, 0xf7])])), 'ok: MySQL protocol 10, server 5.5.5-10.11.6-MariaDB'],
    [packet(Buffer.concat([Buffer.from([0xff, 0x10, 0x04]), Buffer.from('#08004Too many connections')])), 'status: error 1040 (08004): Too many connections'],
    [packet(Buffer.concat([Buffer.from([0xff, 0x6a, 0x04]), Buffer.from("Host '10.0.0.1' is not allowed to connect to this MySQL server")])), "status: error 1130: Host '10.0.0.1' is not allowed to connect to this MySQL server"],
    [packet(Buffer.concat([Buffer.from([0x0a]), Buffer.from('8.0\0'), Buffer.alloc(4), Buffer.alloc(8, 1), Buffer.from([7, 0, 0])])), 'invalid: greeting filler byte is 0x7, expected 0x00'],
    [packet(Buffer.concat([Buffer.from([0x0a]), Buffer.from('8.0\0'), Buffer.alloc(4)])), 'invalid: greeting of 9 bytes is too short for HandshakeV10'],
    [packet(Buffer.concat([Buffer.from([0x0a]), Buffer.from('8.0')])), 'invalid: greeting without a NUL-terminated server version'],
    [packet(Buffer.from([0x09, 0x41, 0])), 'invalid: not a MySQL greeting: protocol version byte 0x9'],
    [packet(Buffer.from([0x0a, 0x41, 0]), 1), 'invalid: not a MySQL greeting: sequence id 1'],
    [bytes('SSH-2.0-OpenSSH_9.2\r\n'), 'invalid: not a MySQL greeting: packet length 4739923 (first bytes 5353482d322e302d4f70656e5353485f...)'],
    [hex('00000000'), 'invalid: not a MySQL greeting: packet length 0 (first bytes 00000000)'],
  ])('%#: -> %s', (reply, expected) => {
    expect(judge(decodeMysqlGreeting, reply)).toBe(expected);
  });

  it('waits for the whole packet and reports truncation as closed', () => {
    expect(decodeMysqlGreeting(haproxyGreeting.subarray(0, 30), false)).toBeUndefined();
    expect(summary(decodeMysqlGreeting(haproxyGreeting.subarray(0, 30), true))).toBe('closed: connection closed after 30 of 78 bytes');
    expect(summary(decodeMysqlGreeting(new Uint8Array(0), true))).toMatch(/^closed: /);
  });
});

describe('http status line', () => {
  const ok200 = parseExpectedStatus();
  const decode200 = (r: Uint8Array, ended: boolean): Verdict | undefined => decodeHttpStatus(r, ended, ok200);

  it.each([
    ['HTTP/1.1 200 OK\r\n', 'ok: HTTP 200 OK'],
    ['HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n', 'ok: HTTP 200 OK'],
    ['HTTP/1.1 200 \r\n', 'ok: HTTP 200'],
    ['HTTP/1.1 200\r\n', 'ok: HTTP 200'],
    ['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n', 'ok: HTTP 200 OK'],
    ['HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 503 Service Unavailable\r\n', 'status: HTTP 503 Service Unavailable, expected 200'],
    ['HTTP/1.1 302 Found\r\n', 'status: HTTP 302 Found, expected 200'],
    ['HTTP/1.1 101 Switching Protocols\r\n', 'invalid: unrequested 101 Switching Protocols'],
    ['HTTP/2 200\r\n', 'invalid: not an HTTP/1.x response: "HTTP/2 200??"'],
    ['HTTP/1.1 2000 OK\r\n', 'invalid: malformed status line "HTTP/1.1 2000 OK"'],
    ['HTTP/1.1 20 OK\r\n', 'invalid: malformed status line "HTTP/1.1 20 OK"'],
    ['HTTP/1.1 700 Odd\r\n', 'invalid: malformed status line "HTTP/1.1 700 Odd"'],
    ['HTTP/1.1  200 OK\r\n', 'invalid: malformed status line "HTTP/1.1  200 OK"'],
    ['HTTP/1.1 200 OK\n', 'closed: connection closed after 16 bytes, before a complete status line'],
    ['http/1.1 200 OK\r\n', 'invalid: not an HTTP/1.x response: "http/1.1 200 OK??"'],
    ['+PONG\r\n', 'invalid: not an HTTP/1.x response: "+PONG??"'],
    ['HTTP/1.1 200 OK\x01\r\n', 'invalid: malformed status line "HTTP/1.1 200 OK?"'],
  ])('%j -> %s', (reply, expected) => {
    expect(judge(decode200, bytes(reply))).toBe(expected);
  });

  it('bounds the status line', () => {
    expect(summary(decode200(bytes(`HTTP/1.1 200 ${'x'.repeat(2000)}`), false))).toBe('invalid: status line longer than 1024 bytes');
  });

  it.each([
    [200, '200'],
    ['2xx', '200-299'],
    ['2xx-3xx', '200-399'],
    ['200-204', '200-204'],
    [[200, '3xx', '404'], '200, 300-399, 404'],
  ] as const)('expectStatus %j -> %s', (spec, expected) => {
    expect(describeStatusRanges(parseExpectedStatus(spec))).toBe(expected);
  });

  it('applies the expected ranges', () => {
    const ranges = parseExpectedStatus('2xx-3xx');
    expect(summary(decodeHttpStatus(bytes('HTTP/1.1 302 Found\r\n'), false, ranges))).toBe('ok: HTTP 302 Found');
    expect(summary(decodeHttpStatus(bytes('HTTP/1.1 404 Not Found\r\n'), false, ranges))).toBe('status: HTTP 404 Not Found, expected 200-399');
  });

  it.each([[0], [99], [600], [200.5], ['2yy'], ['300-200'], ['1-2-3'], [[]], ['abc'], [[200, 'nope']]])('rejects expectStatus %j with a typed error', (spec) => {
    let caught: unknown;
    try {
      parseExpectedStatus(spec);
    } catch (error) {
      caught = error;
    }
    expect(isLbError(caught) && caught.code).toBe('LB_ERR_INVALID_ARGUMENT');
  });

  it('builds the request with Host and Connection: close', () => {
    expect(Buffer.from(httpRequest('/healthz', hostHeader({ host: '127.0.0.1', port: 8080 }))).toString('latin1')).toBe(
      'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: l4lb-health\r\nAccept: */*\r\nConnection: close\r\n\r\n',
    );
    expect(hostHeader({ host: '::1', port: 80 })).toBe('[::1]');
  });
});

describe('every decoder on arbitrary bytes', () => {
  const decoders: [string, (r: Uint8Array, ended: boolean) => Verdict | undefined][] = [
    ['redis', decodeRedisPong],
    ['pgsql', decodePgsqlStartupReply],
    ['mysql', decodeMysqlGreeting],
    ['http', (r, ended) => decodeHttpStatus(r, ended, parseExpectedStatus())],
  ];

  it.each(decoders)('%s never throws and always decides at end of input', (_name, decode) => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (reply) => {
        const verdict = decode(reply, true);
        expect(verdict).toBeDefined();
        decode(reply, false);
      }),
      FC,
    );
  });

  it.each(decoders)('%s: a verdict reached on a prefix does not change as more bytes arrive', (_name, decode) => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 120 }), fc.uint8Array({ maxLength: 40 }), (head, tail) => {
        const early = decode(head, false);
        if (early === undefined) return;
        const joined = Buffer.concat([head, tail]);
        expect(outcome(decode(joined, false))).toBe(outcome(early));
      }),
      FC,
    );
  });
});
