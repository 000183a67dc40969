/**
 * The pure half of `npm run bench:kernel` (src/bench/kernel/report.ts): the spread of timings, the
 * results table, and rewriting only the text between its markers in docs/benchmarks.md.
 */
import { describe, expect, it } from 'vitest';
import { KERNEL_BEGIN, KERNEL_END, KERNEL_HEADING, kernelTable, spliceKernelSection, spread, type SizeResult } from '../src/bench/kernel/report.js';

describe('bench:kernel report', () => {
  it('spread gives the median, nearest-rank p90 and max', () => {
    expect(spread([5, 1, 3])).toEqual({ median: 3, p90: 5, max: 5 });
    expect(spread([4, 1, 3, 2])).toEqual({ median: 2.5, p90: 4, max: 4 });
    const twenty = Array.from({ length: 20 }, (_, i) => i + 1);
    expect(spread(twenty)).toEqual({ median: 10.5, p90: 18, max: 20 });
    expect(spread([]).median).toBeNaN();
  });

  it('prints one row per step with times and the slots moved', () => {
    const result: SizeResult = {
      tableSize: 65537, backends: 10, loadMs: 3191.6, loadNftMs: 1936.5,
      downMs: [946.3, 916.4, 804.2], downNftMs: [299.4, 370.8, 366.2], downMoved: [6554, 6554, 6553],
      upMs: [863.3, 1377.4, 570.5], upNftMs: [302.3, 341.1, 272.2], upMoved: [6554, 6554, 6554],
    };
    const lines = kernelTable([result]).split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[2]).toMatch(/^\| 65,537 +\| initial load \(10 backends\) \| 1 +\| 3192 +\| 1937 +\| 65537 +\|$/);
    expect(lines[3]).toMatch(/^\| 65,537 +\| one backend down +\| 3 +\| 916 \/ 946 \/ 946 +\| 366 \/ 371 \/ 371 +\| 6553–6554 \(median 6554\) \|$/);
    expect(lines[4]).toMatch(/\| 863 \/ 1377 \/ 1377 +\| 302 \/ 341 \/ 341 +\| 6554 +\|$/);
  });

  it('replaces only the text between the markers, and appends them under a heading when absent', () => {
    const document = `# Benchmarks\n\nprose before\n\n${KERNEL_BEGIN}\nold figures\n${KERNEL_END}\n\nprose after\n`;
    expect(spliceKernelSection(document, 'new figures\n')).toBe(`# Benchmarks\n\nprose before\n\n${KERNEL_BEGIN}\nnew figures\n${KERNEL_END}\n\nprose after\n`);
    expect(spliceKernelSection('# Benchmarks\n', 'figures')).toBe(`# Benchmarks\n\n${KERNEL_HEADING}\n\n${KERNEL_BEGIN}\nfigures\n${KERNEL_END}\n`);
  });
});
