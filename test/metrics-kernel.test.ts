/**
 * The kernel metrics (src/observability/metrics.ts) from /stats `kernel` rows: slots for nat and
 * dsr backends, packets and bytes only where nft counts them (nat), pins only for dsr services, and
 * no pin sample at all when the writer could not list flows_ID. Read with a Prometheus text parser.
 */
import { EventEmitter } from 'node:events';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { describe, expect, it } from 'vitest';
import type { KernelServiceStats } from '../src/kernel/index.js';
import { createMetrics } from '../src/observability/metrics.js';
import type { ServiceStateEvents } from '../src/services/index.js';
import { metricValue } from './helpers/metrics.js';

const rows: KernelServiceStats[] = [
  {
    service: 'web-nat', mode: 'nat', table: 'inet l4lb_nat', vip: '203.0.113.100:80', slots: 13, conntrack: 4,
    backends: [{ name: 'b1', address: '192.0.2.11:80', state: 'active', health: 'up', slots: 13, packets: 120, bytes: 4096 }],
  },
  {
    service: 'web', mode: 'dsr', table: 'ip l4lb_dsr', vip: '192.0.2.200:80', slots: 31, pins: 60,
    backends: [
      { name: 'b1', address: '203.0.113.11:80', state: 'active', health: 'up', slots: 31, pins: 41 },
      { name: 'b2', address: '203.0.113.12:80', state: 'active', health: 'down', slots: 0, pins: 19 },
    ],
  },
  {
    service: 'api', mode: 'dsr', table: 'ip l4lb_dsr', vip: '192.0.2.201:443', slots: 31,
    backends: [{ name: 'a1', address: '203.0.113.21:443', state: 'active', health: 'up', slots: 31 }],
  },
];

async function scrape(kernel: KernelServiceStats[]) {
  const metrics = createMetrics({ stats: () => [], events: new EventEmitter<ServiceStateEvents>(), kernel: () => Promise.resolve(kernel) });
  try {
    return parsePrometheusTextFormat(await metrics.render());
  } finally {
    metrics.close();
  }
}

describe('kernel metrics', () => {
  it('dsr services: slots and pins per backend, pins per service; nat keeps its counters', async () => {
    const families = await scrape(rows);
    expect(metricValue(families, 'l4lb_kernel_backend_slots', { service: 'web', backend: 'b1' })).toBe(31);
    expect(metricValue(families, 'l4lb_kernel_backend_slots', { service: 'web-nat', backend: 'b1' })).toBe(13);
    expect(metricValue(families, 'l4lb_kernel_pins', { service: 'web' })).toBe(60);
    expect(metricValue(families, 'l4lb_kernel_backend_pins', { service: 'web', backend: 'b2' })).toBe(19);
    expect(metricValue(families, 'l4lb_kernel_backend_packets_total', { service: 'web-nat', backend: 'b1' })).toBe(120);
    expect(metricValue(families, 'l4lb_kernel_flows', { service: 'web-nat' })).toBe(4);
    const samples = (name: string) => families.find((family) => family.name === name)?.metrics ?? [];
    // The director has no per-backend counters: no packet or byte sample for a dsr backend.
    expect(samples('l4lb_kernel_backend_packets_total').map((metric) => metric.labels?.service)).toEqual(['web-nat']);
    expect(samples('l4lb_kernel_backend_bytes_total').map((metric) => metric.labels?.service)).toEqual(['web-nat']);
    // flows_ID unreadable for api: no pin sample rather than a 0.
    expect(samples('l4lb_kernel_pins').map((metric) => metric.labels?.service)).toEqual(['web']);
    expect(samples('l4lb_kernel_backend_pins').map((metric) => metric.labels?.service)).toEqual(['web', 'web']);
  });

  it('a service gone from the rows leaves no stale pin sample', async () => {
    let current = rows;
    const metrics = createMetrics({ stats: () => [], events: new EventEmitter<ServiceStateEvents>(), kernel: () => Promise.resolve(current) });
    await metrics.render();
    current = rows.filter((row) => row.service !== 'web');
    const families = parsePrometheusTextFormat(await metrics.render());
    metrics.close();
    expect(families.find((family) => family.name === 'l4lb_kernel_pins')?.metrics ?? []).toEqual([]);
    expect(families.find((family) => family.name === 'l4lb_kernel_backend_pins')?.metrics ?? []).toEqual([]);
  });
});
