import { describe, expect, it } from 'vitest';
import { emptySamples, markdownTables, PATH_NAMES, markdownTargets, summarize, verdict, type PathName, type PathSamples, type Summary } from '../src/bench/proxy/report.js';
import { placeOf } from '../src/bench/proxy/places.js';
import { l4lbConfig, type BackendPorts } from '../src/bench/proxy/configs.js';
import { parseConfig } from '../src/config/index.js';

/** Samples of one run: new connections/s and keep-alive requests/s. */
function samplesOf(conn: number, keepAlive: number): PathSamples {
  return { ...emptySamples(), connPerSecond: [conn], keepAlivePerSecond: [keepAlive] };
}

function run(paths: Partial<Record<PathName, PathSamples>>): { summary: Summary; samples: Map<PathName, PathSamples> } {
  const samples = new Map(Object.entries(paths) as [PathName, PathSamples][]);
  const summary: Summary = {};
  for (const [name, pathSamples] of samples) summary[name] = summarize(pathSamples, 100);
  return { summary, samples };
}

function row(table: string, text: string): string {
  const line = table.split('\n').find((candidate) => candidate.startsWith(`| ${text} |`));
  if (line === undefined) throw new Error(`no row "${text}" in:\n${table}`);
  return line;
}

describe('bench:proxy kernel targets', () => {
  it('verdict follows the bound on the ratio, in the metric\'s direction', () => {
    expect(verdict(15, 10, 'conn', 1.5)).toBe('met');
    expect(verdict(14.9, 10, 'conn', 1.5)).toBe('**not met**');
    expect(verdict(1.3, 1, 'p99', 1.3)).toBe('met');
    expect(verdict(1.31, 1, 'p99', 1.3)).toBe('**not met**');
    expect(verdict(undefined, 10, 'conn', 1.5)).toBe('not measured');
    expect(verdict(10, 0, 'conn', 1.5)).toBe('not measured');
    expect(verdict(10, 5, 'cpuPerGb', undefined)).toBe('reported');
  });

  it('checks the kernel path against HAProxy and against direct with conntrack', () => {
    const { summary, samples } = run({
      haproxy: samplesOf(4000, 12000),
      'direct-ct': samplesOf(9000, 36000),
      kernel: samplesOf(6500, 17000),
    });
    const targets = markdownTargets(summary, samples) ?? '';
    expect(row(targets, 'new connections/s ≥ 1.5× HAProxy')).toMatch(/1\.63× .*\| met \|$/);
    expect(row(targets, 'keep-alive request rate ≥ 1.5× HAProxy')).toMatch(/\*\*not met\*\* \|$/);
    expect(row(targets, 'new connections/s ≥ 0.8× direct with conntrack')).toMatch(/0\.72× .*\*\*not met\*\* \|$/);
    expect(row(targets, 'bulk throughput, 1 stream ≥ 1.5× HAProxy')).toMatch(/not measured \|$/);
  });

  it('shows beside each target against HAProxy the ratio direct with conntrack reaches, and says when the bound is above it', () => {
    const { summary, samples } = run({
      haproxy: samplesOf(4000, 12000),
      'direct-ct': samplesOf(9000, 16000),
      kernel: samplesOf(6500, 15000),
    });
    const targets = markdownTargets(summary, samples) ?? '';
    expect(row(targets, 'new connections/s ≥ 1.5× HAProxy')).toMatch(/\| 2\.25× \(direct-ct\) \| met \|$/);
    expect(row(targets, 'keep-alive request rate ≥ 1.5× HAProxy')).toMatch(/\| 1\.33× \(direct-ct\) \| \*\*not met\*\*, the bound is above the ceiling \|$/);
    expect(row(targets, 'new connections/s ≥ 0.8× direct with conntrack')).toMatch(/\| — \| \*\*not met\*\* \|$/);
    // The proxy's own targets name no ceiling: no such column.
    expect(markdownTargets(run({ haproxy: samplesOf(4000, 12000), l4lb: samplesOf(3000, 11000) }).summary) ?? '').not.toContain('ceiling');
  });

  it('leaves out kernel targets whose reference path did not run', () => {
    const { summary, samples } = run({ haproxy: samplesOf(4000, 12000), kernel: samplesOf(6500, 17000) });
    const targets = markdownTargets(summary, samples) ?? '';
    expect(targets).toContain('new connections/s ≥ 1.5× HAProxy');
    expect(targets).not.toContain('direct with conntrack');
  });

  it('prints kernel ratio rows against HAProxy and direct with conntrack, with — for its CPU', () => {
    const { summary } = run({
      haproxy: { ...samplesOf(4000, 12000), connCpuTicks: 40, connCount: 8000 },
      'direct-ct': samplesOf(9000, 36000),
      kernel: samplesOf(6500, 17000),
    });
    const tables = markdownTables(summary);
    expect(row(tables, 'kernel / haproxy')).toMatch(/^\| kernel \/ haproxy \| 1\.63× \| — \| 1\.42× \|/);
    expect(row(tables, 'kernel / direct-ct')).toMatch(/^\| kernel \/ direct-ct \| 0\.72× \|/);
    expect(row(tables, 'l4lb nat (kernel)')).toMatch(/^\| l4lb nat \(kernel\) \| 6,500 \| — \|/);
  });
});

describe('bench:proxy namespaces', () => {
  it('runs each path that loads conntrack tables in a namespace of its own', () => {
    // Sharing one, each path's SYNs met the other's TIME_WAIT sockets at the backend (places.ts).
    expect(placeOf('direct-ct')).toBe('direct-ct');
    expect(placeOf('kernel')).toBe('kernel');
    expect(PATH_NAMES.filter((name) => placeOf(name) === 'plain')).toEqual(['direct', 'l4lb', 'l4lb-sni', 'l4lb2', 'haproxy', 'haproxy-tuned', 'nginx']);
  });
});

describe('bench:proxy SNI routing cost', () => {
  it('is the CPU per TLS connection through the SNI listener minus through a plain port', () => {
    // 100 ticks/s: 30 ticks over 1,000 connections = 300 µs; 36 ticks = 360 µs.
    const { summary, samples } = run({
      l4lb: { ...emptySamples(), tlsPerSecond: [900], tlsCpuTicks: 30, tlsCount: 1000 },
      'l4lb-sni': { ...emptySamples(), tlsPerSecond: [850], tlsCpuTicks: 36, tlsCount: 1000 },
    });
    const targets = markdownTargets(summary, samples) ?? '';
    expect(row(targets, 'CPU µs per TLS connection (reported)')).toMatch(/\| 360 \| 300 \(l4lb\) \| 1\.20× \|.*\| reported \|$/);
    expect(row(targets, 'new TLS connections/s (reported)')).toMatch(/\| 850 \| 900 \(l4lb\) \| 0\.94× \| 0\.94× \(0\.94–0\.94\) \| reported \|$/);
    expect(targets).toContain('SNI routing cost per connection (l4lb\'s CPU per TLS connection through the SNI listener minus through a plain port): **60 µs**.');
    expect(row(markdownTables(summary), 'l4lb-sni / l4lb')).toContain('0.94×');
  });

  it('says nothing about SNI without both l4lb paths', () => {
    const { summary, samples } = run({ l4lb: { ...emptySamples(), tlsPerSecond: [900], tlsCpuTicks: 30, tlsCount: 1000 } });
    expect(markdownTargets(summary, samples) ?? '').not.toContain('SNI');
  });

  it("the l4lb-sni path's file is a valid configuration whose TLS port is a listener routing the wrk server name", () => {
    const ports: BackendPorts = { bulk: 1001, http: 1002, idle: 1003, tls: 1004 };
    const text = l4lbConfig({ bulk: 2001, http: 2002, idle: 2003, tls: 2004 }, ports, { balance: 'maglev', maxConnections: 100, sni: true });
    const config = parseConfig(text, 'bench.yaml');
    expect(config.listeners).toEqual([expect.objectContaining({ routes: [{ sni: '127.0.0.1', service: 'bench-tls' }] })]);
    const tls = config.services.find((service) => service.name === 'bench-tls');
    expect(tls).toMatchObject({ mode: 'proxy' });
    expect(config.services.filter((service) => service.mode === 'proxy' && service.listen.length > 0).map((service) => service.name)).toEqual(['bench-bulk', 'bench-http', 'bench-idle']);
  });
});
