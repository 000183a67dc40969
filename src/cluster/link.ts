/**
 * A worker's verdicts: the primary's, kept by service and backend and applied to the worker's
 * service states (each service's VerdictSource follows the primary instead of running checks);
 * passive observations go to the primary, whose reducer decides. Pure apart from the injected `send`.
 *
 * Observations: a failure is sent at once (the primary's reducer must hear it while it matters);
 * a success only resets the reducer's count of consecutive passive failures (HAProxy's observe
 * mode), so it is sent only for a backend with a failure reported since its last success — at
 * most one message per failure, none on the healthy path (no IPC per connection).
 */
import type { ConfiguredState, SharedStatus, VerdictSink, VerdictSource, VerdictSources } from '../services/index.js';
import type { WorkerMessage } from './messages.js';

export class PrimaryVerdicts {
  private statuses = new Map<string, Map<string, SharedStatus>>();
  /** Backends with a failure sent and no success since, by service. */
  private readonly failing = new Map<string, Set<string>>();
  /** The worker's service states that follow the primary, by service. */
  private readonly followers = new Map<string, VerdictSink>();

  constructor(private readonly send: (message: WorkerMessage) => void) {}

  /** The VerdictSources a worker's balancer uses: every service follows the primary. */
  readonly sources: VerdictSources = (sink) => this.follow(sink);

  private follow(sink: VerdictSink): VerdictSource {
    this.followers.set(sink.service, sink);
    return {
      decides: false,
      // Configured admin states are the primary's to apply (it sends the result); start from what it decided.
      configure: (_check, _backends, _changed: readonly ConfiguredState[]) => {
        for (const name of [...sink.backendNames()]) {
          const shared = this.current(sink.service, name);
          if (shared !== undefined) sink.applyShared(shared);
        }
      },
      observe: (backend, passed) => this.observe(sink.service, backend, passed),
      stop: () => {
        if (this.followers.get(sink.service) === sink) this.followers.delete(sink.service);
        return Promise.resolve();
      },
    };
  }

  /** O(1), no allocation on the healthy path. */
  observe(service: string, backend: string, passed: boolean): void {
    let failing = this.failing.get(service);
    if (passed) {
      if (failing === undefined || !failing.delete(backend)) return;
    } else {
      if (failing === undefined) {
        failing = new Set();
        this.failing.set(service, failing);
      }
      failing.add(backend);
    }
    this.send({ type: 'observe', service, backend, passed });
  }

  /** The latest verdict known for a backend, if any. */
  current(service: string, backend: string): SharedStatus | undefined {
    return this.statuses.get(service)?.get(backend);
  }

  /** Replaces what is known with a full snapshot from the primary, then applies it to the following states. */
  apply(statuses: readonly SharedStatus[]): void {
    const next = new Map<string, Map<string, SharedStatus>>();
    for (const status of statuses) {
      let byBackend = next.get(status.service);
      if (byBackend === undefined) {
        byBackend = new Map();
        next.set(status.service, byBackend);
      }
      byBackend.set(status.backend, status);
    }
    this.statuses = next;
    for (const status of statuses) this.followers.get(status.service)?.applyShared(status);
  }
}
