/**
 * /metrics: the admin API's Prometheus text, read with a Prometheus text-format parser
 * (parse-prometheus-text-format, not a regex), and its counters against the traffic this test sent:
 * connections per service and backend, bytes each way, connect errors, health checks, backend up.
 */
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminServer } from '../src/admin/server.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import type { CheckEvent } from '../src/services/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog, type CapturedLog } from './helpers/log.js';
import { connectClient, freePort, readAll, startNamedServer, type TestServer } from './helpers/net.js';
import { metricValue } from './helpers/metrics.js';

let servers: TestServer[] = [];
let balancer: Balancer;
let admin: AdminServer;
let log: CapturedLog;
let deadPort = 0;
const checks: CheckEvent[] = [];

beforeAll(async () => {
  servers = await Promise.all(['alpha', 'beta'].map((name) => startNamedServer(name)));
  deadPort = await freePort();
  log = captureLog();
  balancer = await startBalancer(
    configOf(
      proxyService([backend('alpha', servers[0].port), backend('beta', servers[1].port)], { name: 'web', balance: 'roundrobin' }),
      proxyService([backend('gone', deadPort), backend('alpha', servers[0].port)], {
        name: 'db',
        balance: 'roundrobin',
        retries: 1,
        healthCheck: { type: 'tcp', interval: 100, timeout: 100, rise: 1, fall: 100, initial: 'fully-up' },
      }),
    ),
    { logger: log.logger },
  );
  balancer.events.on('check', (event) => checks.push(event));
  admin = await startAdmin(balancer, { listen: { host: '127.0.0.1', port: 0 } });
});

afterAll(async () => {
  await admin?.close();
  await balancer?.close(0);
  await Promise.all(servers.map((server) => server.close()));
});

async function scrape(): Promise<PrometheusFamily[]> {
  const response = await fetch(`http://127.0.0.1:${admin.address().port}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusTextFormat(await response.text());
}


/** One connection through `service`: sends `payload`, reads the backend's name line plus the echo. */
async function exchange(service: string, payload: string): Promise<string> {
  const socket = await connectClient(balancer.address(service).port);
  socket.end(payload);
  return (await readAll(socket)).toString();
}

describe('GET /metrics', () => {
  it('counts exactly the connections and bytes sent, per service and backend', async () => {
    const payloads = ['a', 'bb', 'ccc', 'dddd', 'eeeee', 'ffffff'];
    const replies: string[] = [];
    for (const payload of payloads) replies.push(await exchange('web', payload));
    await log.waitForAccess(payloads.length);
    const up = payloads.reduce((sum, payload) => sum + payload.length, 0);
    const down = replies.reduce((sum, reply) => sum + reply.length, 0);
    const perBackend = (name: string) => replies.filter((reply) => reply.startsWith(`${name}\n`));
    expect(perBackend('alpha')).toHaveLength(3); // roundrobin over two backends

    const families = await scrape();
    expect(metricValue(families, 'l4lb_connections_total', { service: 'web' })).toBe(6);
    expect(metricValue(families, 'l4lb_connections_current', { service: 'web' })).toBe(0);
    expect(metricValue(families, 'l4lb_bytes_total', { service: 'web', direction: 'up' })).toBe(up);
    expect(metricValue(families, 'l4lb_bytes_total', { service: 'web', direction: 'down' })).toBe(down);
    for (const name of ['alpha', 'beta']) {
      const sent = replies.map((reply, i) => [reply, payloads[i]] as const).filter(([reply]) => reply.startsWith(`${name}\n`));
      expect(metricValue(families, 'l4lb_backend_connections_total', { service: 'web', backend: name })).toBe(3);
      expect(metricValue(families, 'l4lb_backend_bytes_total', { service: 'web', backend: name, direction: 'up' })).toBe(sent.reduce((sum, [, payload]) => sum + payload.length, 0));
      expect(metricValue(families, 'l4lb_backend_bytes_total', { service: 'web', backend: name, direction: 'down' })).toBe(sent.reduce((sum, [reply]) => sum + reply.length, 0));
      expect(metricValue(families, 'l4lb_backend_connect_errors_total', { service: 'web', backend: name })).toBe(0);
      expect(metricValue(families, 'l4lb_backend_up', { service: 'web', backend: name })).toBe(1);
      expect(metricValue(families, 'l4lb_backend_admin_state', { service: 'web', backend: name, state: 'active' })).toBe(1);
    }
    expect(families.find((family) => family.name === 'l4lb_connections_total')?.type).toBe('COUNTER');

    // A second scrape after more traffic: counters grow by exactly that traffic.
    await exchange('web', 'xyz');
    await log.waitForAccess(payloads.length + 1);
    expect(metricValue(await scrape(), 'l4lb_connections_total', { service: 'web' })).toBe(7);
  });

  it('counts connect errors, health-check results (active and passive) and durations', async () => {
    // "gone" refuses: roundrobin sends one of two clients to it first; retried on alpha, both succeed.
    for (const payload of ['ping', 'pong']) expect((await exchange('db', payload)).startsWith('alpha\n')).toBe(true);
    // fall 100: only the passive observations and probes counted so far; wait for probes of both.
    await new Promise<void>((resolve) => {
      const seen = (): boolean => checks.some((c) => c.backend === 'gone' && c.source === 'active') && checks.some((c) => c.backend === 'alpha' && c.service === 'db' && c.source === 'active');
      if (seen()) resolve();
      balancer.events.on('check', () => seen() && resolve());
    });
    const before = checks.length;
    const families = await scrape();
    const after = checks.length;
    const db = balancer.stats().find((service) => service.name === 'db');
    expect(metricValue(families, 'l4lb_backend_connect_errors_total', { service: 'db', backend: 'gone' })).toBe(db?.backends[0].failures);
    expect(metricValue(families, 'l4lb_backend_connect_errors_total', { service: 'db', backend: 'gone' })).toBeGreaterThanOrEqual(1);
    const passes = metricValue(families, 'l4lb_health_checks_total', { service: 'db', backend: 'alpha', source: 'active', result: 'pass' });
    const refusals = metricValue(families, 'l4lb_health_checks_total', { service: 'db', backend: 'gone', source: 'active', result: 'connect' });
    const passive = metricValue(families, 'l4lb_health_checks_total', { service: 'db', backend: 'gone', source: 'passive', result: 'connect' });
    const count = (backendName: string, source: string, ok: boolean, events: CheckEvent[]) =>
      events.filter((c) => c.service === 'db' && c.backend === backendName && c.source === source && c.result.ok === ok).length;
    expect(passes).toBeGreaterThanOrEqual(count('alpha', 'active', true, checks.slice(0, before)));
    expect(passes).toBeLessThanOrEqual(count('alpha', 'active', true, checks.slice(0, after)));
    expect(refusals).toBeGreaterThanOrEqual(1);
    expect(passive).toBe(count('gone', 'passive', false, checks.slice(0, after)));
    expect(passive).toBeGreaterThanOrEqual(1);
    const histogram = families.find((family) => family.name === 'l4lb_health_check_duration_seconds');
    expect(histogram?.type).toBe('HISTOGRAM');
    // (the parser keeps a histogram's buckets but not its labels)
    expect(Number(histogram?.metrics[0].buckets?.['+Inf'])).toBeGreaterThanOrEqual(1);
    expect(metricValue(families, 'l4lb_backend_up', { service: 'db', backend: 'alpha' })).toBe(1);
  });
});
