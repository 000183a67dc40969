/**
 * Service counters across a reload that moves a service's listener (src/proxy/balancer.ts keeps
 * them by service name): the new listener is a new ProxyService, and /metrics must keep counting
 * from where it was — l4lb_connections_total and l4lb_bytes_total rise by exactly the new traffic.
 */
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterEach, expect, it } from 'vitest';
import { createMetrics } from '../src/observability/metrics.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog } from './helpers/log.js';
import { connectClient, readAll, startNamedServer } from './helpers/net.js';
import { metricValue } from './helpers/metrics.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});


/** `count` connections, each sending `payload` and reading the echo (name line + payload) to the end. */
async function traffic(balancer: Balancer, count: number, payload: string): Promise<void> {
  for (let i = 0; i < count; i++) {
    const socket = await connectClient(balancer.address('svc').port, undefined, balancer.address('svc').host);
    socket.end(payload);
    expect((await readAll(socket)).toString()).toBe(`echo\n${payload}`);
  }
}

it('a reload that moves the listener keeps l4lb_connections_total and l4lb_bytes_total rising by exactly the new traffic', async () => {
  const server = await startNamedServer('echo');
  const first = proxyService([backend('echo', server.port)], { name: 'svc' });
  const balancer = await startBalancer(configOf(first), { logger: captureLog().logger });
  const metrics = createMetrics(balancer);
  cleanups.push(() => server.close(), () => balancer.close(0), () => metrics.close());
  const read = async () => {
    const families = parsePrometheusTextFormat(await metrics.render());
    return {
      total: metricValue(families, 'l4lb_connections_total', { service: 'svc' }),
      up: metricValue(families, 'l4lb_bytes_total', { service: 'svc', direction: 'up' }),
      down: metricValue(families, 'l4lb_bytes_total', { service: 'svc', direction: 'down' }),
    };
  };

  await traffic(balancer, 3, 'hello');
  expect(await read()).toEqual({ total: 3, up: 15, down: 3 * (5 + 'echo\n'.length) });
  const before = balancer.address('svc');
  await balancer.reload(configOf({ ...first, listen: [{ host: '127.0.0.2', port: 0 }] }));
  expect(balancer.address('svc')).not.toEqual(before);
  await traffic(balancer, 2, 'hi');
  expect(await read()).toEqual({ total: 5, up: 15 + 4, down: 3 * 10 + 2 * 7 });
  expect(balancer.stats()[0]).toMatchObject({ total: 5, refused: 0, bytesUp: 19, bytesDown: 44 });
});

it('l4lb_connections_rejected_total counts refusals per reason, and keeps counting after the listener moves', async () => {
  const server = await startNamedServer('echo');
  const first = proxyService([backend('echo', server.port)], { name: 'svc', deny: ['127.0.0.9/32'] });
  const balancer = await startBalancer(configOf(first), { logger: captureLog().logger });
  const metrics = createMetrics(balancer);
  cleanups.push(() => server.close(), () => balancer.close(0), () => metrics.close());
  const denied = async (times: number) => {
    for (let i = 0; i < times; i++) {
      const { host, port } = balancer.address('svc');
      const socket = await connectClient(port, '127.0.0.9', host);
      expect((await readAll(socket)).length).toBe(0); // closed before any backend byte
    }
  };
  const read = async (reason: string) => metricValue(parsePrometheusTextFormat(await metrics.render()), 'l4lb_connections_rejected_total', { service: 'svc', reason });

  await denied(3);
  expect(await read('refused-denied')).toBe(3);
  expect(await read('proxy-header-invalid')).toBe(0);
  await balancer.reload(configOf({ ...first, listen: [{ host: '127.0.0.2', port: 0 }] }));
  await denied(2);
  expect(await read('refused-denied')).toBe(5);
  expect(balancer.stats()[0].rejected['refused-denied']).toBe(5);
});
