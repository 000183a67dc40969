#!/usr/bin/env node
/**
 * The l4lb command line. Each subcommand lives in src/cli/<name>.ts and is registered here.
 */
import { Command, CommanderError } from 'commander';
import { routeCommand } from './cli/route.js';
import { runCommand } from './cli/run.js';
import { demoCommand } from './cli/demo.js';
import { dsrCommand } from './cli/dsr.js';
import { checkCommand } from './cli/check.js';
import { reloadCommand } from './cli/reload.js';
import { upgradeCommand } from './cli/upgrade.js';
import { adminCommands } from './cli/status.js';
import { EXIT_USAGE } from './cli/common.js';
import { VERSION } from './version.js';

const program = new Command('l4lb')
  .description('Layer-4 TCP load balancer with consistent hashing, and a DSR lab driven by the same tables')
  .version(VERSION)
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

program.addCommand(routeCommand());
program.addCommand(runCommand());
program.addCommand(demoCommand());
program.addCommand(dsrCommand());
program.addCommand(checkCommand());
program.addCommand(reloadCommand());
program.addCommand(upgradeCommand());
for (const command of adminCommands()) program.addCommand(command);

/**
 * Every error line of every command starts `l4lb: ` (what `fail()` writes for the work's errors),
 * commander's usage errors included, whose own prefix is `error: `.
 */
const output = {
  outputError: (text: string, write: (text: string) => void) => write(text.replace(/^error: /, 'l4lb: ')),
};

/** Subcommands built on their own do not inherit these settings: usage errors must exit 2 everywhere. */
function configure(command: Command): void {
  command.exitOverride().showHelpAfterError('(run with --help for usage)').configureOutput(output);
  for (const child of command.commands) configure(child);
}
configure(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and version exit 0; every usage error exits 2 with commander's one-line message.
    process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE);
  }
  throw error;
}
