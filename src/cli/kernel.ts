/**
 * `l4lb kernel render -c FILE`: the full ruleset `l4lb run` loads for the file's kernel services
 * (table inet l4lb_nat for mode: nat, table ip l4lb_dsr for mode: dsr, l3), with every backend up and
 * the configured admin states. `l4lb kernel flush`: removes l4lb's tables (a table of that name not
 * made by l4lb is left alone and reported).
 */
import { Command } from 'commander';
import { ConfigError, loadConfig, type DsrServiceConfig } from '../config/index.js';
import { gatedSlotNames, kernelSlots, natServices, planDirector, planNat, removeTables, renderDirector, renderNatTable, systemNft, type NatAssignment } from '../kernel/index.js';
import { LbError } from '../errors.js';
import { ServiceState, type VerdictSource } from '../services/index.js';
import { EXIT_FAILURE, fail } from './common.js';

const noVerdicts = (): VerdictSource => ({ decides: true, configure: () => {}, observe: () => {}, stop: () => Promise.resolve() });

/** The ruleset of `file`'s kernel services. Rejects with ConfigError / LbError. */
export async function renderKernel(file: string): Promise<string> {
  const config = await loadConfig(file, { readTokenFile: false });
  const nat = natServices(config);
  const dsr = config.services.filter((service): service is DsrServiceConfig => service.mode === 'dsr');
  if (nat.length === 0 && dsr.length === 0) throw new LbError('LB_ERR_CONFIG', `${file} has no kernel service (mode: nat or dsr)`);
  const parts: string[] = [];
  if (nat.length > 0) {
    const assignments = planNat(nat).map((service, index): NatAssignment => {
      const state = new ServiceState(service.name, { verdicts: noVerdicts });
      const configured = nat[index];
      if (configured !== undefined) state.update({ ...configured, healthCheck: undefined }, service.backends);
      return { service, slots: gatedSlotNames(kernelSlots(service.backends, service.tableSize), state), dead: [] };
    });
    parts.push(renderNatTable(assignments));
  }
  if (dsr.length > 0) parts.push(renderDirector(planDirector(dsr), 'l3'));
  return parts.join('\n');
}

function reportAndExit(error: unknown): never {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.lines().join('\n')}\n`);
    process.exit(EXIT_FAILURE);
  }
  fail(error, EXIT_FAILURE);
}

export function kernelCommand(): Command {
  const kernel = new Command('kernel').description('the kernel tables of mode: nat and dsr services (nftables)');
  kernel.addCommand(
    new Command('render')
      .description('print the full ruleset `l4lb run` loads (every backend up): one atomic `nft -f` file')
      .requiredOption('-c, --config <file>', 'configuration file, YAML or JSON')
      .action(async (options: { config: string }) => {
        try {
          process.stdout.write(await renderKernel(options.config));
        } catch (error) {
          reportAndExit(error);
        }
      }),
  );
  kernel.addCommand(
    new Command('flush')
      .description("remove l4lb's kernel tables (inet l4lb_nat, ip l4lb_dsr); a table of that name l4lb did not make is left alone")
      .option('-c, --config <file>', 'configuration file (checked to be valid; the tables are l4lb\'s whatever it holds)')
      .action(async (options: { config?: string }) => {
        try {
          if (options.config !== undefined) await loadConfig(options.config, { readTokenFile: false });
          const removed = await removeTables(systemNft);
          process.stdout.write(removed.length === 0 ? 'no l4lb kernel table\n' : `removed ${removed.join(', ')}\n`);
        } catch (error) {
          reportAndExit(error);
        }
      }),
  );
  return kernel;
}
