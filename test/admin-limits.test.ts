/**
 * The admin API cannot be held by a slow or fat client: a request whose headers (or body) do not
 * arrive in time gets 408 and a closed connection, headers over the limit get 431, connections
 * past the cap are closed as they are accepted, a known path asked with the wrong method gets 405
 * with `Allow`, and a body declared over 4 KiB gets 413 before it is read. Small limits keep the
 * timeouts short; every wait is on a socket event, never on a sleep.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_LIMITS, startAdmin, type AdminServer } from '../src/admin/server.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog } from './helpers/log.js';
import { startNamedServer, type TestServer } from './helpers/net.js';

const LIMITS = { headersTimeoutMs: 200, requestTimeoutMs: 400, keepAliveTimeoutMs: 5_000, maxHeaderBytes: 2048, maxConnections: 4 };
let server: TestServer;
let balancer: Balancer;
let admin: AdminServer;

beforeAll(async () => {
  server = await startNamedServer('a');
  balancer = await startBalancer(configOf(proxyService([backend('a', server.port)], { name: 'web' })), { logger: captureLog().logger });
  admin = await startAdmin(balancer, { listen: { host: '127.0.0.1', port: 0 }, limits: LIMITS });
});

afterAll(async () => {
  await admin?.close();
  await balancer?.close(0);
  await server?.close();
});

async function open(port = admin.address().port): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {}); // a connection over the cap may be reset; 'close' is what is awaited
  await once(socket, 'connect');
  return socket;
}

/** Everything the server sends until it closes the connection. */
async function untilClosed(socket: Socket): Promise<string> {
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
  });
  await once(socket, 'close');
  return text;
}

/** The first response on a keep-alive connection (headers and a JSON body of content-length). */
async function response(socket: Socket): Promise<string> {
  let text = '';
  for (;;) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    text += chunk.toString('latin1');
    const end = text.indexOf('\r\n\r\n');
    const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? -1);
    if (end !== -1 && length >= 0 && text.length >= end + 4 + length) return text;
  }
}

describe('the admin API under slow and oversized clients', () => {
  it('defaults to short timeouts, 8 KiB of headers and 64 connections', () => {
    expect(ADMIN_LIMITS).toEqual({ headersTimeoutMs: 5_000, requestTimeoutMs: 10_000, keepAliveTimeoutMs: 5_000, maxHeaderBytes: 8192, maxConnections: 64 });
  });

  it('answers 408 and closes a connection whose headers never end', async () => {
    const socket = await open();
    socket.write('GET /stats HTTP/1.1\r\nHost: admin\r\nX-Slow: ');
    const text = await untilClosed(socket);
    expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))).toEqual({ error: { code: 'timeout', message: 'the request did not arrive in time' } });
  });

  it('answers 408 and closes a connection whose body never ends', async () => {
    const socket = await open();
    socket.write('POST /services/web/backends/a/state HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{"state":');
    const text = await untilClosed(socket);
    expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
  });

  it('answers 431 to headers over the limit', async () => {
    const socket = await open();
    socket.write(`GET /stats HTTP/1.1\r\nHost: admin\r\nX-Fat: ${'x'.repeat(LIMITS.maxHeaderBytes)}\r\n\r\n`);
    const text = await untilClosed(socket);
    expect(text).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    expect(text).toContain('"code":"headers-too-large"');
  });

  it('answers 400 to a request that is not HTTP', async () => {
    const socket = await open();
    socket.write('HELLO\r\n\r\n');
    expect(await untilClosed(socket)).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
  });

  it('answers 405 with Allow for a method a known path does not take', async () => {
    const base = `http://127.0.0.1:${admin.address().port}`;
    const cases: [string, string, string][] = [
      ['DELETE', '/stats', 'GET, HEAD'],
      ['PUT', '/metrics', 'GET, HEAD'],
      ['POST', '/', 'GET, HEAD'],
      ['GET', '/services/web/backends/a/state', 'POST'],
      ['PATCH', '/services/web/backends/a/state', 'POST'],
    ];
    for (const [method, path, allowed] of cases) {
      const reply = await fetch(base + path, { method });
      expect([method, path, reply.status, reply.headers.get('allow')]).toEqual([method, path, 405, allowed]);
      expect(((await reply.json()) as { error: { code: string } }).error.code).toBe('method-not-allowed');
    }
  });

  it('answers 413 to a body declared over 4 KiB before reading it', async () => {
    const socket = await open();
    socket.write('POST /services/web/backends/a/state HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n');
    const text = await untilClosed(socket);
    expect(text).toMatch(/^HTTP\/1\.1 413 Payload Too Large\r\n/);
    expect(text).toContain('"code": "too-large"');
  });

  it(`closes connections past the cap as they are accepted, and serves those within it`, async () => {
    // An admin API of its own: no other test's keep-alive connection counts against its cap.
    const capped = await startAdmin(balancer, { listen: { host: '127.0.0.1', port: 0 }, limits: LIMITS });
    const port = capped.address().port;
    // Each held connection has had a response: the server has accepted it and counts it.
    const held: Socket[] = [];
    for (let i = 0; i < LIMITS.maxConnections; i++) {
      const socket = await open(port);
      socket.write('GET /stats HTTP/1.1\r\nHost: admin\r\n\r\n');
      expect(await response(socket)).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      held.push(socket);
    }
    const over = await open(port);
    over.write('GET /stats HTTP/1.1\r\nHost: admin\r\n\r\n');
    expect(await untilClosed(over)).toBe('');
    // The held ones are still served.
    held[0].write('GET /stats HTTP/1.1\r\nHost: admin\r\n\r\n');
    expect(await response(held[0])).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    await capped.close();
  });
});
