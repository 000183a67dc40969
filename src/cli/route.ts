/**
 * `l4lb route`: prints the backend each key maps to, one `KEY<TAB>BACKEND` line per key, in input
 * order. Keys come from the arguments or, streamed line by line, from standard input.
 */
import { Command, Option } from 'commander';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import { LbError } from '../errors.js';
import { ALGORITHMS, createPicker, DEFAULT_MAGLEV_TABLE_SIZE, isAlgorithm, type Algorithm, type Backend, type Picker } from '../hashing/index.js';
import { collect, EXIT_USAGE, fail } from './common.js';

/** Parses `NAME` or `NAME=WEIGHT`. */
export function parseBackendArgument(text: string): Backend {
  const eq = text.lastIndexOf('=');
  const name = eq < 0 ? text : text.slice(0, eq);
  if (name.length === 0) throw new LbError('LB_ERR_INVALID_ARGUMENT', `--backend "${text}": the name is empty`);
  if (eq < 0) return { name, weight: 1 };
  const weightText = text.slice(eq + 1);
  const weight = Number(weightText);
  if (weightText.trim() === '' || !Number.isFinite(weight) || weight <= 0) {
    throw new LbError('LB_ERR_BAD_WEIGHT', `--backend "${text}": weight must be a number > 0`);
  }
  return { name, weight };
}

interface RouteOptions {
  algorithm: string;
  backend?: string[];
  tableSize: string;
}

export function buildRoutePicker(options: RouteOptions): Picker {
  if (!isAlgorithm(options.algorithm)) {
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `--algorithm "${options.algorithm}": expected one of ${ALGORITHMS.join(', ')}`);
  }
  const algorithm: Algorithm = options.algorithm;
  const backends = (options.backend ?? []).map(parseBackendArgument);
  if (backends.length === 0) throw new LbError('LB_ERR_NO_BACKENDS', '--backend: give at least one backend');
  const tableSize = Number(options.tableSize);
  if (algorithm !== 'maglev' && options.tableSize !== String(DEFAULT_MAGLEV_TABLE_SIZE)) {
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `--table-size applies to maglev only, not ${algorithm}`);
  }
  try {
    return createPicker(algorithm, backends, { tableSize });
  } catch (error) {
    if (error instanceof LbError) {
      const option = error.code === 'LB_ERR_TABLE_SIZE' ? '--table-size' : '--backend';
      throw new LbError(error.code, `${option}: ${error.message}`);
    }
    throw error;
  }
}

async function writeLine(line: string): Promise<void> {
  if (!process.stdout.write(line)) await once(process.stdout, 'drain');
}

export function routeCommand(): Command {
  return new Command('route')
    .description('print the backend each key maps to (KEY<TAB>BACKEND), from arguments or standard input')
    .addOption(new Option('-a, --algorithm <name>', 'ring | maglev | rendezvous').default('maglev'))
    .option('-b, --backend <name[=weight]>', 'a backend, repeatable', collect)
    .option('-m, --table-size <M>', 'maglev table size (a prime)', String(DEFAULT_MAGLEV_TABLE_SIZE))
    .argument('[keys...]', 'keys to route; read from standard input, one a line, when none are given')
    .action(async (keys: string[], options: RouteOptions) => {
      let picker: Picker;
      try {
        picker = buildRoutePicker(options);
      } catch (error) {
        fail(error, EXIT_USAGE);
      }
      process.stdout.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'EPIPE') process.exit(0);
        fail(error);
      });
      if (keys.length > 0) {
        for (const key of keys) await writeLine(`${key}\t${picker.pick(key)?.name}\n`);
        return;
      }
      const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
      for await (const key of lines) await writeLine(`${key}\t${picker.pick(key)?.name}\n`);
    });
}
