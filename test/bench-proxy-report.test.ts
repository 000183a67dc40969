import { describe, expect, it } from 'vitest';
import { emptySamples, markdownTables, markdownTargets, summarize, verdict, type PathName, type PathSamples, type Summary } from '../src/bench/proxy/report.js';

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
