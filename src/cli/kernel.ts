/**
 * `l4lb kernel render -c FILE`: the full ruleset `l4lb run` loads for the file's kernel services
 * (table inet l4lb_nat for mode: nat, table ip l4lb_dsr for mode: dsr, l3), with every backend up and
 * the configured admin states. `l4lb kernel flush`: removes l4lb's tables (a table of that name not
 * made by l4lb is left alone and reported).
 */
import { Command } from 'commander';
import { ConfigError, loadConfig, type DsrServiceConfig } from '../config/index.js';
import { gatedDirector, gatedSlotNames, kernelSlots, natServices, planDirector, planNat, removeTables, renderDirector, renderNatTable, systemNft, type NatAssignment } from '../kernel/index.js';
import { LbError } from '../errors.js';
import { EXIT_FAILURE, fail } from './common.js';
import { configuredState } from './route.js';

/** The ruleset of `file`'s kernel services. Rejects with ConfigError / LbError. */
export async function renderKernel(file: string): Promise<string> {
  const config = await loadConfig(file, { readTokenFile: false });
  // The backends named in the file: `dns:`/`srv:` entries are resolved by `l4lb run` only, and a
  // service with none named is in no table until one resolves (docs/kernel.md "Backends from DNS").
  const nat = natServices(config).filter((service) => service.backends.length > 0);
  const dsr = config.services.filter((service): service is DsrServiceConfig => service.mode === 'dsr' && service.backends.length > 0);
  if (nat.length === 0 && dsr.length === 0) throw new LbError('LB_ERR_CONFIG', `${file} has no kernel service (mode: nat or dsr)`);
  const parts: string[] = [];
  if (nat.length > 0) {
    const plans = planNat(nat);
    const assignments = nat.map((configured, index): NatAssignment => {
      const service = plans[index];
      if (service === undefined) throw new LbError('LB_ERR_CONFIG', `service "${configured.name}": no nat plan`);
      return { service, slots: gatedSlotNames(kernelSlots(service.backends, service.tableSize), configuredState(configured, service.backends)), dead: [] };
    });
    parts.push(renderNatTable(assignments));
  }
  if (dsr.length > 0) {
    // Through the gate, as `l4lb run` loads it: a backend configured in maintenance or draining has no slots.
    const services = planDirector(dsr).map((service, index) => {
      const configured = dsr[index];
      return configured === undefined ? service : gatedDirector(service, configuredState(configured, configured.backends));
    });
    parts.push(renderDirector(services, 'l3'));
  }
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
