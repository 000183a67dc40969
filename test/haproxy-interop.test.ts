/**
 * l4lb's PROXY protocol against a real HAProxy (Debian's 2.6) over loopback TCP, both ways:
 *
 *   client@127.0.0.X → HAProxy `send-proxy` / `send-proxy-v2` → l4lb `proxyProtocol.accept`
 *     → named backends: l4lb's access log shows client 127.0.0.X:port, and the backend it chose is
 *       the one the Maglev picker gives for 127.0.0.X (hashing used the header's address).
 *   client@127.0.0.Y → l4lb `proxyProtocol.send: v1 | v2` → HAProxy `bind … accept-proxy`
 *     → a named backend: HAProxy's log shows client 127.0.0.Y:port and l4lb's listener as the
 *       frontend address, and the client reads the backend's greeting through both.
 *
 * HAProxy runs in the foreground (-W -db) from a generated config in a temp dir; readiness is its
 * "Loading success." line, not a sleep; it is stopped by PID in afterAll. Runs when haproxy is
 * installed; with CI=true a missing haproxy fails.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyServiceConfig } from '../src/config/index.js';
import { createPicker } from '../src/hashing/index.js';
import { flowKey } from '../src/hashing/keys.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import { slotHashOf } from '../src/services/index.js';
import { backend, proxyService } from './helpers/config.js';
import { captureLog, type CapturedLog } from './helpers/log.js';
import { haproxyInstalled, startHaproxy, type Haproxy } from './helpers/haproxy.js';
import { connectClient, freePort, readLine, startNamedServer, type TestServer } from './helpers/net.js';
import { requirement } from './helpers/skip.js';

const withHaproxy = requirement('interop with a real HAProxy over loopback TCP', haproxyInstalled ? undefined : 'haproxy is not installed');

describe.skipIf(withHaproxy.skip)(withHaproxy.title, () => {
  let dir = '';
  let haproxy: Haproxy | undefined;
  let balancer: Balancer | undefined;
  const servers: TestServer[] = [];
  const sockets: Socket[] = [];
  const log: CapturedLog = captureLog();
  /** HAProxy frontends: v1 and v2 in front of l4lb. */
  const front = { v1: 0, v2: 0 };
  /** HAProxy accept-proxy listeners behind l4lb. */
  const behind = { v1: 0, v2: 0 };
  /** l4lb listeners. */
  const l4lb = { accepting: 0, sendV1: 0, sendV2: 0 };
  let accepting: ProxyServiceConfig;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'l4lb-haproxy-interop-'));
    for (const name of ['b1', 'b2', 'b3', 'hb']) servers.push(await startNamedServer(name));
    front.v1 = await freePort();
    front.v2 = await freePort();
    behind.v1 = await freePort();
    behind.v2 = await freePort();

    accepting = { ...proxyService(servers.slice(0, 3).map((server, i) => backend(`b${i + 1}`, server.port))), name: 'accepting', proxyProtocol: { accept: ['127.0.0.1'] } };
    accepting.timeouts = { ...accepting.timeouts, proxyHeader: 3000 };
    const sendV1: ProxyServiceConfig = { ...proxyService([backend('haproxy-v1', behind.v1)]), name: 'send-v1', proxyProtocol: { send: 'v1' } };
    const sendV2: ProxyServiceConfig = { ...proxyService([backend('haproxy-v2', behind.v2)]), name: 'send-v2', proxyProtocol: { send: 'v2' } };
    balancer = await startBalancer({ services: [accepting, sendV1, sendV2] }, { logger: log.logger });
    l4lb.accepting = balancer.address('accepting').port;
    l4lb.sendV1 = balancer.address('send-v1').port;
    l4lb.sendV2 = balancer.address('send-v2').port;

    const config = `
global
    log stdout format raw local0 info
defaults
    mode tcp
    log global
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    log-format "PP %ft %ci|%cp|%fi|%fp"
frontend front_v1
    bind 127.0.0.1:${front.v1}
    default_backend to_l4lb_v1
frontend front_v2
    bind 127.0.0.1:${front.v2}
    default_backend to_l4lb_v2
backend to_l4lb_v1
    server l4lb 127.0.0.1:${l4lb.accepting} send-proxy
backend to_l4lb_v2
    server l4lb 127.0.0.1:${l4lb.accepting} send-proxy-v2
frontend behind_v1
    bind 127.0.0.1:${behind.v1} accept-proxy
    default_backend named
frontend behind_v2
    bind 127.0.0.1:${behind.v2} accept-proxy
    default_backend named
backend named
    server hb 127.0.0.1:${servers[3].port}
`;
    writeFileSync(join(dir, 'haproxy.cfg'), config);
    haproxy = await startHaproxy(join(dir, 'haproxy.cfg'));
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await haproxy?.stop();
    await balancer?.close(0);
    for (const server of servers) await server.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function haproxyLine(match: string): Promise<string> {
    if (haproxy === undefined) throw new Error('haproxy did not start');
    return haproxy.line(match);
  }

  async function client(port: number, source: string): Promise<Socket> {
    const socket = await connectClient(port, source);
    sockets.push(socket);
    return socket;
  }

  it.each(['v1', 'v2'] as const)('HAProxy send-proxy%s in front: l4lb logs and hashes on the real client (12 sources)', async (version) => {
    const picker = createPicker('maglev', accepting.backends, { tableSize: accepting.tableSize, slotHash: slotHashOf(accepting) });
    const chosen = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const source = `127.0.${version === 'v1' ? 31 : 32}.${10 + i}`;
      const socket = await client(front[version], source);
      const clientPort = socket.localPort as number;
      const name = await readLine(socket);
      expect(name).toBe(picker.pick(flowKey(source))?.name);
      chosen.add(name);
      socket.end();
      const record = await log.waitFor((r) => r.msg === 'connection' && r.service === 'accepting' && r.client === `${source}:${clientPort}`);
      expect(record).toMatchObject({ backend: name, peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
    }
    expect(chosen.size).toBeGreaterThan(1); // several backends, so the choice really depended on the source
    expect(balancer?.stats().find((s) => s.name === 'accepting')?.rejected['proxy-header-invalid']).toBe(0);
  });

  it.each(['v1', 'v2'] as const)('l4lb send %s in front of HAProxy accept-proxy: HAProxy sees the real client and l4lb’s listener', async (version) => {
    const port = version === 'v1' ? l4lb.sendV1 : l4lb.sendV2;
    const source = version === 'v1' ? '127.0.41.7' : '127.0.42.7';
    const socket = await client(port, source);
    const clientPort = socket.localPort as number;
    expect(await readLine(socket)).toBe('hb'); // through l4lb and HAProxy to the backend behind it
    socket.end();
    const line = await haproxyLine(`${source}|${clientPort}|`);
    expect(line).toBe(`PP behind_${version} ${source}|${clientPort}|127.0.0.1|${port}`);
  });
});
