/**
 * `l4lb check -c FILE`: validates a configuration file the way `run` would load it, without starting
 * anything. Valid: exit 0 and one line `FILE: OK, <summary>` on stdout. Invalid: exit 1 and every
 * problem on stderr, one `FILE: path: message` line each. Missing `-c`: exit 2 (usage).
 */
import { Command } from 'commander';
import { ConfigError, loadConfig, summarizeConfig } from '../config/index.js';
import { EXIT_FAILURE, fail } from './common.js';

interface CheckOptions {
  config: string;
}

export function checkCommand(): Command {
  return new Command('check')
    .description('validate a configuration file: print a one-line summary, or every problem, one per line')
    .requiredOption('-c, --config <file>', 'the configuration file (YAML, or JSON by its .json name or leading "{")')
    .action(async (options: CheckOptions) => {
      try {
        const config = await loadConfig(options.config);
        process.stdout.write(`${options.config}: OK, ${summarizeConfig(config)}\n`);
      } catch (error) {
        if (!(error instanceof ConfigError)) fail(error);
        process.stderr.write(`${error.lines().join('\n')}\n`);
        process.exitCode = EXIT_FAILURE;
      }
    });
}
