/**
 * What a Prometheus user expects of /metrics beside l4lb's own counters: the queue length per
 * service, prom-client's default process and Node.js metrics under their standard names,
 * `l4lb_build_info{version}`, and `admin.metricsPublic` opening GET /metrics (and nothing else)
 * to a scraper without the token. Read with a text-format parser, not a regex.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminServer } from '../src/admin/server.js';
import { parseConfig } from '../src/config/index.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog } from './helpers/log.js';
import { connectClient, readLine, startNamedServer, waitUntil, type TestServer } from './helpers/net.js';
import { metricValue } from './helpers/metrics.js';

const TOKEN = 'metrics-token-0123456789';
let server: TestServer;
let balancer: Balancer;
let admin: AdminServer;
const clients: Socket[] = [];

beforeAll(async () => {
  server = await startNamedServer('alpha');
  // One slot: a second client waits in the queue for as long as the first stays.
  balancer = await startBalancer(configOf(proxyService([backend('alpha', server.port)], { name: 'web', maxConnections: 1, timeouts: { connect: 3000, idle: 60000, queue: 60000, drain: 0 } })), {
    logger: captureLog().logger,
  });
  admin = await startAdmin(balancer, { listen: { host: '127.0.0.1', port: 0 }, token: TOKEN, metricsPublic: true });
});

afterAll(async () => {
  for (const client of clients) client.destroy();
  await admin?.close();
  await balancer?.close(0);
  await server?.close();
});

const base = (): string => `http://127.0.0.1:${admin.address().port}`;

async function scrape(): Promise<PrometheusFamily[]> {
  const response = await fetch(`${base()}/metrics`);
  expect(response.status).toBe(200);
  return parsePrometheusTextFormat(await response.text());
}

describe('GET /metrics for a Prometheus user', () => {
  it('answers without the token when metricsPublic is set; /stats and state changes still need it', async () => {
    expect((await fetch(`${base()}/metrics`)).status).toBe(200);
    expect((await fetch(`${base()}/stats`)).status).toBe(401);
    const post = await fetch(`${base()}/services/web/backends/alpha/state`, { method: 'POST', body: '{"state":"draining"}' });
    expect(post.status).toBe(401);
    admin.setMetricsPublic(false);
    try {
      expect((await fetch(`${base()}/metrics`)).status).toBe(401);
      expect((await fetch(`${base()}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    } finally {
      admin.setMetricsPublic(true);
    }
  });

  it('shows the queue length per service', async () => {
    expect(metricValue(await scrape(), 'l4lb_connections_queued', { service: 'web' })).toBe(0);
    const first = await connectClient(balancer.address('web').port);
    clients.push(first);
    expect(await readLine(first)).toBe('alpha');
    const second = await connectClient(balancer.address('web').port);
    clients.push(second);
    await waitUntil(() => balancer.stats()[0].queued === 1);
    expect(metricValue(await scrape(), 'l4lb_connections_queued', { service: 'web' })).toBe(1);
    first.destroy();
    expect(await readLine(second)).toBe('alpha');
    expect(metricValue(await scrape(), 'l4lb_connections_queued', { service: 'web' })).toBe(0);
  });

  it('carries the default process and Node.js metrics under their standard names', async () => {
    const families = await scrape();
    const names = new Set(families.map((family) => family.name));
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds', 'process_start_time_seconds', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_version_info']) {
      expect(names, name).toContain(name);
    }
    expect(metricValue(families, 'process_start_time_seconds', {})).toBeGreaterThan(1_600_000_000);
  });

  it('says which version runs in l4lb_build_info', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(metricValue(await scrape(), 'l4lb_build_info', { version })).toBe(1);
  });
});

describe('admin.metricsPublic in the file', () => {
  it('is a boolean, off unless given', () => {
    const head = 'services: [{ name: web, listen: 127.0.0.1:7000, backends: [{ name: a, address: 127.0.0.1:7001 }] }]\n';
    expect(parseConfig(`${head}admin: { listen: 127.0.0.1:9000, metricsPublic: true }\n`, 'l4lb.yaml').admin?.metricsPublic).toBe(true);
    expect(parseConfig(`${head}admin: { listen: 127.0.0.1:9000 }\n`, 'l4lb.yaml').admin?.metricsPublic).toBeUndefined();
    expect(() => parseConfig(`${head}admin: { listen: 127.0.0.1:9000, metricsPublic: yes-please }\n`, 'l4lb.yaml')).toThrow(/metricsPublic/);
  });
});
