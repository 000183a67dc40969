/**
 * Turns the samples of a proxy benchmark run into tables (pure): medians per path, ratios to the
 * direct path and to HAProxy, l4lb's data-path targets (no bottleneck next to HAProxy `mode
 * tcp`: TARGETS) checked against HAProxy at one thread, and the kernel path's (KERNEL_TARGETS). The Markdown goes into docs/benchmarks.md between two marker comments so the
 * hand-written text around it survives a re-run.
 */

export type PathName = 'direct' | 'direct-ct' | 'l4lb' | 'l4lb-sni' | 'l4lb2' | 'haproxy' | 'haproxy-tuned' | 'nginx' | 'kernel';
export const PATH_NAMES: readonly PathName[] = ['direct', 'direct-ct', 'l4lb', 'l4lb-sni', 'l4lb2', 'haproxy', 'haproxy-tuned', 'nginx', 'kernel'];

export const PATH_LABELS: Record<PathName, string> = {
  direct: 'direct, no proxy',
  'direct-ct': 'direct, conntrack on (nft `ct state`)',
  l4lb: 'l4lb, 1 worker',
  'l4lb-sni': 'l4lb, 1 worker, TLS through an SNI listener',
  l4lb2: 'l4lb, 2 workers (`workers: 2`)',
  haproxy: 'HAProxy `mode tcp`, 1 thread',
  'haproxy-tuned': 'HAProxy, 1 thread, `option splice-auto`, `tune.bufsize 65536`',
  nginx: 'nginx `stream`, 1 worker',
  kernel: 'l4lb nat (kernel)',
};

/** The paths each path's ratio rows divide by (in this order; absent paths are left out). */
const RATIO_REFERENCES: Record<PathName, readonly PathName[]> = {
  direct: [],
  'direct-ct': ['direct'],
  l4lb: ['direct', 'haproxy', 'haproxy-tuned'],
  'l4lb-sni': ['l4lb'],
  l4lb2: ['direct', 'haproxy', 'haproxy-tuned'],
  haproxy: ['direct'],
  'haproxy-tuned': ['direct', 'haproxy'],
  nginx: ['direct', 'haproxy'],
  kernel: ['haproxy', 'haproxy-tuned', 'direct-ct'],
};

/** Everything measured on one path; arrays hold one sample per run. */
export interface PathSamples {
  bulk1Gbps: number[];
  bulk4Gbps: number[];
  /** Proxy CPU ticks and bytes received during the bulk runs (for CPU seconds per GB). */
  bulkCpuTicks: number;
  bulkBytes: number;
  connPerSecond: number[];
  /** Proxy CPU ticks and connections completed during the new-connection runs. */
  connCpuTicks: number;
  connCount: number;
  keepAlivePerSecond: number[];
  p50Ms: number[];
  p99Ms: number[];
  rssPerConnKib: number[];
  /** New TLS connections per second (wrk over https, `Connection: close`). */
  tlsPerSecond: number[];
  /** Proxy CPU ticks and connections completed during the TLS runs. */
  tlsCpuTicks: number;
  tlsCount: number;
  /** wrk socket errors and bad responses, summed (should be 0). */
  errors: number;
}

export function emptySamples(): PathSamples {
  return {
    bulk1Gbps: [], bulk4Gbps: [], bulkCpuTicks: 0, bulkBytes: 0, connPerSecond: [], connCpuTicks: 0, connCount: 0,
    keepAlivePerSecond: [], p50Ms: [], p99Ms: [], rssPerConnKib: [], tlsPerSecond: [], tlsCpuTicks: 0, tlsCount: 0, errors: 0,
  };
}

export type MetricName = 'bulk1' | 'bulk4' | 'cpuPerGb' | 'conn' | 'cpuPerConn' | 'keepAlive' | 'p50' | 'p99' | 'rssPerConn' | 'tlsConn' | 'cpuPerTlsConn';

interface MetricSpec {
  readonly header: string;
  readonly digits: number;
  /** Whether a larger value is better (for reading ratios). */
  readonly higherIsBetter: boolean;
}

export const METRICS: Record<MetricName, MetricSpec> = {
  bulk1: { header: 'bulk 1 stream Gbit/s', digits: 2, higherIsBetter: true },
  bulk4: { header: 'bulk 4 streams Gbit/s', digits: 2, higherIsBetter: true },
  cpuPerGb: { header: 'proxy CPU s/GB', digits: 3, higherIsBetter: false },
  conn: { header: 'new conn/s', digits: 0, higherIsBetter: true },
  cpuPerConn: { header: 'proxy CPU µs/conn', digits: 0, higherIsBetter: false },
  keepAlive: { header: 'keep-alive req/s', digits: 0, higherIsBetter: true },
  p50: { header: 'p50 ms', digits: 3, higherIsBetter: false },
  p99: { header: 'p99 ms', digits: 3, higherIsBetter: false },
  rssPerConn: { header: 'RSS/idle conn KiB', digits: 1, higherIsBetter: false },
  tlsConn: { header: 'new TLS conn/s', digits: 0, higherIsBetter: true },
  cpuPerTlsConn: { header: 'proxy CPU µs/TLS conn', digits: 0, higherIsBetter: false },
};
const METRIC_ORDER: readonly MetricName[] = ['bulk1', 'bulk4', 'cpuPerGb', 'conn', 'cpuPerConn', 'keepAlive', 'p50', 'p99', 'rssPerConn', 'tlsConn', 'cpuPerTlsConn'];

export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  // length ≥ 1, so mid < length, and mid − 1 ≥ 0 when length is even.
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The value of each metric on one path; undefined where it was not measured or does not apply. */
export function summarize(samples: PathSamples, clockTicksPerSecond: number): Record<MetricName, number | undefined> {
  const cpuSeconds = (ticks: number): number => ticks / clockTicksPerSecond;
  return {
    bulk1: median(samples.bulk1Gbps),
    bulk4: median(samples.bulk4Gbps),
    cpuPerGb: samples.bulkBytes > 0 && samples.bulkCpuTicks >= 0 ? cpuSeconds(samples.bulkCpuTicks) / (samples.bulkBytes / 1e9) : undefined,
    conn: median(samples.connPerSecond),
    cpuPerConn: samples.connCount > 0 ? (cpuSeconds(samples.connCpuTicks) * 1e6) / samples.connCount : undefined,
    keepAlive: median(samples.keepAlivePerSecond),
    p50: median(samples.p50Ms),
    p99: median(samples.p99Ms),
    rssPerConn: median(samples.rssPerConnKib),
    tlsConn: median(samples.tlsPerSecond),
    cpuPerTlsConn: samples.tlsCount > 0 ? (cpuSeconds(samples.tlsCpuTicks) * 1e6) / samples.tlsCount : undefined,
  };
}

export type Summary = Partial<Record<PathName, Record<MetricName, number | undefined>>>;

function format(value: number | undefined, digits: number): string {
  if (value === undefined || !Number.isFinite(value)) return '—';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ratio(value: number | undefined, reference: number | undefined): string {
  if (value === undefined || reference === undefined || reference === 0) return '—';
  return `${(value / reference).toFixed(2)}×`;
}

/** The metrics at least one path has a value for (a run of some cases only leaves the rest out). */
function measuredMetrics(summary: Summary): MetricName[] {
  return METRIC_ORDER.filter((m) => PATH_NAMES.some((name) => summary[name]?.[m] !== undefined));
}

/** Markdown table of the values, then one of ratios of each proxy to direct and to HAProxy. */
export function markdownTables(summary: Summary): string {
  const paths = PATH_NAMES.filter((name) => summary[name] !== undefined);
  const metrics = measuredMetrics(summary);
  const header = `| path | ${metrics.map((m) => METRICS[m].header).join(' | ')} |`;
  const rule = `|---|${metrics.map(() => '---:').join('|')}|`;
  const rows = paths.map((name) => `| ${PATH_LABELS[name]} | ${metrics.map((m) => format(summary[name]?.[m], METRICS[m].digits)).join(' | ')} |`);
  const ratioRows: string[] = [];
  for (const name of paths) {
    for (const reference of RATIO_REFERENCES[name]) {
      if (summary[reference] === undefined) continue;
      const cells = metrics.map((m) => ratio(summary[name]?.[m], summary[reference]?.[m]));
      if (cells.every((cell) => cell === '—')) continue;
      ratioRows.push(`| ${name} / ${reference} | ${cells.join(' | ')} |`);
    }
  }
  const parts = [header, rule, ...rows];
  if (ratioRows.length > 0) parts.push('', `| ratio | ${metrics.map((m) => METRICS[m].header).join(' | ')} |`, rule, ...ratioRows);
  return parts.join('\n');
}

interface Target {
  readonly metric: MetricName;
  readonly text: string;
  /** The path the ratio divides by. */
  readonly reference: PathName;
  /** The bound on subject / reference; undefined means "reported, no bound". */
  readonly bound?: number;
  /**
   * A path that does everything the subject must and nothing more (for the kernel path: a direct
   * connection tracked by conntrack, since NAT needs conntrack): its ratio to the reference, in the
   * same run, is the most the subject can reach, so a bound above it cannot be met on this machine.
   */
  readonly ceiling?: PathName;
}

/** l4lb's proxy against HAProxy `mode tcp` at one thread: no bottleneck next to it. */
const TARGETS: readonly Target[] = [
  { metric: 'bulk1', text: 'bulk throughput, 1 stream ≥ 1.0× HAProxy', reference: 'haproxy', bound: 1.0 },
  { metric: 'bulk4', text: 'bulk throughput, 4 streams ≥ 1.0× HAProxy', reference: 'haproxy', bound: 1.0 },
  { metric: 'keepAlive', text: 'keep-alive request rate ≥ 0.9× HAProxy', reference: 'haproxy', bound: 0.9 },
  { metric: 'p99', text: 'keep-alive p99 latency ≤ 1.3× HAProxy', reference: 'haproxy', bound: 1.3 },
  { metric: 'conn', text: 'new connections/s ≥ 0.8× HAProxy', reference: 'haproxy', bound: 0.8 },
  { metric: 'rssPerConn', text: 'RSS per idle connection ≤ 2× HAProxy', reference: 'haproxy', bound: 2.0 },
  { metric: 'cpuPerGb', text: 'CPU seconds per GB (reported)', reference: 'haproxy' },
];

/**
 * The kernel data plane (`mode: nat`) against HAProxy at one thread, and against a direct connection
 * that pays for conntrack as the NAT path does (the lab's hand-written full NAT measured 1.66× and
 * 1.45× HAProxy, 0.85× direct with conntrack: LAB-NOTES "Full NAT in the kernel").
 */
const KERNEL_TARGETS: readonly Target[] = [
  { metric: 'conn', text: 'new connections/s ≥ 1.5× HAProxy', reference: 'haproxy', bound: 1.5, ceiling: 'direct-ct' },
  { metric: 'keepAlive', text: 'keep-alive request rate ≥ 1.5× HAProxy', reference: 'haproxy', bound: 1.5, ceiling: 'direct-ct' },
  { metric: 'bulk1', text: 'bulk throughput, 1 stream ≥ 1.5× HAProxy', reference: 'haproxy', bound: 1.5, ceiling: 'direct-ct' },
  { metric: 'bulk4', text: 'bulk throughput, 4 streams ≥ 1.5× HAProxy', reference: 'haproxy', bound: 1.5, ceiling: 'direct-ct' },
  { metric: 'conn', text: 'new connections/s ≥ 0.8× direct with conntrack', reference: 'direct-ct', bound: 0.8 },
];

/** TLS passthrough routed by SNI against the same l4lb with a plain TLS port: what reading the ClientHello costs. */
const SNI_TARGETS: readonly Target[] = [
  { metric: 'tlsConn', text: 'new TLS connections/s (reported)', reference: 'l4lb' },
  { metric: 'cpuPerTlsConn', text: 'CPU µs per TLS connection (reported)', reference: 'l4lb' },
];

/**
 * What SNI routing costs l4lb per connection: its CPU µs per TLS connection through the SNI
 * listener minus through the plain TLS port, or undefined unless both were measured.
 */
export function sniCostMicros(summary: Summary): number | undefined {
  const routed = summary['l4lb-sni']?.cpuPerTlsConn;
  const plain = summary.l4lb?.cpuPerTlsConn;
  return routed === undefined || plain === undefined ? undefined : routed - plain;
}

/** Per-run samples of a metric, where each run measured every path back to back. */
function perRunSamples(samples: PathSamples, metric: MetricName): readonly number[] | undefined {
  switch (metric) {
    case 'bulk1':
      return samples.bulk1Gbps;
    case 'bulk4':
      return samples.bulk4Gbps;
    case 'conn':
      return samples.connPerSecond;
    case 'keepAlive':
      return samples.keepAlivePerSecond;
    case 'p50':
      return samples.p50Ms;
    case 'p99':
      return samples.p99Ms;
    case 'tlsConn':
      return samples.tlsPerSecond;
    case 'cpuPerGb':
    case 'cpuPerConn':
    case 'cpuPerTlsConn':
    case 'rssPerConn':
      return undefined; // summed over runs, or measured once
  }
}

/**
 * subject / reference within each run (paths measured minutes apart drift on a shared machine;
 * within one run they are seconds apart): "median (min–max)", or '—' without per-run samples.
 */
function perRunRatioText(mine: PathSamples | undefined, theirs: PathSamples | undefined, metric: MetricName): string {
  if (!mine || !theirs) return '—';
  const a = perRunSamples(mine, metric);
  const b = perRunSamples(theirs, metric);
  if (!a || !b || a.length === 0 || a.length !== b.length) return '—';
  const ratios = a.map((value, i) => value / b[i]!).filter(Number.isFinite); // a.length === b.length, checked above
  const middle = median(ratios);
  if (middle === undefined) return '—';
  return `${middle.toFixed(2)}× (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;
}

/**
 * Whether subject / reference meets the bound, on the medians: 'met', '**not met**', 'not measured'
 * (either side missing) or 'reported' (no bound). Never decided on anything but the measured values.
 */
export function verdict(mine: number | undefined, theirs: number | undefined, metric: MetricName, bound: number | undefined): string {
  if (bound === undefined) return 'reported';
  if (mine === undefined || theirs === undefined || theirs === 0) return 'not measured';
  const value = mine / theirs;
  return (METRICS[metric].higherIsBetter ? value >= bound : value <= bound) ? 'met' : '**not met**';
}

/**
 * The ceiling cell of a target: its ceiling path's ratio to the reference, and whether the bound
 * lies above it (then no path that does the subject's work can meet it in this run). '—' without
 * one.
 */
function ceilingCell(target: Target, theirs: number | undefined, summary: Summary): { text: string; above: boolean } {
  const limit = target.ceiling === undefined ? undefined : summary[target.ceiling]?.[target.metric];
  if (limit === undefined || theirs === undefined || theirs === 0) return { text: '—', above: false };
  const value = limit / theirs;
  const above = target.bound !== undefined && (METRICS[target.metric].higherIsBetter ? value < target.bound : value > target.bound);
  return { text: `${ratio(limit, theirs)} (${target.ceiling ?? ''})`, above };
}

/**
 * One targets table of `subject` (absent: undefined), each row against its own reference path;
 * with a ceiling column when a target names a ceiling path.
 */
function targetsTable(
  subject: PathName, subjectHeader: string, targets: readonly Target[], summary: Summary, samples?: ReadonlyMap<PathName, PathSamples>,
): string | undefined {
  const mineSummary = summary[subject];
  if (!mineSummary) return undefined;
  const withCeiling = targets.some((target) => target.ceiling !== undefined);
  const rows: string[] = [];
  for (const target of targets) {
    const theirSummary = summary[target.reference];
    if (!theirSummary) continue;
    const mine = mineSummary[target.metric];
    const theirs = theirSummary[target.metric];
    const digits = METRICS[target.metric].digits;
    const perRun = perRunRatioText(samples?.get(subject), samples?.get(target.reference), target.metric);
    const ceiling = ceilingCell(target, theirs, summary);
    const outcome = verdict(mine, theirs, target.metric, target.bound) + (ceiling.above ? ', the bound is above the ceiling' : '');
    rows.push(
      `| ${target.text} | ${format(mine, digits)} | ${format(theirs, digits)} (${target.reference}) | ${ratio(mine, theirs)} | ${perRun} |${withCeiling ? ` ${ceiling.text} |` : ''} ${outcome} |`,
    );
  }
  if (rows.length === 0) return undefined;
  return [
    `| target | ${subjectHeader} | reference | ratio | same ratio within each run: median (min–max) |${withCeiling ? ' ceiling: the same ratio of a path doing only what it must |' : ''} |`,
    `|---|---:|---:|---:|---:|${withCeiling ? '---:|' : ''}---|`,
    ...rows,
  ].join('\n');
}

/**
 * The data-path targets: l4lb's proxy against HAProxy, then the kernel path (`mode: nat`) against
 * HAProxy and direct-with-conntrack; each row the ratio of the medians (which decides the verdict)
 * and the per-run ratios beside it. Undefined when neither table has a row.
 */
export function markdownTargets(summary: Summary, samples?: ReadonlyMap<PathName, PathSamples>): string | undefined {
  const tables = [
    targetsTable('l4lb', 'l4lb', TARGETS, summary, samples),
    targetsTable('kernel', 'l4lb nat (kernel)', KERNEL_TARGETS, summary, samples),
    targetsTable('l4lb-sni', 'l4lb, SNI listener', SNI_TARGETS, summary, samples),
  ].filter((table): table is string => table !== undefined);
  const cost = sniCostMicros(summary);
  if (cost !== undefined) tables.push(`SNI routing cost per connection (l4lb's CPU per TLS connection through the SNI listener minus through a plain port): **${format(cost, 0)} µs**.`);
  return tables.length > 0 ? tables.join('\n\n') : undefined;
}

/** A plain-text rendering of the main table for the terminal. */
export function textTable(summary: Summary): string {
  const paths = PATH_NAMES.filter((name) => summary[name] !== undefined);
  const columns = [['path', ...paths]];
  for (const m of measuredMetrics(summary)) columns.push([METRICS[m].header, ...paths.map((name) => format(summary[name]?.[m], METRICS[m].digits))]);
  const widths = columns.map((column) => Math.max(...column.map((cell) => cell.length)));
  const lines: string[] = [];
  // Every column holds paths.length + 1 cells and widths one entry per column.
  for (let row = 0; row < paths.length + 1; row++) {
    lines.push(columns.map((column, i) => (i === 0 ? column[row]!.padEnd(widths[i]!) : column[row]!.padStart(widths[i]!))).join('  '));
  }
  return lines.join('\n');
}

export const BEGIN_MARKER = '<!-- bench:proxy results begin (generated by `npm run bench:proxy`; edit outside the markers) -->';
export const END_MARKER = '<!-- bench:proxy results end -->';

/** Puts `section` between the markers of `document`, or appends markers and section if absent. */
export function spliceSection(document: string, section: string): string {
  const begin = document.indexOf(BEGIN_MARKER);
  const end = document.indexOf(END_MARKER);
  const block = `${BEGIN_MARKER}\n${section.trimEnd()}\n${END_MARKER}`;
  if (begin >= 0 && end > begin) return `${document.slice(0, begin)}${block}${document.slice(end + END_MARKER.length)}`;
  return `${document.trimEnd()}\n\n${block}\n`;
}
