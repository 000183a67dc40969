/**
 * The runtime of one process (`workers: 1`, the default): one balancer that listens, checks and
 * decides everything itself, and the kernel writer of its `mode: nat` services (src/kernel), which
 * checks their backends the same way and writes the table `inet l4lb_nat`.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { AdminTarget } from '../admin/index.js';
import type { AdminState, Config } from '../config/index.js';
import { conntrackCounter, KernelWriter, systemNft, type NftRunner } from '../kernel/index.js';
import { startBalancer, type Balancer } from '../proxy/index.js';
import { localChecks, type DnsClientFactory, type StateResult } from '../services/index.js';
import { listeningFd, type HandedSocket, type HandoverSockets, type InheritedSockets } from './handover.js';
import type { Listening, ReloadOutcome, Runtime, StopReason } from './runtime.js';

/** How the kernel tables are written, and whether they go at exit. */
export interface KernelOptions {
  /** The nft runner (default: the system's nft on PATH). */
  readonly nft?: NftRunner;
  /** `l4lb run --cleanup-on-exit`: remove the tables when stopped by a signal (never on a handover). */
  readonly cleanupOnExit?: boolean;
  /** How the kernel services' `dns:`/`srv:` entries are asked (default: c-ares, through the file's `resolvers`). */
  readonly dnsClient?: DnsClientFactory;
}

/** The kernel writer of `config`, its table loaded; undefined without nat services. Rejects with KernelError. */
async function startKernel(config: Config, logger: Logger, options: KernelOptions): Promise<KernelWriter | undefined> {
  if (!KernelWriter.wanted(config)) return undefined;
  const writer = new KernelWriter({
    nft: options.nft ?? systemNft,
    logger,
    verdicts: localChecks,
    conntrack: conntrackCounter(() => readFile('/proc/net/nf_conntrack', 'utf8')),
    ...(options.dnsClient === undefined ? {} : { dnsClient: options.dnsClient }),
  });
  try {
    await writer.apply(config);
  } catch (error) {
    await writer.stop();
    throw error;
  }
  return writer;
}

class SingleProcess implements Runtime {
  readonly workers = 1;
  readonly logFields = {};
  private closed: Promise<void> | undefined;
  readonly admin: AdminTarget;

  constructor(
    private readonly balancer: Balancer,
    private kernel: KernelWriter | undefined,
    private readonly logger: Logger,
    private readonly kernelOptions: KernelOptions,
  ) {
    const setState = (service: string, backend: string, state: AdminState): StateResult =>
      this.kernel?.has(service) === true ? this.kernel.setState(service, backend, state) : balancer.setState(service, backend, state);
    this.admin = {
      stats: () => balancer.stats(),
      events: balancer.events,
      setState,
      changeBackends: (service, change) => balancer.changeBackends(service, change),
      kernel: () => this.kernel?.stats() ?? Promise.resolve([]),
      kernelCounters: () => this.kernel?.counters,
      listenerStats: () => balancer.listenerStats(),
    };
  }

  listening(): Listening[] {
    return this.balancer.listening();
  }

  async reload(next: Config): Promise<ReloadOutcome> {
    await this.balancer.reload(next);
    if (this.kernel === undefined) this.kernel = await startKernel(next, this.logger, this.kernelOptions);
    else await this.kernel.apply(next);
    return 'applied';
  }

  /**
   * balancer.close() closes every listener before its first await; a reload in flight then rejects
   * with ClosedError. Kernel tables stay (a new l4lb adopts them), unless --cleanup-on-exit and a
   * signal (not a handover) stops this one.
   */
  stop(drainMs: number, reason: StopReason = 'stop'): Promise<void> {
    if (this.closed === undefined) {
      const kernel = this.kernel;
      const cleanup = this.kernelOptions.cleanupOnExit === true && reason === 'stop';
      const kernelDone =
        kernel === undefined
          ? Promise.resolve()
          : (cleanup ? kernel.remove() : kernel.stop()).catch((error: unknown) => {
              this.logger.error({ error: error instanceof Error ? error.message : String(error) }, 'kernel tables could not be removed');
            });
      this.closed = Promise.all([this.balancer.close(drainMs), kernelDone]).then(() => undefined);
    } else void this.balancer.close(0);
    return Promise.resolve();
  }

  /** This process's own listening sockets: nothing is opened to get them, nothing to release. */
  handoverSockets(): Promise<HandoverSockets> {
    const sockets: HandedSocket[] = [];
    for (const { name, server } of this.balancer.listeners()) {
      const fd = listeningFd(server);
      if (fd !== undefined) sockets.push({ name, fd });
    }
    return Promise.resolve({ sockets, release: () => undefined });
  }

  stopped(): Promise<void> {
    return this.closed ?? Promise.resolve();
  }
}

/**
 * Starts every proxy service of `config` in this process, on the `inherited` sockets whose names
 * match (the rest bind their endpoints). Rejects as startBalancer does.
 */
export async function startSingleProcess(config: Config, logger: Logger, inherited?: InheritedSockets, kernelOptions: KernelOptions = {}): Promise<Runtime> {
  const balancer = await startBalancer(config, { logger, inherited: inherited === undefined ? undefined : (socket) => inherited.forSocket(socket) });
  let kernel: KernelWriter | undefined;
  try {
    kernel = await startKernel(config, logger, kernelOptions);
  } catch (error) {
    await balancer.close(0);
    throw error;
  }
  return new SingleProcess(balancer, kernel, logger, kernelOptions);
}
