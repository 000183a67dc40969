/**
 * `npm run bench:kernel`: what l4lb's kernel control plane costs, for a `mode: nat` service of 10
 * backends at tableSize 65537 and 262139: (a) the initial load of the whole table, (b) one health
 * change (one backend down: only its slots move, plus its verdict in the backends map) and its
 * reverse, repeated, as median / p90 / max milliseconds with the slots each moved. Katran's habit,
 * measured: the table is built pure and only the delta is programmed (src/kernel/writer.ts).
 *
 * The measuring runs in src/bench/kernel-measure.ts, through the same code `l4lb run` uses
 * (parseConfig, KernelWriter, the system's nft), inside a network namespace this program creates
 * and removes (also on error and Ctrl-C), so the tables never touch the host's. A program that
 * prints a table and writes it into docs/benchmarks.md between its markers; never a test. Needs root.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { kernelTable, spliceKernelSection, type SizeResult } from './kernel/report.js';
import { cpuSnapshot, haveCommand, l4lbRevision, othersShare } from './proxy/doc.js';
import { BenchNamespace } from './proxy/netns.js';
import { BenchError, ProcessGroup, runBenchMain, runToEnd } from './proxy/procs.js';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoDir = resolve(benchDir, '..', '..');

const USAGE = `usage: npm run bench:kernel -- [options]
  --sizes LIST     table sizes, primes (default 65537,262139)
  --backends N     backends of the service (default 10)
  --repeats N      down/up pairs per size, each on the next backend in turn (default 20)
  --note TEXT      a note written with the results (e.g. "machine busy with other tests")
  --out FILE       where to write the results (default docs/benchmarks.md)
  --no-write       print only`;

function positiveIntegers(text: string, name: string): number[] {
  return text.split(',').map((item) => {
    const value = Number(item.trim());
    if (!Number.isInteger(value) || value <= 0) throw new BenchError(`--${name} "${item}": expected a positive integer`);
    return value;
  });
}

function nftVersion(): string {
  const result = spawnSync('nft', ['--version'], { encoding: 'utf8' });
  return /v(\d[\d.]*)/.exec(result.stdout ?? '')?.[1] ?? 'unknown';
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const { values } = parseArgs({
    args: argv,
    options: {
      sizes: { type: 'string' }, backends: { type: 'string' }, repeats: { type: 'string' }, note: { type: 'string' },
      out: { type: 'string' }, 'no-write': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const sizes = positiveIntegers(values.sizes ?? '65537,262139', 'sizes');
  const [backends = 10] = positiveIntegers(values.backends ?? '10', 'backends');
  const [repeats = 20] = positiveIntegers(values.repeats ?? '20', 'repeats');
  const missing = ['ip', 'nft', 'prlimit'].filter((tool) => !haveCommand(tool));
  if (missing.length > 0) throw new BenchError(`not installed: ${missing.join(', ')}`);

  const loadBefore = loadavg();
  const cpuBefore = cpuSnapshot();
  const namespace = BenchNamespace.create('kernel');
  const group = new ProcessGroup({ wrap: namespace.wrap, probe: (port) => namespace.probe(port) });
  const cleanUp = async (): Promise<void> => {
    await group.stopAll();
    group.dispose();
    namespace.remove();
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    progress(`\n${signal}: stopping every process this benchmark started`);
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const results: SizeResult[] = [];
  try {
    for (const size of sizes) {
      progress(`tableSize ${size}: load, then ${repeats} × (one backend down, then up) in ${namespace.name}`);
      const out = await runToEnd(group, `measure-${size}`, process.execPath, [
        join(benchDir, 'kernel-measure.js'), '--size', String(size), '--backends', String(backends), '--repeats', String(repeats),
      ]);
      results.push(JSON.parse(out) as SizeResult);
    }
  } finally {
    await cleanUp();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const loadAfter = loadavg();
  const others = othersShare(cpuBefore, cpuSnapshot());

  const table = kernelTable(results);
  process.stdout.write(`\n${table}\n`);
  if (values['no-write']) return 0;
  const quoted = argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`));
  const cpu = cpus();
  const lines = [
    `### Latest run: ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}`,
    '',
    `- Command: \`npm run bench:kernel${quoted.length > 0 ? ` -- ${quoted.join(' ')}` : ''}\``,
    `- l4lb: ${l4lbRevision(repoDir)}`,
    `- Machine: ${cpu.length} CPUs (${cpu[0]?.model.trim() ?? 'unknown'}), Linux ${release()}, Node.js ${process.version}, nft ${nftVersion()}.`,
    `- Load average (1, 5, 15 min) before: ${loadBefore.map((v) => v.toFixed(2)).join(', ')}; after: ${loadAfter.map((v) => v.toFixed(2)).join(', ')}. Other processes used ${(others * 100).toFixed(0)} % of the machine's CPU time during the run.`,
  ];
  if (values.note) lines.push(`- Note: ${values.note}`);
  lines.push(`- ${backends} backends, ${repeats} down/up pairs per size (each on the next backend in turn).`, '', table);
  const out = resolve(repoDir, values.out ?? 'docs/benchmarks.md');
  const document = existsSync(out) ? readFileSync(out, 'utf8') : '# Benchmarks\n';
  writeFileSync(out, spliceKernelSection(document, `${lines.join('\n')}\n`));
  progress(`\nwrote ${out}`);
  return 0;
}

runBenchMain('bench:kernel', main);
