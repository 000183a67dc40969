/**
 * `l4lb dsr`: renders the DSR director's and backends' rules from the `mode: dsr` services of a config
 * (see docs/dsr.md). Every subcommand prints to standard output and changes nothing on the machine.
 *
 *   render -c FILE [--service NAME] [--method l3|l2]      the director's nft ruleset (one transaction)
 *   routes -c FILE [--service NAME] [--device DEV]        the l2 director's policy routes (ip -batch)
 *   render-backend -c FILE --backend NAME [...]           a backend's setup script (sh)
 *   diff -c OLD -c NEW [--service NAME] [--method ...]    the map elements that change (one transaction)
 *   lookup -c FILE [--service NAME] [FLOW...]             FLOW<TAB>SERVICE<TAB>SLOT<TAB>BACKEND per flow
 */
import { Command, Option } from 'commander';
import { createInterface } from 'node:readline';
import { loadConfig, type DsrServiceConfig } from '../config/index.js';
import { LbError } from '../errors.js';
import { flowKey, nftJhashSlot, slotOwner } from '../hashing/index.js';
import {
  DSR_METHODS,
  isDsrMethod,
  planDirector,
  renderBackend,
  renderDiff,
  renderDirector,
  renderDirectorRoutes,
  selectDsrServices,
  type DirectorService,
  type DsrMethod,
} from '../kernel/index.js';
import { collect, EXIT_FAILURE, EXIT_USAGE, fail } from './common.js';

interface CommonOptions {
  config?: string[];
  service?: string;
  method: string;
}

function usage(message: string): never {
  fail(new LbError('LB_ERR_INVALID_ARGUMENT', message), EXIT_USAGE);
}

function methodOf(options: CommonOptions): DsrMethod {
  if (!isDsrMethod(options.method)) usage(`--method "${options.method}": expected one of ${DSR_METHODS.join(', ')}`);
  return options.method;
}

function oneConfig(options: CommonOptions): string {
  const files = options.config ?? [];
  const [file] = files;
  if (files.length !== 1 || file === undefined) usage(`give exactly one -c FILE (got ${files.length})`);
  return file;
}

async function plan(file: string, service: string | undefined): Promise<DirectorService[]> {
  const config = await loadConfig(file);
  const chosen: DsrServiceConfig[] = selectDsrServices(config.services, service);
  try {
    return planDirector(chosen);
  } catch (error) {
    if (error instanceof LbError) throw new LbError(error.code, `${file}: ${error.message}`);
    throw error;
  }
}

/** Runs a subcommand's work; any error becomes one `l4lb: …` line and exit 1. */
async function run(work: () => string | Promise<string>): Promise<void> {
  let text: string;
  try {
    text = await work();
  } catch (error) {
    fail(error, EXIT_FAILURE);
  }
  process.stdout.write(text);
}

function withCommon(command: Command, method = true): Command {
  command
    .option('-c, --config <file>', 'configuration file (YAML)', collect)
    .option('-s, --service <name>', 'only this dsr service (default: every dsr service)');
  if (method) command.addOption(new Option('-m, --method <method>', 'l3 (DSCP, rewrite the destination) | l2 (MAC, policy routing)').default('l3'));
  return command;
}

/** `ADDRESS`, `ADDRESS:PORT` or `[v6]:PORT` → address and port. */
function parseFlow(text: string): { address: string; port: number | undefined } {
  const [, bracketed, bracketedPort] = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? [];
  if (bracketed !== undefined) return { address: bracketed, port: bracketedPort === undefined ? undefined : Number(bracketedPort) };
  const colon = text.lastIndexOf(':');
  if (colon > 0 && text.indexOf(':') === colon) return { address: text.slice(0, colon), port: Number(text.slice(colon + 1)) };
  return { address: text, port: undefined };
}

function lookupLine(services: readonly DirectorService[], text: string): string {
  const { address, port } = parseFlow(text.trim());
  const lines: string[] = [];
  for (const service of services) {
    if (service.hashKey === 'source-ip-port' && port === undefined) {
      throw new LbError('LB_ERR_INVALID_ARGUMENT', `flow "${text}": service "${service.name}" hashes the source port too; give ADDRESS:PORT`);
    }
    const key = service.hashKey === 'source-ip' ? flowKey(address) : flowKey(address, port);
    const slot = nftJhashSlot(key, service.table.size, service.seed);
    const backend = slotOwner(service.table, slot); // nftJhashSlot returns a slot in [0, table.size)
    lines.push(`${text.trim()}\t${service.name}\t${slot}\t${backend.name}\n`);
  }
  return lines.join('');
}

export function dsrCommand(): Command {
  const dsr = new Command('dsr').description('render the DSR director and backend rules (nftables) from mode: dsr services');

  dsr.addCommand(
    withCommon(new Command('render').description('print the director ruleset: one atomic `nft -f` file owning table ip l4lb_dsr')).action(
      async (options: CommonOptions) => {
        const method = methodOf(options);
        const file = oneConfig(options);
        await run(async () => renderDirector(await plan(file, options.service), method));
      },
    ),
  );

  dsr.addCommand(
    withCommon(new Command('routes').description('print the l2 director policy routes, for `ip -batch -`'), false)
      .option('-d, --device <dev>', 'the director interface on the backends\' segment')
      .action(async (options: CommonOptions & { device?: string }) => {
        const file = oneConfig(options);
        await run(async () => renderDirectorRoutes(await plan(file, options.service), options.device));
      }),
  );

  dsr.addCommand(
    withCommon(new Command('render-backend').description('print the setup script (sh) of one backend: VIP on lo, sysctls, nft rules'))
      .requiredOption('-b, --backend <name>', 'the backend, by name')
      .action(async (options: CommonOptions & { backend: string }) => {
        const method = methodOf(options);
        const file = oneConfig(options);
        await run(async () => renderBackend(await plan(file, options.service), options.backend, method));
      }),
  );

  dsr.addCommand(
    withCommon(new Command('diff').description('print one nft transaction rewriting only the slots that move from -c OLD to -c NEW'))
      .action(async (options: CommonOptions) => {
        const method = methodOf(options);
        const files = options.config ?? [];
        const [oldFile, newFile] = files;
        if (files.length !== 2 || oldFile === undefined || newFile === undefined) usage(`diff needs -c OLD -c NEW (got ${files.length} -c)`);
        await run(async () => {
          const before = await plan(oldFile, options.service);
          const after = await plan(newFile, options.service);
          return renderDiff(before, after, method).text;
        });
      }),
  );

  dsr.addCommand(
    withCommon(new Command('lookup').description('print FLOW<TAB>SERVICE<TAB>SLOT<TAB>BACKEND: where the director sends each flow'), false)
      .argument('[flows...]', 'ADDRESS[:PORT] of clients; read from standard input, one a line, when none are given')
      .action(async (flows: string[], options: CommonOptions) => {
        const file = oneConfig(options);
        let services: DirectorService[] = [];
        await run(async () => {
          services = await plan(file, options.service);
          return flows.map((flow) => lookupLine(services, flow)).join('');
        });
        if (flows.length > 0) return;
        for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
          if (line.trim() === '') continue;
          await run(() => lookupLine(services, line));
        }
      }),
  );
  // Nested subcommands do not inherit the program's settings: usage errors exit 2 here too.
  for (const command of dsr.commands) command.exitOverride().showHelpAfterError('(run with --help for usage)');
  return dsr;
}
