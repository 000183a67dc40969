/**
 * The measuring half of `npm run bench:kernel`, run by src/bench/kernel.ts inside the namespace it
 * creates (`ip netns exec NS node dist/bench/kernel-measure.js …`): the same code `l4lb run` uses
 * for a `mode: nat` service (the config parsed by parseConfig, KernelWriter over the system's nft),
 * with the health verdicts decided here instead of by checks, so each change is one the benchmark
 * chose. It loads the table, then takes one backend down and back up `repeats` times (a different
 * backend each time, in turn), and prints one JSON SizeResult on stdout. It removes its table at the
 * end; the namespace, removed by the parent, takes it anyway.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { parseConfig } from '../config/index.js';
import { KernelWriter, systemNft } from '../kernel/index.js';
import type { VerdictSink, VerdictSources } from '../services/index.js';
import type { SizeResult } from './kernel/report.js';

/** A `mode: nat` service of `backends` backends on documentation addresses (no traffic is sent). */
function natServiceYaml(tableSize: number, backends: number): string {
  const lines = ['services:', '  - name: bench', '    mode: nat', '    vip: 203.0.113.1:80', '    hashKey: source-ip-port', `    tableSize: ${tableSize}`, '    backends:'];
  for (let i = 1; i <= backends; i++) lines.push(`      - { name: b${i}, address: 192.0.2.${i}:80 }`);
  return `${lines.join('\n')}\n`;
}

interface Logged {
  msg?: string;
  moved?: number;
}

async function measure(tableSize: number, backendCount: number, repeats: number): Promise<SizeResult> {
  const config = parseConfig(natServiceYaml(tableSize, backendCount), 'bench:kernel');
  const logged: Logged[] = [];
  const logger = pino({ level: 'info', base: null, timestamp: false }, { write: (line: string) => void logged.push(JSON.parse(line) as Logged) });
  const sinks = new Map<string, VerdictSink>();
  const verdicts: VerdictSources = (sink) => {
    sinks.set(sink.service, sink);
    return { decides: true, configure: () => {}, observe: () => {}, stop: () => Promise.resolve() };
  };
  const writer = new KernelWriter({ nft: systemNft, logger, verdicts });

  const loadStart = performance.now();
  await writer.apply(config);
  const loadMs = performance.now() - loadStart;
  const loadNftMs = writer.counters.lastSeconds * 1000;
  const sink = sinks.get('bench');
  if (sink === undefined) throw new Error('bench:kernel: the writer asked for no verdicts of service bench');

  /** One health change as one transaction: wall time to settled, the nft time, and the slots moved. */
  const change = async (backend: string, health: 'up' | 'down'): Promise<[number, number, number]> => {
    const applied = writer.counters.applied;
    const start = performance.now();
    sink.applyHealth(backend, health, 'bench:kernel');
    await writer.settled();
    const wall = performance.now() - start;
    if (writer.counters.applied !== applied + 1) {
      throw new Error(`bench:kernel: ${backend} ${health} gave ${writer.counters.applied - applied} transactions (refused: ${writer.counters.refused}), expected 1`);
    }
    const moved = [...logged].reverse().find((record) => record.msg === 'kernel slots rewritten')?.moved ?? NaN;
    return [wall, writer.counters.lastSeconds * 1000, moved];
  };

  const result = { tableSize, backends: backendCount, loadMs, loadNftMs, downMs: [] as number[], downNftMs: [] as number[], downMoved: [] as number[], upMs: [] as number[], upNftMs: [] as number[], upMoved: [] as number[] };
  for (let i = 0; i < repeats; i++) {
    const backend = `b${(i % backendCount) + 1}`;
    const [downMs, downNftMs, downMoved] = await change(backend, 'down');
    result.downMs.push(downMs);
    result.downNftMs.push(downNftMs);
    result.downMoved.push(downMoved);
    const [upMs, upNftMs, upMoved] = await change(backend, 'up');
    result.upMs.push(upMs);
    result.upNftMs.push(upNftMs);
    result.upMoved.push(upMoved);
  }
  await writer.remove();
  return result;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { size: { type: 'string' }, backends: { type: 'string' }, repeats: { type: 'string' } }, strict: true });
  const result = await measure(Number(values.size), Number(values.backends), Number(values.repeats));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench:kernel measure: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
