/**
 * The runtime of `workers: N > 1`: this process is a node:cluster primary that holds no proxy
 * listener of its own. It decides health and admin state once (HealthAuthority) for every worker
 * (ClusterPrimary), serves the admin API from them (/stats and /metrics summed over workers, state
 * changes applied here and pushed), and has every worker reload or drain. Workers exit when the
 * IPC channel closes, so the primary's death takes them with it.
 */
import type { Logger } from 'pino';
import type { AdminTarget } from '../admin/index.js';
import { type Config, type Endpoint } from '../config/index.js';
import { RuntimeChangeError } from '../errors.js';
import { socketsOf } from '../proxy/index.js';
import type { HandedSocket, HandoverSockets, InheritedSockets, Listening, ReloadOutcome, Runtime } from '../runtime/index.js';
import { HealthAuthority } from './authority.js';
import type { WorkerMessage } from './messages.js';
import { ClusterPrimary } from './primary.js';

class ClusterRuntime implements Runtime {
  readonly logFields: Readonly<Record<string, number>>;
  readonly admin: AdminTarget;
  private config: Config;
  /** Each listening socket by name: its owner and where it listens, as the workers reported at start, then as reloads configure it. */
  private listen: Map<string, { service: string; listen: Endpoint }>;

  constructor(
    config: Config,
    private readonly authority: HealthAuthority,
    private readonly primary: ClusterPrimary,
    started: Extract<WorkerMessage, { type: 'started' }>,
    private readonly logger: Logger,
  ) {
    this.config = config;
    this.listen = new Map(started.listening.map(({ service, listen, socket }) => [socket, { service, listen }]));
    this.logFields = { workers: primary.workers };
    this.admin = {
      stats: () => primary.stats(),
      listenerStats: () => primary.listenerStats(),
      setState: (service, backend, state) => authority.setState(service, backend, state),
      // Every worker builds its own plans: a runtime change would have to reach all of them as one
      // change, which the IPC protocol does not carry yet.
      changeBackends: (service, change) =>
        Promise.reject(
          new RuntimeChangeError(
            { service, backend: change.kind === 'add' ? change.backend.name : change.backend, reason: 'not-supported' },
            `runtime changes of backends need workers: 1 (this process runs ${primary.workers} workers): edit the file and reload`,
          ),
        ),
      events: authority.events,
    };
  }

  get workers(): number {
    return this.primary.workers;
  }

  listening(): Listening[] {
    return [...this.listen.values()].map(({ service, listen }) => ({
      service,
      listen,
      backends: this.config.services.find((each) => each.name === service)?.backends.length ?? 0,
    }));
  }

  async reload(next: Config, previous: Config): Promise<ReloadOutcome> {
    const refused = await this.primary.reload(next, previous);
    for (const { worker, error } of refused) this.logger.error({ worker, code: error.code, problems: error.lines() }, 'worker refused the reload: it still runs the previous configuration');
    // A socket kept by name keeps its bound address (port 0 resolved), whoever owns it now.
    const listen = new Map<string, { service: string; listen: Endpoint }>();
    for (const plan of socketsOf(next)) listen.set(plan.name, { service: plan.owner, listen: this.listen.get(plan.name)?.listen ?? plan.endpoint });
    this.listen = listen;
    this.config = next;
    return refused.length > 0 ? 'partial' : 'applied';
  }

  /** SIGUSR1: every worker reopens its own log files (the primary writes no access line). */
  reopenLogs(): void {
    this.primary.signalWorkers('SIGUSR1');
  }

  /**
   * Resolves once every worker has closed its listeners (a second call: with drain 0). The same
   * for a handover: the primary holds nothing outside its processes.
   */
  stop(drainMs: number): Promise<void> {
    return this.primary.stop(drainMs);
  }

  handoverSockets(): Promise<HandoverSockets> {
    return this.primary.handoverSockets();
  }

  async stopped(): Promise<void> {
    await this.primary.exited();
    await this.authority.stop();
  }
}

/**
 * Resolves every service's backends and starts the checks here, then forks `count` workers and
 * resolves once all listen, on the `inherited` sockets whose names match (taken from it here; the
 * rest bind their endpoints). Rejects with the first failure, having stopped whatever started.
 */
export async function startCluster(config: Config, count: number, logger: Logger, inherited?: InheritedSockets): Promise<Runtime> {
  const sockets: HandedSocket[] = [];
  for (const plan of socketsOf(config)) {
    const fd = inherited?.forSocket(plan);
    if (fd !== undefined) sockets.push({ name: plan.name, fd });
  }
  const authority = new HealthAuthority(logger);
  try {
    await authority.apply(config);
  } catch (error) {
    await authority.stop();
    throw error;
  }
  const primary = new ClusterPrimary(config, count, authority, logger, sockets);
  let started: Extract<WorkerMessage, { type: 'started' }>;
  try {
    started = await primary.start();
  } catch (error) {
    await authority.stop();
    throw error;
  }
  return new ClusterRuntime(config, authority, primary, started, logger);
}
