/**
 * `l4lb check -c FILE`: validates a configuration file the way `run` would load it, without starting
 * anything. Valid: exit 0 and one line `FILE: OK, <summary>` on stdout. Invalid: exit 1 and every
 * problem on stderr, one `FILE: path: message` line each. Missing `-c`: exit 2 (usage).
 *
 * Like `haproxy -c` and `nginx -t`, it resolves every backend host name as `run` will (a name that
 * resolves nowhere makes `run` refuse the file); `--no-resolve` skips that, for a file checked away
 * from the hosts it will run on.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { Command } from 'commander';
import { isIP } from 'node:net';
import { ConfigError, loadConfig, summarizeConfig, type Config, type ConfigProblem } from '../config/index.js';
import { ResolveError } from '../errors.js';
import { resolveHost, systemLookup, type Lookup } from '../services/index.js';
import { EXIT_FAILURE, fail } from './common.js';

interface CheckOptions {
  config: string;
  resolve: boolean;
  host: boolean;
}

/** What the host says about running kernel services (mode: nat); undefined: not there / not readable. */
export interface HostFacts {
  /** `nft --version`'s version, e.g. `1.0.6`; undefined when nft is not on PATH. */
  readonly nftVersion: string | undefined;
  /** net.bridge.bridge-nf-call-iptables; undefined when /proc/sys/net/bridge does not exist. */
  readonly bridgeNfCallIptables: string | undefined;
  readonly conntrackMax: number | undefined;
  /** net.netfilter.nf_conntrack_tcp_timeout_time_wait, seconds. */
  readonly conntrackTimeWait: number | undefined;
}

/** Reads the host's facts: runs `nft --version`, reads three sysctls. */
export function readHostFacts(): HostFacts {
  const nft = spawnSync('nft', ['--version'], { encoding: 'utf8' });
  const version = nft.status === 0 ? /v(\d+\.\d+(?:\.\d+)?)/.exec(nft.stdout)?.[1] : undefined;
  const read = (path: string): string | undefined => {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const max = read('/proc/sys/net/netfilter/nf_conntrack_max');
  const timeWait = read('/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait');
  return {
    nftVersion: version,
    bridgeNfCallIptables: existsSync('/proc/sys/net/bridge') ? read('/proc/sys/net/bridge/bridge-nf-call-iptables') : undefined,
    conntrackMax: max === undefined ? undefined : Number(max),
    conntrackTimeWait: timeWait === undefined ? undefined : Number(timeWait),
  };
}

/** Below this many conntrack entries a busy full-NAT host drops new flows (nf_conntrack: table full). */
export const MIN_CONNTRACK_MAX = 65_536;

/**
 * How long Linux keeps a closed connection in TIME_WAIT (TCP_TIMEWAIT_LEN), at the backend too.
 * While conntrack remembers a NATed tuple it gives the next flow another source port; once it
 * forgets one the backend still holds, a new flow can take the same tuple, and its SYN meets that
 * TIME_WAIT with another connection's timestamps: refused by PAWS about half the time, it waits a
 * second for its retransmission (measured in bench:proxy, docs/benchmarks.md).
 */
export const TCP_TIME_WAIT_SECONDS = 60;

/** What keeps the kernel services of `config` from working on this host, each with its fix. Pure. */
export function hostProblems(config: Config, facts: HostFacts): ConfigProblem[] {
  const nat = config.services.findIndex((service) => service.mode === 'nat');
  if (nat < 0) return [];
  const path = `services[${nat}] (host)`;
  const problems: ConfigProblem[] = [];
  if (facts.nftVersion === undefined) problems.push({ path, message: 'mode: nat needs nft on PATH: install nftables (1.0 or later)' });
  else if (Number(facts.nftVersion.split('.')[0]) < 1) problems.push({ path, message: `mode: nat needs nft 1.0 or later, this host has ${facts.nftVersion}: upgrade nftables` });
  if (facts.bridgeNfCallIptables === '1') {
    problems.push({ path, message: 'net.bridge.bridge-nf-call-iptables is 1: bridged frames would pass the nat table too; set it to 0 (sysctl -w net.bridge.bridge-nf-call-iptables=0)' });
  }
  if (facts.conntrackMax !== undefined && facts.conntrackMax < MIN_CONNTRACK_MAX) {
    problems.push({ path, message: `net.netfilter.nf_conntrack_max is ${facts.conntrackMax}: full NAT keeps one entry per flow; raise it to at least ${MIN_CONNTRACK_MAX} (sysctl -w net.netfilter.nf_conntrack_max=262144)` });
  }
  if (facts.conntrackTimeWait !== undefined && facts.conntrackTimeWait < TCP_TIME_WAIT_SECONDS) {
    problems.push({
      path,
      message: `net.netfilter.nf_conntrack_tcp_timeout_time_wait is ${facts.conntrackTimeWait} s, shorter than the ${TCP_TIME_WAIT_SECONDS} s backends keep TIME_WAIT: NAT can then reuse a tuple a backend still holds and that handshake stalls for a second; set it to at least ${TCP_TIME_WAIT_SECONDS} (sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=120, the default)`,
    });
  }
  return problems;
}

/** What resolving a valid file's backend host names found. */
export interface Resolution {
  /** Distinct host names (IP literals are not names). */
  readonly names: readonly string[];
  /** One per backend whose name resolves nowhere, at its `address` path. */
  readonly problems: readonly ConfigProblem[];
}

/**
 * Resolves every proxy backend's host name through `lookup`, as `run` does at start and on reload
 * (src/services resolveHost); each distinct name is asked once. DSR backends are IP literals.
 */
export async function resolveConfig(config: Config, lookup: Lookup = systemLookup): Promise<Resolution> {
  const asked = new Map<string, Promise<string>>();
  const problems: ConfigProblem[] = [];
  for (const [i, service] of config.services.entries()) {
    if (service.mode !== 'proxy') continue;
    for (const [j, backend] of service.backends.entries()) {
      const { host } = backend.address;
      if (isIP(host) !== 0) continue;
      const where = `services[${i}].backends[${j}].address`;
      let answer = asked.get(host);
      if (answer === undefined) {
        answer = resolveHost(host, where, lookup);
        answer.catch(() => {}); // awaited below; a second backend of the same name must not see it unhandled
        asked.set(host, answer);
      }
      try {
        await answer;
      } catch (error) {
        if (!(error instanceof ResolveError)) throw error;
        problems.push({ path: where, message: `backend "${backend.name}": cannot resolve "${host}" (${error.cause}): run would refuse this file (--no-resolve skips the lookup)` });
      }
    }
  }
  return { names: [...asked.keys()], problems };
}

const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;

/** Pre: `config` is what `run` would load. Throws ConfigError listing every name that resolves nowhere. */
export async function checkFile(file: string, resolve: boolean, lookup: Lookup = systemLookup, host: (() => HostFacts) | undefined = undefined): Promise<string> {
  const config = await loadConfig(file, { readTokenFile: resolve });
  const summary = `${file}: OK, ${summarizeConfig(config)}`;
  if (host !== undefined) {
    const problems = hostProblems(config, host());
    if (problems.length > 0) throw new ConfigError(file, problems);
  }
  if (!resolve) {
    if (config.admin?.tokenFile !== undefined) return `${summary}; admin.tokenFile not read, backend host names not resolved (--no-resolve)`;
    const names = new Set(config.services.flatMap((service) => (service.mode === 'proxy' ? service.backends.map((backend) => backend.address.host) : [])).filter((host) => isIP(host) === 0));
    return names.size === 0 ? summary : `${summary}; ${plural(names.size, 'backend host name')} not resolved (--no-resolve)`;
  }
  const resolution = await resolveConfig(config, lookup);
  if (resolution.problems.length > 0) throw new ConfigError(file, resolution.problems);
  const count = resolution.names.length;
  return count === 0 ? summary : `${summary}; ${plural(count, 'backend host name')} resolved, as run will (${resolution.names.join(', ')})`;
}

export function checkCommand(): Command {
  return new Command('check')
    .description('validate a configuration file and resolve its backend host names (as haproxy -c and nginx -t do): print a one-line summary, or every problem, one per line')
    .requiredOption('-c, --config <file>', 'the configuration file (YAML, or JSON by its .json name or leading "{")')
    .option('--no-resolve', 'do not resolve backend host names nor read admin.tokenFile, nor check the host (a file checked away from the host it runs on)')
    .option('--no-host', 'skip the host checks of mode: nat services (nft 1.0 or later on PATH, bridge-nf-call-iptables off, nf_conntrack_max, conntrack TIME_WAIT timeout)')
    .action(async (options: CheckOptions) => {
      try {
        process.stdout.write(`${await checkFile(options.config, options.resolve, systemLookup, options.host && options.resolve ? readHostFacts : undefined)}\n`);
      } catch (error) {
        if (!(error instanceof ConfigError)) fail(error);
        process.stderr.write(`${error.lines().join('\n')}\n`);
        process.exitCode = EXIT_FAILURE;
      }
    });
}

