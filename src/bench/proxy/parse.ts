/**
 * Parsers for what the measuring tools print (pure; each throws a BenchError naming what it could
 * not read): iperf3 `-J` reports, wrk's text summary with `--latency`, and the Linux /proc files the
 * benchmark samples — `/proc/PID/stat` fields 14–15 (utime, stime in clock ticks, proc(5)) and the
 * `VmRSS` line of `/proc/PID/status`.
 */
import { BenchError, Iperf3Busy } from './procs.js';

export interface BulkResult {
  /** Bytes the iperf3 server received. */
  readonly bytes: number;
  readonly seconds: number;
  readonly bitsPerSecond: number;
}

/** Reads the receiver-side sum of an iperf3 JSON report (the bytes that really crossed the path). */
export function parseIperf3Json(text: string): BulkResult {
  let report: unknown;
  try {
    report = JSON.parse(text);
  } catch {
    throw new BenchError(`iperf3: output is not JSON: ${text.slice(0, 200)}`);
  }
  const root = report as { error?: unknown; end?: { sum_received?: { bytes?: unknown; seconds?: unknown; bits_per_second?: unknown } } };
  if (typeof root.error === 'string') {
    // iperf3 -J reports errors as text only; "busy" is the one a caller retries.
    throw /busy/i.test(root.error) ? new Iperf3Busy(`iperf3: ${root.error}`) : new BenchError(`iperf3: ${root.error}`);
  }
  const sum = root.end?.sum_received;
  const bytes = sum?.bytes;
  const seconds = sum?.seconds;
  const bitsPerSecond = sum?.bits_per_second;
  if (typeof bytes !== 'number' || typeof seconds !== 'number' || typeof bitsPerSecond !== 'number') {
    throw new BenchError('iperf3: report has no end.sum_received {bytes, seconds, bits_per_second}');
  }
  return { bytes, seconds, bitsPerSecond };
}

export interface RequestResult {
  readonly requests: number;
  readonly requestsPerSecond: number;
  /** Latency percentiles in milliseconds (from `--latency`). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Connect, read, write and timeout errors, plus non-2xx/3xx responses. */
  readonly errors: number;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60000, h: 3600000 };

function durationMs(text: string, what: string): number {
  const [, amount, unit] = /^([\d.]+)(us|ms|s|m|h)$/.exec(text) ?? [];
  const scale = unit === undefined ? undefined : UNIT_MS[unit];
  if (amount === undefined || scale === undefined) throw new BenchError(`wrk: cannot read ${what} "${text}"`);
  return Number(amount) * scale;
}

/** Reads wrk 4.x's summary: `Requests/sec:`, the latency distribution, the error lines. */
export function parseWrkOutput(text: string): RequestResult {
  const rate = /^Requests\/sec:\s+([\d.]+)/m.exec(text)?.[1];
  const total = /^\s*(\d+) requests in /m.exec(text)?.[1];
  const p50 = /^\s+50%\s+(\S+)/m.exec(text)?.[1];
  const p99 = /^\s+99%\s+(\S+)/m.exec(text)?.[1];
  if (rate === undefined || total === undefined || p50 === undefined || p99 === undefined) throw new BenchError(`wrk: unexpected output (run with --latency?):\n${text.slice(0, 600)}`);
  let errors = 0;
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  if (socketErrors) errors += socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  if (non2xx) errors += Number(non2xx[1]);
  return {
    requests: Number(total),
    requestsPerSecond: Number(rate),
    p50Ms: durationMs(p50, '50% latency'),
    p99Ms: durationMs(p99, '99% latency'),
    errors,
  };
}

/** utime + stime in clock ticks from the text of /proc/PID/stat. */
export function parseCpuTicks(statText: string): number {
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
  const fields = statText.slice(statText.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isInteger(utime) || !Number.isInteger(stime)) throw new BenchError(`/proc/PID/stat: cannot read utime/stime`);
  return utime + stime;
}

/** Resident set size in KiB from the text of /proc/PID/status. */
export function parseRssKib(statusText: string): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(statusText);
  if (!match) throw new BenchError('/proc/PID/status: no VmRSS line');
  return Number(match[1]);
}

/**
 * Busy and total clock ticks of all CPUs from the first line of /proc/stat. Busy is user + nice +
 * system only: interrupt and softirq time (loopback packet processing, which our own traffic causes)
 * is left out, as it is not charged to any process when the kernel accounts IRQ time separately.
 */
export function parseMachineTicks(procStatText: string): { busy: number; total: number } {
  const [line = ''] = procStatText.split('\n', 1);
  const [label, ...counters] = line.trim().split(/\s+/);
  const values = counters.slice(0, 8).map(Number);
  const [user, nice, system] = values;
  if (label !== 'cpu' || values.length < 4 || user === undefined || nice === undefined || system === undefined) {
    throw new BenchError('/proc/stat: no aggregate cpu line');
  }
  const total = values.reduce((sum, value) => sum + value, 0);
  return { busy: user + nice + system, total };
}

/** utime + stime + cutime + cstime from /proc/self/stat: this process and every child it has reaped. */
export function parseTreeTicks(statText: string): number {
  const fields = statText.slice(statText.lastIndexOf(')') + 2).split(' ');
  const ticks = fields.slice(11, 15).map(Number);
  if (ticks.some((value) => !Number.isInteger(value))) throw new BenchError('/proc/self/stat: cannot read CPU times');
  return ticks.reduce((sum, value) => sum + value, 0);
}
