/**
 * The runtime of one process (`workers: 1`, the default): one balancer that listens, checks and
 * decides everything itself.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { startBalancer, type Balancer } from '../proxy/index.js';
import { listeningFd, type HandedSocket, type HandoverSockets, type InheritedSockets } from './handover.js';
import type { Listening, ReloadOutcome, Runtime } from './runtime.js';

class SingleProcess implements Runtime {
  readonly workers = 1;
  readonly logFields = {};
  private closed: Promise<void> | undefined;

  constructor(private readonly balancer: Balancer) {}

  get admin(): Balancer {
    return this.balancer;
  }

  listening(): Listening[] {
    return this.balancer.listening();
  }

  async reload(next: Config): Promise<ReloadOutcome> {
    await this.balancer.reload(next);
    return 'applied';
  }

  /** balancer.close() closes every listener before its first await; a reload in flight then rejects with ClosedError. */
  stop(drainMs: number): Promise<void> {
    if (this.closed === undefined) this.closed = this.balancer.close(drainMs);
    else void this.balancer.close(0);
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
export async function startSingleProcess(config: Config, logger: Logger, inherited?: InheritedSockets): Promise<Runtime> {
  return new SingleProcess(await startBalancer(config, { logger, inherited: inherited === undefined ? undefined : (socket) => inherited.forSocket(socket) }));
}
