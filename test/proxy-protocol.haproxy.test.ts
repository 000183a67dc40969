/**
 * Live interop of the codec with a real HAProxy, over UNIX sockets only (no TCP port to pick):
 *
 *   test client --(our encoder)--> HAProxy `bind … accept-proxy` --(send-proxy / send-proxy-v2
 *   with crc32c, unique-id, authority)--> our server, which parses with ProxyHeaderParser.
 *
 * HAProxy's log line shows what it understood from our header; our server shows that we understand
 * what HAProxy sends. Runs when `haproxy` is installed; with CI=true a missing HAProxy fails.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haproxyInstalled, startHaproxy, type Haproxy } from './helpers/haproxy.js';
import { requirement } from './helpers/skip.js';
import {
  ProxyHeaderParser,
  encodeForConnection,
  encodeV2,
  proxiedEndpoints,
  v2HeaderFor,
  type ConnectionEndpoints,
  type ProxyHeader,
} from '../src/proxy-protocol/index.js';

const withHaproxy = requirement('interop with a real HAProxy (UNIX sockets)', haproxyInstalled ? undefined : 'haproxy is not installed');

interface Received {
  header: ProxyHeader;
  payload: string;
}

describe.skipIf(withHaproxy.skip)(withHaproxy.title, () => {
  let dir = '';
  let haproxy: Haproxy | undefined;
  let server: Server | undefined;
  const received = new Map<number, Received>();
  const receivedWaiters = new Map<number, (r: Received) => void>();
  const serverErrors: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'l4lb-pp-haproxy-'));
    server = createServer((socket) => {
      const parser = new ProxyHeaderParser();
      let header: ProxyHeader | undefined;
      let payload = '';
      socket.on('data', (chunk) => {
        if (header) {
          payload += chunk.toString();
        } else {
          const result = parser.push(chunk);
          if (result.status === 'error') {
            serverErrors.push(result.error.message);
            socket.destroy();
            return;
          }
          if (result.status === 'done') {
            header = result.header;
            payload = Buffer.from(result.rest).toString();
          }
        }
        if (header && payload.endsWith('\n')) {
          const port = proxiedEndpoints(header)?.source.port ?? -1;
          const record = { header, payload };
          received.set(port, record);
          receivedWaiters.get(port)?.(record);
          socket.end();
        }
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve, reject) => {
      server?.once('error', reject);
      server?.listen(join(dir, 'be.sock'), resolve);
    });
    const config = `
global
    log stdout format raw local0 info
defaults
    mode tcp
    log global
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    log-format "PP %ci|%cp|%fi|%fp|%[fc_pp_unique_id]|%[fc_pp_authority]"
frontend fe_v2
    bind unix@${join(dir, 'fe-v2.sock')} accept-proxy
    default_backend be_v2
frontend fe_v1
    bind unix@${join(dir, 'fe-v1.sock')} accept-proxy
    default_backend be_v1
backend be_v2
    server s unix@${join(dir, 'be.sock')} send-proxy-v2 proxy-v2-options crc32c,unique-id,authority
backend be_v1
    server s unix@${join(dir, 'be.sock')} send-proxy
`;
    writeFileSync(join(dir, 'haproxy.cfg'), config);
    // Master-worker mode: the master prints "Loading success." once the worker runs with its
    // listeners up, which is the event to wait for (the socket files exist before listen()).
    haproxy = await startHaproxy(join(dir, 'haproxy.cfg'));
  });

  afterAll(async () => {
    await haproxy?.stop();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function logLineFor(port: number): Promise<string> {
    const match = `|${port}|`;
    if (haproxy === undefined) throw new Error('haproxy did not start');
    return haproxy.line(match);
  }

  function receivedFor(port: number): Promise<Received> {
    const seen = received.get(port);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => receivedWaiters.set(port, resolve));
  }

  /** Connects to a frontend, sends header + "PING\n", resolves when HAProxy closes (or resets). */
  function send(frontend: 'fe-v1.sock' | 'fe-v2.sock', header: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(join(dir, frontend), () => socket.write(Buffer.concat([header, Buffer.from('PING\n')])));
      socket.on('data', () => undefined);
      socket.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') reject(error);
      });
      socket.once('close', () => resolve());
    });
  }

  const cases: [string, 'v1' | 'v2', ConnectionEndpoints, string][] = [
    ['v1 TCP4', 'v1', { source: { address: '203.0.113.7', port: 41001 }, destination: { address: '192.0.2.10', port: 443 } }, 'PP 203.0.113.7|41001|192.0.2.10|443'],
    ['v1 TCP6', 'v1', { source: { address: '2001:db8::7', port: 41002 }, destination: { address: '2001:db8::1', port: 8443 } }, 'PP 2001:db8::7|41002|2001:db8::1|8443'],
    ['v2 TCP4', 'v2', { source: { address: '198.51.100.20', port: 41003 }, destination: { address: '192.0.2.11', port: 80 } }, 'PP 198.51.100.20|41003|192.0.2.11|80'],
    ['v2 TCP6', 'v2', { source: { address: 'fe80::1:2', port: 41004 }, destination: { address: '2001:db8::2', port: 0 } }, 'PP fe80::1:2|41004|2001:db8::2|0'],
    ['v2 IPv4 client on a dual-stack listener', 'v2', { source: { address: '::ffff:10.1.2.3', port: 41005 }, destination: { address: '::ffff:10.0.0.1', port: 25 } }, 'PP 10.1.2.3|41005|10.0.0.1|25'],
    ['v1 IPv4 client to an IPv6 destination', 'v1', { source: { address: '10.9.8.7', port: 41006 }, destination: { address: '2001:db8::3', port: 22 } }, 'PP ::ffff:10.9.8.7|41006|2001:db8::3|22'],
  ];

  it.each(cases)('%s: HAProxy reads our header, and we read the one it sends on', async (_name, version, connection, expectedLog) => {
    await send(version === 'v1' ? 'fe-v1.sock' : 'fe-v2.sock', encodeForConnection(version, connection));
    const port = connection.source.port;
    expect((await logLineFor(port)).startsWith(expectedLog)).toBe(true);
    const forwarded = await receivedFor(port);
    expect(forwarded.payload).toBe('PING\n');
    expect(forwarded.header.version).toBe(version === 'v1' ? 1 : 2);
    const [source, , destination] = expectedLog.slice(3).split('|');
    expect(proxiedEndpoints(forwarded.header)).toEqual({
      source: { address: source, port },
      destination: { address: destination, port: connection.destination.port },
    });
    if (forwarded.header.version === 2) expect(forwarded.header.extensions.crc32c).toBeTypeOf('number');
    expect(serverErrors).toEqual([]);
  });

  it('v2 with our CRC32C, UNIQUE_ID and AUTHORITY TLVs: HAProxy verifies and exposes them, then forwards AUTHORITY', async () => {
    const connection = { source: { address: '192.0.2.99', port: 41010 }, destination: { address: '192.0.2.1', port: 443 } };
    const tlvs = [
      { type: 0x02, value: Buffer.from('example.com') },
      { type: 0x05, value: Buffer.from('uid-41010') },
    ];
    await send('fe-v2.sock', encodeV2(v2HeaderFor(connection, tlvs), { crc32c: true }));
    expect(await logLineFor(41010)).toBe('PP 192.0.2.99|41010|192.0.2.1|443|uid-41010|example.com');
    const forwarded = await receivedFor(41010);
    expect(forwarded.header.version === 2 && forwarded.header.extensions.authority).toBe('example.com');
  });

  it('a header whose CRC32C we corrupted is refused by HAProxy too', async () => {
    const bad = encodeV2(v2HeaderFor({ source: { address: '192.0.2.98', port: 41020 }, destination: { address: '192.0.2.1', port: 1 } }), { crc32c: true });
    bad[bad.length - 1] ^= 0xff;
    await send('fe-v2.sock', bad);
    // A good connection after it: by the time its line is logged, the bad one's would have been.
    await send('fe-v2.sock', encodeForConnection('v2', { source: { address: '192.0.2.97', port: 41021 }, destination: { address: '192.0.2.1', port: 1 } }));
    await logLineFor(41021);
    await receivedFor(41021);
    expect(haproxy!.lines.some((line) => line.includes('|41020|'))).toBe(false);
    expect(received.has(41020)).toBe(false);
  });
});
