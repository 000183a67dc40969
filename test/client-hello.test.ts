/**
 * The ClientHello reader (src/tls/client-hello.ts): first flights recorded from real clients
 * (test/fixtures/tls/*.hex: openssl s_client, curl, Node's tls.connect; re-recorded live below),
 * every way of splitting them into segments giving the same answer (fast-check, fixed seed), a
 * ClientHello re-fragmented over several records, and truncated, oversized and garbage input
 * refused with a reason, never a throw.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { connect } from 'node:tls';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { ClientHelloParser, MAX_HELLO_BYTES, parseClientHello, type HelloResult } from '../src/tls/index.js';

const FIXTURES = new URL('./fixtures/tls/', import.meta.url);

function fixture(name: string): Buffer {
  return Buffer.from(readFileSync(new URL(`${name}.hex`, FIXTURES), 'utf8').trim(), 'hex');
}

/** Each fixture and what its client asked for. */
const EXPECTED: Record<string, { sni?: string; alpn?: string[] }> = {
  'openssl-s_client-db.example.com': { sni: 'db.example.com' },
  'openssl-s_client-tls12-alpn': { sni: 'a.example.org', alpn: ['h2', 'http/1.1'] },
  'openssl-s_client-noservername': {},
  'curl-web.example.org': { sni: 'web.example.org', alpn: ['h2', 'http/1.1'] },
  'node-tls-connect-pg.example.com': { sni: 'pg.example.com', alpn: ['postgresql'] },
};

/** The ClientHello's records only (the recordings may hold nothing else, but be sure). */
function hello(name: string): Buffer {
  const bytes = fixture(name);
  const result = parseClientHello(bytes);
  if (result.status !== 'done') throw new Error(`${name}: ${JSON.stringify(result)}`);
  return bytes.subarray(0, result.length);
}

/** Feeds `bytes` cut at `cuts` (sorted, deduplicated offsets); the first final answer. */
function feedSplit(bytes: Uint8Array, cuts: readonly number[]): HelloResult {
  const parser = new ClientHelloParser();
  let from = 0;
  let answer: HelloResult = { status: 'need-more' };
  for (const cut of [...cuts, bytes.length]) {
    answer = parser.feed(bytes.subarray(from, cut));
    from = cut;
    if (answer.status !== 'need-more') return answer;
  }
  return answer;
}

/** `hello`'s handshake message re-cut into records of `sizes` bytes (the last takes the rest). */
function refragment(bytes: Uint8Array, sizes: readonly number[]): Buffer {
  const message = Buffer.from(bytes.subarray(5)); // one record in every fixture
  const records: Buffer[] = [];
  let at = 0;
  for (const size of [...sizes, message.length]) {
    if (at >= message.length) break;
    const piece = message.subarray(at, Math.min(message.length, at + size));
    at += piece.length;
    records.push(Buffer.from([22, 3, 1, piece.length >> 8, piece.length & 0xff]), piece);
  }
  return Buffer.concat(records);
}

describe('real first flights (test/fixtures/tls)', () => {
  it('every recording is listed here', () => {
    const names = readdirSync(FIXTURES).filter((file) => file.endsWith('.hex')).map((file) => file.slice(0, -4));
    expect(names.sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const [name, expected] of Object.entries(EXPECTED)) {
    it(`${name}: the server name and ALPN the client sent`, () => {
      const result = parseClientHello(fixture(name));
      expect(result).toMatchObject({ status: 'done' });
      if (result.status !== 'done') return;
      expect(result.sni).toBe(expected.sni);
      expect(result.alpn).toEqual(expected.alpn);
    });
  }

  it('every split into segments gives the answer of the whole (property)', () => {
    const names = Object.keys(EXPECTED);
    fc.assert(
      fc.property(fc.constantFrom(...names), fc.array(fc.nat(), { maxLength: 12 }), (name, raw) => {
        const bytes = hello(name);
        const cuts = [...new Set(raw.map((n) => 1 + (n % (bytes.length - 1))))].sort((a, b) => a - b);
        expect(feedSplit(bytes, cuts)).toEqual(parseClientHello(bytes));
      }),
      { seed: 20261205, numRuns: 400 },
    );
  });

  it('every proper prefix needs more, never a refusal', () => {
    for (const name of Object.keys(EXPECTED)) {
      const bytes = hello(name);
      for (let n = 0; n < bytes.length; n++) expect(parseClientHello(bytes.subarray(0, n)), `${name} at ${n}`).toEqual({ status: 'need-more' });
    }
  });

  it('a ClientHello spread over several records, split anywhere, gives the same name (property)', () => {
    const names = Object.keys(EXPECTED);
    fc.assert(
      fc.property(fc.constantFrom(...names), fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 8 }), (name, sizes, raw) => {
        const bytes = refragment(hello(name), sizes);
        const whole = parseClientHello(bytes);
        expect(whole).toMatchObject({ status: 'done', length: bytes.length });
        expect(whole.status === 'done' ? whole.sni : 'refused').toBe(EXPECTED[name]?.sni);
        const cuts = [...new Set(raw.map((n) => 1 + (n % (bytes.length - 1))))].sort((a, b) => a - b);
        expect(feedSplit(bytes, cuts)).toEqual(whole);
      }),
      { seed: 7, numRuns: 300 },
    );
  });

  it('bytes after the ClientHello records (the next flight) do not change the answer', () => {
    const bytes = hello('curl-web.example.org');
    const more = Buffer.concat([bytes, Buffer.from([23, 3, 3, 0, 2, 1, 2])]);
    expect(parseClientHello(more)).toEqual(parseClientHello(bytes));
  });
});

describe('refusals, with a reason and never a throw', () => {
  it('an HTTP request, SSLv2-style hello and an alert are not TLS handshakes', () => {
    expect(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n'))).toMatchObject({ status: 'error', reason: 'not-tls' });
    expect(parseClientHello(Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01]))).toMatchObject({ status: 'error', reason: 'not-tls' });
    expect(parseClientHello(Buffer.from([21, 3, 3, 0, 2, 2, 40]))).toMatchObject({ status: 'error', reason: 'not-tls' });
    expect(parseClientHello(Buffer.from([22, 2, 0]))).toMatchObject({ status: 'error', reason: 'not-tls' });
    // One byte decides: a client that sends "G" and waits is not left waiting for the timeout.
    expect(parseClientHello(Buffer.from('G'))).toMatchObject({ status: 'error', reason: 'not-tls' });
  });

  it('a handshake that is not a ClientHello (a ServerHello) is refused', () => {
    const bytes = Buffer.from(hello('openssl-s_client-db.example.com'));
    bytes[5] = 2;
    expect(parseClientHello(bytes)).toMatchObject({ status: 'error', reason: 'not-client-hello' });
  });

  it('a declared ClientHello over 16 KiB is refused from its header, before its bytes arrive', () => {
    const length = MAX_HELLO_BYTES;
    const header = Buffer.from([22, 3, 1, 0x40, 0x00, 1, length >> 16, (length >> 8) & 0xff, length & 0xff]);
    expect(parseClientHello(header)).toMatchObject({ status: 'error', reason: 'too-large' });
  });

  it('more records than the bound before the ClientHello completes is refused', () => {
    const bytes = refragment(hello('curl-web.example.org'), Array.from({ length: 40 }, () => 1));
    expect(parseClientHello(bytes)).toMatchObject({ status: 'error', reason: 'too-large' });
  });

  it('a record over 2^14 bytes, an empty record and another record type mid-hello are malformed', () => {
    expect(parseClientHello(Buffer.from([22, 3, 1, 0x40, 0x01, 1]))).toMatchObject({ status: 'error', reason: 'malformed' });
    expect(parseClientHello(Buffer.from([22, 3, 1, 0, 0]))).toMatchObject({ status: 'error', reason: 'malformed' });
    const split = refragment(hello('curl-web.example.org'), [100]);
    const spliced = Buffer.concat([split.subarray(0, 105), Buffer.from([21, 3, 3, 0, 2, 2, 40])]);
    expect(parseClientHello(spliced)).toMatchObject({ status: 'error', reason: 'malformed' });
  });

  it('inner lengths that do not add up are malformed', () => {
    const bytes = Buffer.from(hello('openssl-s_client-db.example.com'));
    // legacy_session_id length (after 5 + 4 + 2 + 32) set past its bound.
    const badSession = Buffer.from(bytes);
    badSession[43] = 200;
    expect(parseClientHello(badSession)).toMatchObject({ status: 'error', reason: 'malformed' });
    // The handshake length one byte longer than the record holds, the record one byte longer with a stray byte.
    const stray = Buffer.concat([bytes, Buffer.from([0])]);
    stray.writeUInt16BE(stray.length - 5, 3);
    expect(parseClientHello(stray)).toMatchObject({ status: 'error', reason: 'malformed' });
  });

  it('a server name that is not a host name is malformed', () => {
    const bytes = Buffer.from(hello('openssl-s_client-db.example.com'));
    const at = bytes.indexOf('db.example.com');
    bytes[at + 2] = 0x2f; // "db/example.com"
    expect(parseClientHello(bytes)).toMatchObject({ status: 'error', reason: 'malformed' });
  });

  it('random bytes, and random corruptions of real hellos, give an answer without throwing (property)', () => {
    const names = Object.keys(EXPECTED);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const result = parseClientHello(bytes);
        expect(['need-more', 'done', 'error']).toContain(result.status);
      }),
      { seed: 99, numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.constantFrom(...names), fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 6 }), fc.nat(), (name, edits, cut) => {
        const bytes = Buffer.from(hello(name));
        for (const [at, value] of edits) bytes[at % bytes.length] = value;
        const truncated = bytes.subarray(0, 1 + (cut % bytes.length));
        for (const input of [bytes, truncated]) {
          const result = parseClientHello(input);
          expect(['need-more', 'done', 'error']).toContain(result.status);
          if (result.status === 'error') expect(result.detail.length).toBeGreaterThan(0);
        }
      }),
      { seed: 1234, numRuns: 1000 },
    );
  });
});

describe('live first flights, recorded as they arrive', () => {
  const servers: Server[] = [];
  afterEach(() => {
    for (const server of servers.splice(0)) server.close();
  });

  /** A server that feeds each connection's bytes to a parser and resolves with its first final answer. */
  function firstFlight(start: (port: number) => () => void): Promise<HelloResult> {
    return new Promise((resolve, reject) => {
      let stopClient: (() => void) | undefined;
      const server = createServer((socket) => {
        const parser = new ClientHelloParser();
        socket.on('data', (chunk: Buffer) => {
          const answer = parser.feed(chunk);
          if (answer.status === 'need-more') return;
          socket.destroy();
          stopClient?.();
          resolve(answer);
        });
        socket.on('error', () => {});
        socket.on('end', () => reject(new Error(`the client closed after ${parser.length} bytes`)));
      });
      servers.push(server);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        if (typeof address !== 'object' || address === null) return reject(new Error('no address'));
        stopClient = start(address.port);
      });
    });
  }

  it('openssl s_client -servername', async () => {
    const answer = await firstFlight((port) => {
      const child = spawn('openssl', ['s_client', '-servername', 'Live.Example.COM', '-connect', `127.0.0.1:${port}`], { stdio: ['pipe', 'ignore', 'ignore'] });
      return () => child.kill();
    });
    expect(answer).toMatchObject({ status: 'done', sni: 'live.example.com' });
  });

  it("Node's tls.connect with ALPN", async () => {
    const answer = await firstFlight((port) => {
      const socket = connect({ host: '127.0.0.1', port, servername: 'node.example.net', ALPNProtocols: ['h2', 'x-custom'] });
      socket.on('error', () => {});
      return () => socket.destroy();
    });
    expect(answer).toMatchObject({ status: 'done', sni: 'node.example.net', alpn: ['h2', 'x-custom'] });
  });

  it('curl --resolve', async () => {
    const answer = await firstFlight((port) => {
      const child = spawn('curl', ['-s', '--resolve', `curl.example.org:${port}:127.0.0.1`, `https://curl.example.org:${port}/`], { stdio: 'ignore' });
      return () => child.kill();
    });
    expect(answer).toMatchObject({ status: 'done', sni: 'curl.example.org' });
  });
});
