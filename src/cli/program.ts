/**
 * The l4lb command tree, built without parsing anything: src/cli.ts parses argv with it, and the
 * CLI reference (docs/reference/cli.md, src/reference/) is generated from it, so the two cannot drift.
 */
import { Command } from 'commander';
import { routeCommand } from './route.js';
import { runCommand } from './run.js';
import { demoCommand } from './demo.js';
import { dsrCommand } from './dsr.js';
import { kernelCommand } from './kernel.js';
import { checkCommand } from './check.js';
import { reloadCommand } from './reload.js';
import { upgradeCommand } from './upgrade.js';
import { adminCommands } from './status.js';
import { VERSION } from '../version.js';

export const PROGRAM_DESCRIPTION = 'Layer-4 TCP load balancer with consistent hashing, and a DSR lab driven by the same tables';

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

/** The whole command tree, configured: usage errors throw CommanderError (exit code 2 is the caller's). */
export function buildProgram(): Command {
  const program = new Command('l4lb').description(PROGRAM_DESCRIPTION).version(VERSION);
  program.addCommand(routeCommand());
  program.addCommand(runCommand());
  program.addCommand(demoCommand());
  program.addCommand(dsrCommand());
  program.addCommand(kernelCommand());
  program.addCommand(checkCommand());
  program.addCommand(reloadCommand());
  program.addCommand(upgradeCommand());
  for (const command of adminCommands()) program.addCommand(command);
  configure(program);
  return program;
}
