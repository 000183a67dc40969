/**
 * What every subcommand shares: turning errors into one line and an exit code, never a stack.
 */
import { InvalidArgumentError } from 'commander';
import { isLbError } from '../errors.js';

/** Exit codes: 1 for a failure of the work (bad config file, port taken), 2 for bad usage. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Thrown by argument checks to get "error: option '--x' argument 'y' is invalid. <reason>". */
export function invalid(reason: string): never {
  throw new InvalidArgumentError(reason);
}

/** Prints `l4lb: <message>` and exits; LbErrors keep their message, anything else says it is a bug. */
export function fail(error: unknown, exitCode: number = EXIT_FAILURE): never {
  const message = isLbError(error) ? error.message : error instanceof Error ? `internal error: ${error.message}` : String(error);
  process.stderr.write(`l4lb: ${message}\n`);
  process.exit(exitCode);
}

/** Collects a repeatable option into an array. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
