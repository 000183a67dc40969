/**
 * `l4lb route`: prints the backend each key maps to, one `KEY<TAB>BACKEND` line per key, in input
 * order. Keys come from the arguments or, streamed line by line, from standard input.
 *
 * A key that is an IP address (or `ADDR:PORT`, `[v6]:PORT`) is hashed as `l4lb run` hashes a
 * client: its network-order bytes (src/hashing flowKey), not its text. With `-c FILE -s SERVICE`
 * the answer is the configured service's, built through the same plan, strategy and gate as the
 * balancer (src/services), with every backend up: its balance, weights, table size, seed, flow
 * hash, hash key, backups and configured admin states. A `mode: dsr` or `mode: nat` service
 * answers with the slot map `l4lb run` writes for it (every backend up, the configured admin
 * states), indexed by the kernel's jhash slot.
 */
import { Command, Option } from 'commander';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import { isIP } from 'node:net';
import { ConfigError, loadConfig, type DsrServiceConfig, type NatServiceConfig, type ProxyHashKey, type ProxyServiceConfig, type ServiceConfig } from '../config/index.js';
import { gatedDirector, gatedSlotNames, kernelSlots, planDirector, planNat } from '../kernel/index.js';
import { LbError } from '../errors.js';
import { ALGORITHMS, createPicker, DEFAULT_MAGLEV_TABLE_SIZE, flowKey, isAlgorithm, nftJhashSlot, slotOwner, type Algorithm, type Backend, type HashKey } from '../hashing/index.js';
import { buildPlan, gatePlan, ServiceLoads, ServiceState, type ResolvedAddress, type VerdictSource } from '../services/index.js';
import { collect, EXIT_FAILURE, EXIT_USAGE, fail } from './common.js';

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
  config?: string;
  service?: string;
}

/** A key as written: an address with an optional port, or any other text. */
export type ParsedKey = { kind: 'address'; address: string; port: number | undefined } | { kind: 'text'; text: string };

/** `10.0.0.1`, `10.0.0.1:40000`, `2001:db8::1`, `[2001:db8::1]:40000`, or text (anything else). */
export function parseRouteKey(text: string): ParsedKey {
  const trimmed = text.trim();
  const [, v6, v6Port] = /^\[([^\]]+)\]:(\d{1,5})$/.exec(trimmed) ?? [];
  if (v6 !== undefined && v6Port !== undefined && isIP(v6) === 6 && Number(v6Port) <= 65535) return { kind: 'address', address: v6, port: Number(v6Port) };
  if (isIP(trimmed) !== 0) return { kind: 'address', address: trimmed, port: undefined };
  const [, v4, v4Port] = /^([\d.]+):(\d{1,5})$/.exec(trimmed) ?? [];
  if (v4 !== undefined && v4Port !== undefined && isIP(v4) === 4 && Number(v4Port) <= 65535) return { kind: 'address', address: v4, port: Number(v4Port) };
  return { kind: 'text', text };
}

/** Answers one key line: `KEY<TAB>BACKEND` (and more columns where a service has them). */
type Router = (key: string) => string;

/**
 * Without a configuration: an address is hashed as its bytes (with the port when one is given,
 * as `hashKey: source-ip-port` does), anything else as its text.
 */
function plainKey(text: string): HashKey {
  const parsed = parseRouteKey(text);
  return parsed.kind === 'text' ? parsed.text : flowKey(parsed.address, parsed.port);
}

/** The key the service hashes for a client written as `text`; LbError naming the key otherwise. */
function serviceKey(text: string, service: string, hashKey: ProxyHashKey, family: 'any' | 'dsr' | 4 | 6): Uint8Array {
  // hashKey: sni keys on the server name's bytes, as the proxy does (src/proxy/service.ts).
  if (hashKey === 'sni') return Buffer.from(text.toLowerCase().replace(/\.$/, ''), 'latin1');
  const parsed = parseRouteKey(text);
  if (parsed.kind === 'text') {
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `key "${text}": not a client address; service "${service}" hashes ${hashKey === 'source-ip' ? 'ADDRESS' : 'ADDRESS:PORT'}`);
  }
  if (family === 'dsr' && isIP(parsed.address) !== 4) {
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `key "${text}": service "${service}" is a dsr service, which balances IPv4 clients only`);
  }
  if ((family === 4 || family === 6) && isIP(parsed.address) !== family) {
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `key "${text}": service "${service}" has an IPv${family} VIP, so its clients are IPv${family} addresses`);
  }
  if (hashKey === 'source-ip') return flowKey(parsed.address);
  if (parsed.port === undefined) {
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `key "${text}": service "${service}" hashes the source port too (hashKey: source-ip-port); give ADDRESS:PORT`);
  }
  return flowKey(parsed.address, parsed.port);
}

const noVerdicts = (): VerdictSource => ({ decides: true, configure: () => {}, observe: () => {}, stop: () => Promise.resolve() });

/** A service's state with every backend up and the configured admin states: what the answers assume. */
export function configuredState(config: ServiceConfig, backends: readonly ResolvedAddress[]): ServiceState {
  const state = new ServiceState(config.name, { verdicts: noVerdicts });
  // Every backend up: the answer once health checks pass, whatever their initial state.
  state.update({ ...config, healthCheck: undefined }, backends);
  return state;
}

/**
 * A proxy service's router: the plan `l4lb run` builds (buildPlan → createChooser, slotHashOf),
 * gated as the balancer gates it (backups only when no primary is usable, configured states),
 * with every backend up and no connection open. Names are not resolved: placement reads names and
 * weights only.
 */
function proxyRouter(config: ProxyServiceConfig): Router {
  if (config.balance === 'roundrobin' || config.balance === 'leastconn') {
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `service "${config.name}" uses balance: ${config.balance}, which does not hash the client: its choice depends on the connections before, not on the key`);
  }
  const resolved = config.backends.map((backend) => ({ name: backend.name, address: backend.address }));
  const loads = new ServiceLoads();
  const plan = buildPlan(config, resolved, loads);
  const gated = gatePlan(plan, configuredState(config, resolved), loads);
  return (text) => {
    const key = serviceKey(text, config.name, config.hashKey, 'any');
    return `${text}\t${gated.chooser.pick({ key, anchor: 0 }, 0)?.name ?? '-'}\n`;
  };
}

/** route predicts from the backends named in the file; LbError when a kernel service names none (all from DNS). */
function onlyNamed(config: DsrServiceConfig | NatServiceConfig): void {
  if (config.backends.length === 0) {
    throw new LbError('LB_ERR_CONFIG', `service "${config.name}": every backend comes from dns:/srv: entries, which only l4lb run resolves; see its slots in /stats (l4lb status)`);
  }
}

/**
 * A dsr service's router: the slot map `l4lb run` writes into slots_ID (the director's Maglev table
 * through the health gate, every backend up, the configured admin states), indexed by the kernel's
 * jhash slot. Prints KEY, BACKEND, SLOT.
 */
function dsrRouter(config: DsrServiceConfig): Router {
  onlyNamed(config);
  const [planned] = planDirector([config]);
  if (planned === undefined) throw new LbError('LB_ERR_CONFIG', `service "${config.name}": no director plan`);
  const service = gatedDirector(planned, configuredState(config, config.backends));
  return (text) => {
    const key = serviceKey(text, config.name, service.hashKey, 'dsr');
    const slot = nftJhashSlot(key, service.table.size, service.seed);
    return `${text}\t${slotOwner(service.table, slot).name}\t${slot}\n`;
  };
}

/**
 * A nat service's router: the slot map `l4lb run` writes (the Maglev table through the health gate,
 * src/kernel slots.ts), with every backend up and the configured admin states, indexed by the
 * kernel's jhash slot. Prints KEY, BACKEND, SLOT.
 */
function natRouter(config: NatServiceConfig): Router {
  onlyNamed(config);
  const [service] = planNat([config]);
  if (service === undefined) throw new LbError('LB_ERR_CONFIG', `service "${config.name}": no nat plan`);
  const slots = kernelSlots(service.backends, service.tableSize);
  const names = gatedSlotNames(slots, configuredState(config, service.backends));
  return (text) => {
    const key = serviceKey(text, config.name, service.hashKey, service.family === 'ipv6' ? 6 : 4);
    const slot = nftJhashSlot(key, service.tableSize, service.seed);
    return `${text}\t${names[slot] ?? '-'}\t${slot}\n`;
  };
}

/** The service named `name`, or the only one; LbError naming the choices otherwise. */
function selectService(services: readonly ServiceConfig[], file: string, name: string | undefined): ServiceConfig {
  const names = services.map((service) => service.name).join(', ');
  if (name === undefined) {
    const [only] = services;
    if (only !== undefined && services.length === 1) return only;
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `${file} has ${services.length} services: choose one with -s (${names})`);
  }
  const found = services.find((service) => service.name === name);
  if (found === undefined) throw new LbError('LB_ERR_INVALID_ARGUMENT', `--service "${name}": no such service in ${file} (services: ${names})`);
  return found;
}

/** The router of a configured service. Rejects with ConfigError if the file is invalid. */
export async function configuredRouter(file: string, name: string | undefined): Promise<Router> {
  // Routing needs no admin token: a file whose token file lives on another host routes here too.
  const config = await loadConfig(file, { readTokenFile: false });
  const service = selectService(config.services, file, name);
  switch (service.mode) {
    case 'proxy':
      return proxyRouter(service);
    case 'dsr':
      return dsrRouter(service);
    case 'nat':
      return natRouter(service);
    default: {
      const never: never = service;
      throw new LbError('LB_ERR_CONFIG', `unknown mode of service ${String(never)}`);
    }
  }
}

export function buildRoutePicker(options: RouteOptions): Router {
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
    const picker = createPicker(algorithm, backends, { tableSize });
    return (text) => `${text}\t${picker.pick(plainKey(text))?.name}\n`;
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

/** One key's line; a key the service cannot hash ends the command with one line (exit 2). */
function answer(router: Router, key: string): string {
  try {
    return router(key);
  } catch (error) {
    fail(error, EXIT_USAGE);
  }
}

export function routeCommand(): Command {
  const command: Command = new Command('route')
    .description('print the backend each key maps to (KEY<TAB>BACKEND), from arguments or standard input; addresses are hashed as `run` hashes clients')
    .addOption(new Option('-a, --algorithm <name>', 'ring | maglev | rendezvous').default('maglev').conflicts('config'))
    .addOption(new Option('-b, --backend <name[=weight]>', 'a backend, repeatable').argParser(collect).conflicts('config'))
    .addOption(new Option('-m, --table-size <M>', 'maglev table size (a prime)').default(String(DEFAULT_MAGLEV_TABLE_SIZE)).conflicts('config'))
    .option('-c, --config <file>', "answer for a configured service: its balance, weights, table size, seed, flowHash and hashKey")
    .option('-s, --service <name>', 'the service of -c (default: the only one)')
    .argument('[keys...]', 'keys to route (client ADDRESS, ADDRESS:PORT, or text); read from standard input, one a line, when none are given')
    .action(async (keys: string[], options: RouteOptions) => {
      let router: Router;
      try {
        if (options.service !== undefined && options.config === undefined) throw new LbError('LB_ERR_INVALID_ARGUMENT', '--service needs -c FILE');
        router = options.config === undefined ? buildRoutePicker(options) : await configuredRouter(options.config, options.service);
      } catch (error) {
        // An invalid file is a failure of the work (exit 1, every problem), as `check` reports it.
        if (error instanceof ConfigError) {
          process.stderr.write(`${error.lines().join('\n')}\n`);
          process.exit(EXIT_FAILURE);
        }
        fail(error, EXIT_USAGE);
      }
      process.stdout.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'EPIPE') process.exit(0);
        fail(error);
      });
      if (keys.length > 0) {
        for (const key of keys) await writeLine(answer(router, key));
        return;
      }
      const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
      for await (const key of lines) await writeLine(answer(router, key));
    });
  return command;
}
