/**
 * What every subcommand shares: turning errors into one line and an exit code, never a stack.
 */
import { InvalidArgumentError } from 'commander';
import { problemsOf } from '../errors.js';

/** Exit codes: 1 for a failure of the work (bad config file, port taken), 2 for bad usage. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Thrown by argument checks to get "error: option '--x' argument 'y' is invalid. <reason>". */
export function invalid(reason: string): never {
  throw new InvalidArgumentError(reason);
}

/**
 * Prints `l4lb: <line>` for each line of the error (an LbError's problems, one a line; anything
 * else says it is a bug) and exits. Every command's errors read the same, usage errors included
 * (src/cli.ts rewrites commander's `error: ` prefix).
 */
export function fail(error: unknown, exitCode: number = EXIT_FAILURE): never {
  process.stderr.write(problemsOf(error).map((line) => `l4lb: ${line}\n`).join(''));
  process.exit(exitCode);
}

/** Collects a repeatable option into an array. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
