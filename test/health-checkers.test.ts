/**
 * Every checker against in-process fake servers on port 0: a server that answers correctly, one
 * that answers garbage, one that says "not serving", one that never answers (timeout), one that
 * closes or resets at once, one that streams forever (bounded read), and a stopped one (refused).
 * Each probe must end with the server seeing our socket close: nothing leaks, whatever the server.
 */
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CheckOptionError } from '../src/errors.js';
import { createChecker, type CheckResult, type CheckSpec } from '../src/health/index.js';
import { runProbe } from '../src/health/probe.js';

type Behaviour = (socket: net.Socket) => void;

interface FakeServer {
  readonly port: number;
  /** Bytes each accepted connection sent us, by connection. */
  readonly received: Buffer[][];
  /** Resolves once every connection accepted so far has closed. */
  allClosed(): Promise<void>;
  close(): Promise<void>;
}

const servers: FakeServer[] = [];

async function fakeServer(behaviour: Behaviour): Promise<FakeServer> {
  const closes: Promise<void>[] = [];
  const received: Buffer[][] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const chunks: Buffer[] = [];
    received.push(chunks);
    closes.push(new Promise((resolve) => socket.once('close', () => resolve())));
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {}); // resets from the checker are expected
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    behaviour(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const fake: FakeServer = {
    port,
    received,
    allClosed: async () => {
      await Promise.all(closes);
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  servers.push(fake);
  return fake;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** Answers `reply` to the first bytes received (request/response protocols). */
const answer =
  (reply: Uint8Array | string, thenClose = false): Behaviour =>
  (socket) =>
    socket.once('data', () => {
      socket.write(reply);
      if (thenClose) socket.end();
    });
/** Writes `reply` as soon as the client connects (greeting protocols). */
const greet =
  (reply: Uint8Array | string): Behaviour =>
  (socket) =>
    socket.write(reply);
const silent: Behaviour = () => {};
const closeAtOnce: Behaviour = (socket) => socket.end();
const resetAtOnce: Behaviour = (socket) => socket.resetAndDestroy();
/** Writes `chunk` forever, as fast as the client reads, until the client goes away. */
const stream =
  (first: Uint8Array | string, chunk: Uint8Array | string): Behaviour =>
  (socket) => {
    socket.write(first);
    const pump = (): void => {
      while (!socket.destroyed && socket.write(chunk));
    };
    socket.on('drain', pump);
    pump();
  };

const mysqlGreeting = Buffer.from(
  '4A0000000A382E302E3139000A0000006F3C025E6249410D00FFFFFF0200FFC715000000000000000000007C182159106E2761144322200063616368696E675F736861325F70617373776F726400',
  'hex',
);
const mysqlError = (() => {
  const payload = Buffer.concat([Buffer.from([0xff, 0x10, 0x04]), Buffer.from('#08004Too many connections')]);
  return Buffer.concat([Buffer.from([payload.length, 0, 0, 0]), payload]);
})();
const pgError = (() => {
  const body = Buffer.from('SFATAL\0VFATAL\0C53300\0Msorry, too many clients already\0\0', 'latin1');
  const head = Buffer.from([0x45, 0, 0, 0, 0]);
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
})();
const pgSasl = Buffer.from('52000000170000000A534352414D2D5348412D3235360000', 'hex');

interface ProtocolCase {
  readonly spec: CheckSpec;
  readonly good: Behaviour;
  readonly goodDetail: RegExp;
  readonly garbage: Behaviour;
  /** A well-formed "not serving" answer, where the protocol has one. */
  readonly notServing?: { readonly behaviour: Behaviour; readonly reason: RegExp };
  /** An endless reply that looks valid as long as possible, and why it is refused. */
  readonly endless: Behaviour;
  readonly endlessReason?: RegExp;
}

const CASES: readonly ProtocolCase[] = [
  {
    spec: { type: 'redis' },
    good: answer('+PONG\r\n'),
    goodDetail: /PONG/,
    garbage: answer('HTTP/1.1 400 Bad Request\r\n\r\n'),
    notServing: { behaviour: answer('-LOADING Redis is loading the dataset in memory\r\n'), reason: /^LOADING Redis is loading/ },
    endless: stream('+PONG', 'PONG'.repeat(1024)),
    endlessReason: /^no complete reply within 1024 bytes$/,
  },
  {
    spec: { type: 'pgsql', user: 'probe' },
    good: answer(pgSasl),
    goodDetail: /SASL \(SCRAM-SHA-256\)/,
    garbage: answer('Not a PostgreSQL response'),
    notServing: { behaviour: answer(pgError), reason: /FATAL 53300: sorry, too many clients already/ },
    endless: stream(Buffer.from([0x45, 0, 0, 0x1f, 0xff, 0x53]), 'F'.repeat(1024)), // an 8191-byte ErrorResponse
    endlessReason: /^malformed ErrorResponse$/,
  },
  {
    spec: { type: 'mysql' },
    good: greet(mysqlGreeting),
    goodDetail: /server 8\.0\.19/,
    garbage: greet('SSH-2.0-OpenSSH_9.2\r\n'),
    notServing: { behaviour: greet(mysqlError), reason: /error 1040 \(08004\): Too many connections/ },
    endless: stream(Buffer.from([0xfc, 0x03, 0x00, 0x00, 0x0a]), '8'.repeat(1024)), // a 1020-byte greeting, never NUL-terminated
    endlessReason: /without a NUL-terminated server version/,
  },
  {
    spec: { type: 'http', path: '/healthz' },
    good: answer('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'),
    goodDetail: /HTTP 200 OK/,
    garbage: answer('SSH-2.0-OpenSSH_9.2\r\n'),
    notServing: { behaviour: answer('HTTP/1.1 503 Service Unavailable\r\n\r\n'), reason: /HTTP 503 Service Unavailable, expected 200/ },
    endless: stream('HTTP/1.1 100 Continue\r\n', 'X-Padding: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n'.repeat(100)),
    endlessReason: /^no complete reply within 8192 bytes$/,
  },
  {
    spec: { type: 'tcp' },
    good: silent,
    goodDetail: /connected/,
    garbage: greet('anything at all'), // a TCP check does not read: still a pass
    endless: stream('x', 'y'.repeat(1024)), // nor does it care about what is streamed
  },
];

const TIMEOUT_MS = 2000;

async function probe(spec: CheckSpec, server: FakeServer, timeoutMs = TIMEOUT_MS, signal?: AbortSignal): Promise<CheckResult> {
  const result = await createChecker(spec).check({ host: '127.0.0.1', port: server.port }, timeoutMs, signal);
  await server.allClosed(); // the server saw our socket close: nothing left open
  expect(result.durationMs).toBeGreaterThanOrEqual(0);
  return result;
}

function failed(result: CheckResult): { kind: string; reason: string } {
  if (result.ok) throw new Error(`expected a failure, got a pass: ${result.detail}`);
  return { kind: result.kind, reason: result.reason };
}

describe.each(CASES)('$spec.type checker', (c) => {
  const readsReply = c.spec.type !== 'tcp';

  it('passes against a server that answers correctly', async () => {
    const result = await probe(c.spec, await fakeServer(c.good));
    expect(result.ok && result.detail).toMatch(c.goodDetail);
  });

  it(readsReply ? 'fails as invalid on garbage' : 'passes whatever the server sends', async () => {
    const result = await probe(c.spec, await fakeServer(c.garbage));
    if (readsReply) expect(failed(result).kind).toBe('invalid');
    else expect(result.ok).toBe(true);
  });

  if (c.notServing !== undefined) {
    const notServing = c.notServing;
    it('fails with the server message on a "not serving" answer', async () => {
      const { kind, reason } = failed(await probe(c.spec, await fakeServer(notServing.behaviour)));
      expect(kind).toBe('status');
      expect(reason).toMatch(notServing.reason);
    });
  }

  it(readsReply ? 'times out on a server that never answers' : 'passes on a server that never answers', async () => {
    const result = await probe(c.spec, await fakeServer(silent), 150);
    if (readsReply) {
      const { kind, reason } = failed(result);
      expect(kind).toBe('timeout');
      expect(reason).toMatch(/timeout after 150 ms waiting for the reply/);
    } else {
      expect(result.ok).toBe(true);
    }
  });

  if (readsReply) {
    it('fails as closed when the server closes at once', async () => {
      expect(failed(await probe(c.spec, await fakeServer(closeAtOnce))).kind).toBe('closed');
    });

    it('fails as connect or closed when the server resets at once', async () => {
      // Whether the reset beats the connect completion is up to the kernel and the event loop.
      const { kind, reason } = failed(await probe(c.spec, await fakeServer(resetAtOnce)));
      expect(['connect', 'closed']).toContain(kind);
      expect(reason).toMatch(/ECONNRESET|closed/);
    });

    it('fails as closed when the server closes mid-reply', async () => {
      const server = await fakeServer((socket) => {
        const replies = { mysql: mysqlGreeting, pgsql: pgSasl, redis: Buffer.from('+PONG\r\n'), http: Buffer.from('HTTP/1.1 200 OK\r\n') };
        const reply = replies[c.spec.type as keyof typeof replies];
        const half = reply.subarray(0, 3);
        if (c.spec.type === 'mysql') socket.end(half);
        else socket.once('data', () => socket.end(half));
      });
      expect(failed(await probe(c.spec, server)).kind).toBe('closed');
    });
  }

  it(readsReply ? 'stops reading an endless reply at its bound' : 'ignores an endless stream', async () => {
    const server = await fakeServer(c.endless);
    const result = await probe(c.spec, server);
    if (readsReply) {
      const { kind, reason } = failed(result);
      expect(kind).toBe('invalid');
      expect(reason).toMatch(c.endlessReason ?? /./);
    } else {
      expect(result.ok).toBe(true);
    }
  });

  it('fails as connect against a stopped server (connection refused)', async () => {
    const server = await fakeServer(silent);
    await server.close();
    const { kind, reason } = failed(await probe(c.spec, server));
    expect(kind).toBe('connect');
    expect(reason).toMatch(/^ECONNREFUSED/);
  });

  it('ends at once with kind aborted when the signal fires', async () => {
    const server = await fakeServer(silent);
    const controller = new AbortController();
    const pending = probe(c.spec, server, 60_000, controller.signal);
    controller.abort();
    expect(failed(await pending).kind).toBe('aborted');
  });
});

describe('checker edge cases', () => {
  it('sends HAProxy-compatible request bytes', async () => {
    const redis = await fakeServer(answer('+PONG\r\n'));
    await probe({ type: 'redis' }, redis);
    expect(Buffer.concat(redis.received[0]).toString('latin1')).toBe('*1\r\n$4\r\nPING\r\n');

    const pg = await fakeServer(answer(pgSasl));
    await probe({ type: 'pgsql' }, pg);
    expect(Buffer.concat(pg.received[0]).toString('hex')).toBe(Buffer.from('\0\0\0\x13\0\x03\0\0user\0l4lb\0\0', 'latin1').toString('hex'));
  });

  it('sends PostgreSQL a Terminate after AuthenticationOk (trust), nothing after a password request', async () => {
    const trust = await fakeServer(answer(Buffer.from('520000000800000000', 'hex')));
    expect((await probe({ type: 'pgsql' }, trust)).ok).toBe(true);
    expect(Buffer.concat(trust.received[0]).subarray(-5).toString('hex')).toBe('5800000004');

    const sasl = await fakeServer(answer(pgSasl));
    expect((await probe({ type: 'pgsql' }, sasl)).ok).toBe(true);
    expect(Buffer.concat(sasl.received[0]).length).toBe(19);
  });

  it('talks to a real node:http server: Host, Connection: close, expected statuses', async () => {
    const seen: http.IncomingHttpHeaders[] = [];
    const server = http.createServer((request, response) => {
      seen.push(request.headers);
      response.statusCode = request.url === '/healthz' ? 200 : request.url === '/moved' ? 302 : 503;
      response.end('body');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const target = { host: '127.0.0.1', port };
      const ok = await createChecker({ type: 'http', path: '/healthz' }).check(target, TIMEOUT_MS);
      expect(ok.ok && ok.detail).toBe('HTTP 200 OK');
      expect(seen[0].host).toBe(`127.0.0.1:${port}`);
      expect(seen[0].connection).toBe('close');

      const down = await createChecker({ type: 'http', path: '/other' }).check(target, TIMEOUT_MS);
      expect(failed(down)).toEqual({ kind: 'status', reason: 'HTTP 503 Service Unavailable, expected 200' });

      const moved = await createChecker({ type: 'http', path: '/moved', expectStatus: '2xx-3xx', host: 'svc.example' }).check(target, TIMEOUT_MS);
      expect(moved.ok).toBe(true);
      expect(seen[2].host).toBe('svc.example');
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('fails an unusable target without a socket', async () => {
    const checker = createChecker({ type: 'tcp' });
    expect(failed(await checker.check({ host: '127.0.0.1', port: 0 }, 100)).reason).toMatch(/port 0 is not 1\.\.65535/);
    expect(failed(await checker.check({ host: '', port: 80 }, 100)).reason).toMatch(/empty host/);
    expect(failed(await checker.check({ host: '127.0.0.1', port: 80 }, 0)).reason).toMatch(/invalid timeout/);
    const controller = new AbortController();
    controller.abort();
    expect(failed(await checker.check({ host: '127.0.0.1', port: 80 }, 100, controller.signal)).kind).toBe('aborted');
  });

  it('rejects bad options at build time with a typed error naming the option', () => {
    const refused = (spec: CheckSpec): unknown => {
      try {
        createChecker(spec);
      } catch (error) {
        return error;
      }
      throw new Error(`${JSON.stringify(spec)} was accepted`);
    };
    const cases: [CheckSpec, Partial<CheckOptionError>][] = [
      [{ type: 'http', path: 'no-slash' }, { check: 'http', option: 'path', detail: `must start with '/' and contain no spaces or control characters, got "no-slash"` }],
      [{ type: 'http', host: 'a b' }, { check: 'http', option: 'host', detail: 'must be visible ASCII without spaces, got "a b"' }],
      [{ type: 'http', expectStatus: '2xz' }, { check: 'http', option: 'expectStatus', detail: '"2xz" is not a status (100-599), "Nxx", or a range "A-B"' }],
      [{ type: 'pgsql', user: '' }, { check: 'pgsql', option: 'user', detail: 'must be 1..63 bytes without NUL, got ""' }],
      [{ type: 'pgsql', database: 'a\0b' }, { check: 'pgsql', option: 'database', detail: 'must be 1..63 bytes without NUL, got "a\\u0000b"' }],
    ];
    for (const [spec, facts] of cases) {
      const error = refused(spec);
      expect(error).toBeInstanceOf(CheckOptionError);
      expect(error).toMatchObject({ code: 'LB_ERR_INVALID_ARGUMENT', ...facts });
    }
    // The message a direct caller reads is unchanged: check, option, then what is wrong.
    expect((refused({ type: 'http', path: 'x' }) as Error).message).toBe(`http health check path must start with '/' and contain no spaces or control characters, got "x"`);
    expect((refused({ type: 'http', expectStatus: 99 }) as Error).message).toBe('http health check expectStatus: 99 is not a status (100-599), "Nxx", or a range "A-B"');
    expect((refused({ type: 'pgsql', user: '' }) as Error).message).toBe('pgsql health check user must be 1..63 bytes without NUL, got ""');
    expect(refused({ type: 'nope' } as unknown as CheckSpec)).toMatchObject({ code: 'LB_ERR_INVALID_ARGUMENT' });
  });

  it('leaves no timer or socket behind after many probes of every outcome', async () => {
    const count = (kind: string): number => process.getActiveResourcesInfo().filter((r) => r === kind).length;
    const good = await fakeServer(answer('+PONG\r\n'));
    const slow = await fakeServer(silent);
    const refused = await fakeServer(silent);
    await refused.close();
    const timersBefore = count('Timeout');
    const socketsBefore = count('TCPSocketWrap');
    const checker = createChecker({ type: 'redis' });
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => {
        const server = [good, slow, refused][i % 3];
        return checker.check({ host: '127.0.0.1', port: server.port }, 100);
      }),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(10);
    expect(results.filter((r) => !r.ok && r.kind === 'timeout')).toHaveLength(10);
    expect(results.filter((r) => !r.ok && r.kind === 'connect')).toHaveLength(10);
    await good.allClosed();
    await slow.allClosed();
    expect(count('Timeout')).toBeLessThanOrEqual(timersBefore); // other timers (vitest's) may end meanwhile
    expect(count('TCPSocketWrap')).toBeLessThanOrEqual(socketsBefore);
  });
});

describe('probe robustness', () => {
  it('turns a throwing decoder into a failed probe', async () => {
    const server = await fakeServer(answer('anything'));
    const result = await runProbe({ host: '127.0.0.1', port: server.port }, TIMEOUT_MS, undefined, {
      request: Buffer.from('hello'),
      maxReplyBytes: 64,
      decode: (reply) => {
        if (reply.length > 0) throw new Error('decoder bug');
        return undefined;
      },
    });
    await server.allClosed();
    expect(failed(result)).toEqual({ kind: 'invalid', reason: 'decoder error: decoder bug' });
  });
});
