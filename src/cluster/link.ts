/**
 * A worker's HealthLink (src/proxy/health.ts): the primary's verdicts, kept by service and
 * backend, and passive observations sent to the primary. Pure apart from the injected `send`.
 *
 * Observations: a failure is sent at once (the primary's reducer must hear it while it matters);
 * a success only resets the reducer's count of consecutive passive failures (HAProxy's observe
 * mode), so it is sent only for a backend with a failure reported since its last success — at
 * most one message per failure, none on the healthy path (no IPC per connection).
 */
import type { HealthLink, SharedStatus } from '../proxy/balancer.js';
import type { WorkerMessage } from './messages.js';

export class WorkerHealthLink implements HealthLink {
  private statuses = new Map<string, Map<string, SharedStatus>>();
  /** Backends with a failure sent and no success since, by service. */
  private readonly failing = new Map<string, Set<string>>();
  private readonly listeners = new Set<(statuses: readonly SharedStatus[]) => void>();

  constructor(private readonly send: (message: WorkerMessage) => void) {}

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

  current(service: string, backend: string): SharedStatus | undefined {
    return this.statuses.get(service)?.get(backend);
  }

  subscribe(listener: (statuses: readonly SharedStatus[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Replaces what is known with a full snapshot from the primary, then tells the subscribers. */
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
    for (const listener of this.listeners) listener(statuses);
  }
}
