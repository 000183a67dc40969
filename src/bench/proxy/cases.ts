/**
 * One measurement each: bulk throughput with iperf3, request rates and latency with wrk (new
 * connections with `Connection: close`, or keep-alive), idle connections held by the idle client,
 * and the /proc samples of the proxy (CPU ticks, resident memory). The load generators are always
 * separate processes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseCpuTicks, parseIperf3Json, parseRssKib, parseWrkOutput, type BulkResult, type RequestResult } from './parse.js';
import { BenchError, Iperf3Busy, runToEnd, type ProcessGroup, type Started } from './procs.js';

/** CPU ticks (user + system) of `pids`, summed. */
export function cpuTicks(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += parseCpuTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  return ticks;
}

/** Resident memory of `pids`, summed. */
export function rssKib(pids: readonly number[]): number {
  let kib = 0;
  for (const pid of pids) kib += parseRssKib(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return kib;
}

/** One iperf3 client run of `seconds` with `streams` parallel streams to 127.0.0.1:port. */
export async function runBulk(group: ProcessGroup, port: number, seconds: number, streams: number): Promise<BulkResult> {
  const args = ['-c', '127.0.0.1', '-p', String(port), '-t', String(seconds), '-P', String(streams), '-J'];
  try {
    return parseIperf3Json(await runToEnd(group, 'iperf3-client', 'iperf3', args));
  } catch (error) {
    if (!(error instanceof Iperf3Busy)) throw error;
    await delay(1000);
    return parseIperf3Json(await runToEnd(group, 'iperf3-client', 'iperf3', args));
  }
}

export interface WrkOptions {
  readonly seconds: number;
  readonly connections: number;
  /** wrk threads (each an event loop of its own: more load than one can make). */
  readonly threads: number;
  /** Send `Connection: close`: every request is a new connection. */
  readonly close: boolean;
  /** https: every connection a TLS handshake (SNI: the address, TLS_SERVER_NAME). */
  readonly tls?: boolean;
}

export async function runWrk(group: ProcessGroup, port: number, options: WrkOptions): Promise<RequestResult> {
  const args = [`-t${options.threads}`, `-c${options.connections}`, `-d${options.seconds}s`, '--latency'];
  if (options.close) args.push('-H', 'Connection: close');
  args.push(`${options.tls === true ? 'https' : 'http'}://127.0.0.1:${port}/`);
  return parseWrkOutput(await runToEnd(group, 'wrk', 'wrk', args));
}

/** Connections held open through a path by a separate idle client process. */
export interface HeldConnections {
  readonly count: number;
  close(): Promise<void>;
}

/** Opens `count` connections to 127.0.0.1:port and resolves once every one has its greeting. */
export async function holdIdle(group: ProcessGroup, benchDir: string, port: number, count: number, timeoutMs = 60000): Promise<HeldConnections> {
  const client = group.start('idle-client', process.execPath, [join(benchDir, 'proxy', 'idle.js'), 'client', String(port), String(count)], {
    pipeStdout: true,
    pipeStdin: true,
  });
  const lines = lineReader(client);
  const first = await Promise.race([lines.next(), delay(timeoutMs).then(() => undefined)]);
  if (first === undefined) {
    await group.stop(client);
    throw new BenchError(`idle client: ${count} connections not established within ${timeoutMs} ms`);
  }
  const message = JSON.parse(first ?? '{}') as { held?: number; error?: string; greeted?: number };
  if (message.held !== count) {
    await group.stop(client);
    throw new BenchError(`idle client: ${message.error ?? 'exited'} (after ${message.greeted ?? '?'} of ${count} connections)\n${group.tail(client)}`);
  }
  return {
    count,
    async close(): Promise<void> {
      client.child.stdin?.end('close\n');
      await Promise.race([lines.next(), delay(10000)]);
      await group.stop(client);
    },
  };
}

/** Each call resolves with the child's next stdout line, or null once stdout has ended. */
function lineReader(started: Started): { next(): Promise<string | null> } {
  let buffered = '';
  let ended = false;
  const waiting: ((line: string | null) => void)[] = [];
  const ready: (string | null)[] = [];
  const deliver = (line: string | null): void => {
    const waiter = waiting.shift();
    if (waiter) waiter(line);
    else ready.push(line);
  };
  started.child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      deliver(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
    }
  });
  started.child.stdout?.on('end', () => {
    ended = true;
    deliver(null);
  });
  return {
    next(): Promise<string | null> {
      if (ready.length > 0) return Promise.resolve(ready.shift() ?? null);
      if (ended) return Promise.resolve(null);
      return new Promise((resolve) => waiting.push(resolve));
    },
  };
}

/**
 * Resident memory once it has settled: samples every 250 ms until two successive readings differ
 * by under 0.5 % (or `maxMs` has passed), and returns the last.
 */
export async function settledRssKib(pids: readonly number[], maxMs = 4000): Promise<number> {
  let previous = rssKib(pids);
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    await delay(250);
    const current = rssKib(pids);
    if (Math.abs(current - previous) <= previous * 0.005) return current;
    previous = current;
  }
  return previous;
}
