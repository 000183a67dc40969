/**
 * `npm run bench:hash`: the hashing core against npm `hashring` in the same run, for N = 10, 100,
 * 1000 backends: table build time, lookups per second, memory, imbalance (max/mean share over the
 * keys), and keys moved when one backend is removed (against the ideal 1/N). Prints the table and
 * writes it, with the command and a chart, into docs/hashing.md.
 *
 * A program, not a test: it asserts nothing; the figures are for reading. Run with --expose-gc (the
 * npm script does) so memory is measured after collection.
 */
import HashRing from 'hashring';
import { writeFileSync } from 'node:fs';
import { createPicker, type Algorithm, type Backend } from '../hashing/index.js';
import { formatBytes, formatCount, machineLine, markdownTable, replaceSection } from './report.js';

type Contender = Algorithm | 'hashring';
const CONTENDERS: readonly Contender[] = ['hashring', 'ring', 'maglev', 'rendezvous'];
const SIZES = [10, 100, 1000] as const;
const KEY_COUNT = Number(process.env.L4LB_BENCH_KEYS ?? 1_000_000);
const PASSES = 3;

interface Lookup {
  (key: string): string | undefined;
}

interface Row {
  contender: Contender;
  n: number;
  buildMs: number;
  lookupsPerSecond: number;
  memoryBytes: number;
  imbalance: number;
  moved: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

function heapNow(): number {
  gc?.();
  gc?.();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

function backendsOf(n: number): Backend[] {
  return Array.from({ length: n }, (_, i) => ({ name: `10.${i >> 8}.${i & 255}.1:5432`, weight: 1 }));
}

function build(contender: Contender, backends: readonly Backend[]): Lookup {
  if (contender === 'hashring') {
    const ring = new HashRing(backends.map((b) => b.name));
    return (key) => ring.get(key);
  }
  const picker = createPicker(contender, backends);
  return (key) => picker.pick(key)?.name;
}

/** Client-address-like keys, unique, so no cache (hashring has an LRU) can help. */
const keys: string[] = Array.from({ length: KEY_COUNT }, (_, i) => {
  const v = (0x0b000000 + Math.imul(i, 0x9e3779b1)) >>> 0;
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
});

/** Pre: values is not empty (callers pass five build times). */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

function measure(contender: Contender, n: number): Row {
  const backends = backendsOf(n);
  const builds: number[] = [];
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    build(contender, backends);
    builds.push(performance.now() - start);
  }
  // Memory: keep several instances alive and divide, so collector noise averages out.
  const copies = n >= 1000 ? 3 : 10;
  const before = heapNow();
  const kept = Array.from({ length: copies }, () => build(contender, backends));
  const memoryBytes = Math.max(0, (heapNow() - before) / copies);
  let lookup: Lookup = kept[0]!; // copies ≥ 3
  kept.length = 0;

  // Warm up, then time passes over all keys and keep the fastest: on a shared machine the slower
  // passes measure the neighbours. The last pass also gives the shares.
  // The timed loops are left as they were: i < keys.length bounds every keys[i] and owner[i].
  for (let i = 0; i < Math.min(20_000, keys.length); i++) lookup(keys[i]!);
  const owner = new Array<string | undefined>(keys.length);
  let seconds = Infinity;
  for (let pass = 0; pass < PASSES; pass++) {
    const start = performance.now();
    for (let i = 0; i < keys.length; i++) owner[i] = lookup(keys[i]!);
    seconds = Math.min(seconds, (performance.now() - start) / 1000);
  }

  const counts = new Map<string, number>();
  for (const name of owner) counts.set(name!, (counts.get(name!) ?? 0) + 1);
  const imbalance = Math.max(...counts.values()) / (keys.length / n);

  const removed = backends[n >> 1]!.name; // n ≥ 10 backends
  lookup = build(contender, backends.filter((b) => b.name !== removed));
  let moved = 0;
  for (let i = 0; i < keys.length; i++) if (lookup(keys[i]!) !== owner[i]) moved++;

  return { contender, n, buildMs: median(builds), lookupsPerSecond: keys.length / seconds, memoryBytes, imbalance, moved: moved / keys.length };
}

function chart(rows: readonly Row[]): string {
  // Lookups per second, log scale, grouped by N: a plain SVG that any browser or viewer shows.
  const colors: Record<Contender, string> = { hashring: '#9e9e9e', ring: '#1f77b4', maglev: '#d62728', rendezvous: '#2ca02c' };
  const width = 720;
  const height = 360;
  const left = 70;
  const bottom = 300;
  const top = 40;
  const max = Math.log10(Math.max(...rows.map((r) => r.lookupsPerSecond)) * 2);
  const min = 4; // 10k lookups/s
  const y = (v: number) => bottom - ((Math.log10(v) - min) / (max - min)) * (bottom - top);
  const groupWidth = (width - left - 20) / SIZES.length;
  const barWidth = groupWidth / (CONTENDERS.length + 1);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">Lookups per second (log scale), unique address keys</text>`,
  ];
  for (let exp = min; exp <= Math.floor(max); exp++) {
    parts.push(`<line x1="${left}" x2="${width - 20}" y1="${y(10 ** exp)}" y2="${y(10 ** exp)}" stroke="#ddd"/>`);
    parts.push(`<text x="${left - 6}" y="${y(10 ** exp) + 4}" text-anchor="end">${formatCount(10 ** exp)}</text>`);
  }
  SIZES.forEach((n, g) => {
    const x0 = left + g * groupWidth + barWidth / 2;
    CONTENDERS.forEach((c, i) => {
      const row = rows.find((r) => r.n === n && r.contender === c);
      if (!row) return;
      const x = x0 + i * barWidth;
      parts.push(`<rect x="${x.toFixed(1)}" y="${y(row.lookupsPerSecond).toFixed(1)}" width="${(barWidth - 4).toFixed(1)}" height="${(bottom - y(row.lookupsPerSecond)).toFixed(1)}" fill="${colors[c]}"/>`);
    });
    parts.push(`<text x="${x0 + (CONTENDERS.length * barWidth) / 2}" y="${bottom + 18}" text-anchor="middle">N = ${n}</text>`);
  });
  CONTENDERS.forEach((c, i) => {
    parts.push(`<rect x="${left + i * 140}" y="${bottom + 34}" width="12" height="12" fill="${colors[c]}"/>`);
    parts.push(`<text x="${left + i * 140 + 18}" y="${bottom + 44}">${c === 'hashring' ? 'npm hashring' : c}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

const rows: Row[] = [];
for (const n of SIZES) {
  for (const contender of CONTENDERS) {
    const row = measure(contender, n);
    rows.push(row);
    process.stderr.write(`measured ${contender} N=${n}: ${formatCount(row.lookupsPerSecond)} lookups/s\n`);
  }
}

const table = markdownTable(
  ['N', 'algorithm', 'build', 'lookups/s', '× hashring', 'memory', 'max/mean share', 'moved on removal', 'ideal'],
  rows.map((r) => {
    const base = rows.find((b) => b.n === r.n && b.contender === 'hashring')!;
    return [
      String(r.n),
      r.contender === 'hashring' ? 'npm hashring 3' : r.contender,
      `${r.buildMs.toFixed(2)} ms`,
      formatCount(r.lookupsPerSecond),
      r.contender === 'hashring' ? '1.0' : (r.lookupsPerSecond / base.lookupsPerSecond).toFixed(1),
      formatBytes(r.memoryBytes),
      r.imbalance.toFixed(3),
      `${(r.moved * 100).toFixed(2)}%`,
      `${(100 / r.n).toFixed(2)}%`,
    ];
  }),
);

const command = 'npm run bench:hash';
const body = [
  `Measured ${machineLine()}, ${formatCount(KEY_COUNT)} unique IPv4-address string keys (lookups/s: the best of ${PASSES} passes), maglev M = 65537, by \`${command}\`.`,
  '',
  table,
  '',
  '![lookups per second by algorithm and N](hashing-lookups.svg)',
].join('\n');

console.log(table);
const docs = new URL('../../docs/', import.meta.url);
replaceSection(new URL('hashing.md', docs).pathname, 'bench:hash', body);
writeFileSync(new URL('hashing-lookups.svg', docs), chart(rows));
console.log(`\nwrote docs/hashing.md and docs/hashing-lookups.svg`);
