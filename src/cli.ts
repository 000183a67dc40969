#!/usr/bin/env node
/**
 * The l4lb command line. Each subcommand lives in src/cli/<name>.ts and is registered in
 * src/cli/program.ts.
 */
import { CommanderError } from 'commander';
import { EXIT_USAGE } from './cli/common.js';
import { buildProgram } from './cli/program.js';

try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and version exit 0; every usage error exits 2 with commander's one-line message.
    process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE);
  }
  throw error;
}
