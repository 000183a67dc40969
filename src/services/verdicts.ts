/**
 * Verdicts decided in this process: the service's active checks (src/health's scheduler, one probe
 * loop per backend) and the pure rise/fall reducer, fed also by the data path's passive
 * observations (HAProxy's `observe layer4`). The VerdictSource of a single process and of a
 * cluster primary; a cluster worker follows the primary instead (src/cluster/link.ts).
 */
import { checkSpecOfConfig, type HealthCheckConfig } from '../config/index.js';
import { createChecker, createHealthScheduler, type HealthScheduler } from '../health/index.js';
import type { ResolvedAddress } from './resolve.js';
import type { ConfiguredState, VerdictSink, VerdictSource, VerdictSources } from './state.js';

class LocalChecks implements VerdictSource {
  readonly decides = true;
  private scheduler: HealthScheduler | undefined;
  /** The check settings the scheduler runs with (JSON), '' for none. */
  private checkKey = '';
  /** Probe target per backend name, so a backend whose address changed is re-added. */
  private readonly targets = new Map<string, string>();

  constructor(private readonly sink: VerdictSink) {}

  /** Applies changed configured states (this process decides them), then aligns the checks with `backends`. */
  configure(check: HealthCheckConfig | undefined, backends: readonly ResolvedAddress[], changed: readonly ConfiguredState[]): void {
    for (const { backend, state } of changed) this.sink.setState(backend, state);
    const names = new Set(backends.map((backend) => backend.name));
    for (const name of [...this.targets.keys()]) {
      if (names.has(name)) continue;
      this.scheduler?.remove(name);
      this.targets.delete(name);
    }
    const key = check === undefined ? '' : JSON.stringify(check);
    if (key !== this.checkKey) {
      void this.scheduler?.stop();
      this.scheduler = undefined;
      this.targets.clear();
      this.checkKey = key;
      if (check === undefined) {
        for (const name of [...this.sink.backendNames()]) this.sink.applyHealth(name, 'up', 'health check removed from the configuration');
        return;
      }
      this.scheduler = this.start(check);
    }
    const scheduler = this.scheduler;
    if (scheduler === undefined) return;
    for (const backend of backends) {
      const target = `${backend.address.host}:${backend.address.port}`;
      if (this.targets.get(backend.name) === target) continue;
      if (this.targets.has(backend.name)) scheduler.remove(backend.name);
      this.targets.set(backend.name, target);
      scheduler.add({ id: backend.name, target: backend.address });
    }
  }

  private start(check: HealthCheckConfig): HealthScheduler {
    const scheduler = createHealthScheduler({
      checker: createChecker(checkSpecOfConfig(check)),
      intervalMs: check.interval,
      timeoutMs: check.timeout,
      rise: check.rise,
      fall: check.fall,
      initial: check.initial,
    });
    scheduler.on('result', ({ backend, source, result, state }) => {
      this.sink.recordCheck(backend, source, result);
      // The reducer's verdict is the truth; reconciling on every result (not only on 'change')
      // also realigns a backend whose checks restarted after a reload changed the check settings.
      this.sink.applyHealth(backend, state.health, result.ok ? result.detail : `${result.kind}: ${result.reason}`);
    });
    return scheduler;
  }

  observe(backend: string, passed: boolean): void {
    this.scheduler?.observe(backend, passed);
  }

  async stop(): Promise<void> {
    await this.scheduler?.stop();
    this.scheduler = undefined;
  }
}

/** Verdicts decided here: active checks and the reducer. */
export const localChecks: VerdictSources = (sink) => new LocalChecks(sink);
