/**
 * The health gate: the chooser new connections use, the plan's strategy restricted to
 * usable backends (src/services/state.ts keeps their state), as gobetween's `balance/middleware/`
 * filters wrap its balancers. Consistent hashing keeps affinity: the gate walks the picker's own
 * candidate order (`pick(key, attempt)`, HAProxy's `chash_get_server_hash(…, avoid)`) and skips
 * unusable backends; backups only when no primary is usable; slow start by admission (see
 * state.ts). A retry avoids the backends its connection tried by name (src/proxy/connection.ts),
 * so a walk rebuilt after a health change cannot send it back to them or past its next candidate.
 */
import { performance } from 'node:perf_hooks';
import type { Balance } from '../config/index.js';
import type { LoadView } from '../hashing/index.js';
import { admissionDraw, isUsable, slowStartFraction, type ServiceState } from './state.js';
import type { ResolvedBackend, ServicePlan } from './plan.js';
import { createChooser, type Chooser, type Flow } from './strategy.js';

/** One flow's walk over the strategy's candidates, extended only as far as attempts ask. */
interface FlowWalk {
  version: number;
  /** Next attempt to ask the strategy for. */
  cursor: number;
  /** Usable candidates found so far, in order; deferred ones are appended once the walk ends. */
  found: ResolvedBackend[];
  /** Usable but not yet admitted by slow start. */
  deferred: ResolvedBackend[] | undefined;
  done: boolean;
  /** Walking backups (no primary usable) or primaries. */
  backups: boolean;
}

/**
 * The chooser new connections use: the plan's strategy, restricted to usable backends.
 * Attempt n is the n-th usable candidate in the strategy's own order (primaries; backups only if
 * no primary is usable), with backends still refusing this flow under slow start moved last.
 * Cost: the strategy is asked only as far as the attempts go (usually one pick when the first
 * candidate is usable); the walk is kept per flow and health version, so a retry under the same
 * version continues it instead of asking the strategy again.
 */
class HealthGate implements Chooser<ResolvedBackend> {
  readonly balance: Balance;
  readonly backends: readonly ResolvedBackend[];
  private readonly walks = new WeakMap<Flow, FlowWalk>();
  private primaryVersion = -1;
  private primaryUsable = true;
  private inner: Chooser<ResolvedBackend> | undefined;
  private innerVersion = -1;

  constructor(
    private readonly plan: GateSubject,
    private readonly health: ServiceState,
    private readonly loads: LoadView,
    private readonly random: () => number = Math.random,
  ) {
    this.balance = plan.chooser.balance;
    this.backends = plan.backends;
  }

  /** The plan's Maglev table: the gate filters picks, it never changes the table. */
  get table(): Chooser<ResolvedBackend>['table'] {
    return this.plan.chooser.table;
  }

  /** Roundrobin and leastconn have no key to keep: they are rebuilt over the usable set. */
  private strategy(): Chooser<ResolvedBackend> | undefined {
    if (this.plan.hashes) return this.plan.chooser;
    if (this.innerVersion !== this.health.version) {
      this.innerVersion = this.health.version;
      const usable = this.usableSet();
      this.inner = usable.length === 0 ? undefined : createChooser(this.balance, usable, { loads: this.loads });
    }
    return this.inner;
  }

  private usableSet(): ResolvedBackend[] {
    const primaries = this.backends.filter((backend) => this.isUsable(backend) && !this.statusOf(backend).backup);
    return primaries.length > 0 ? primaries : this.backends.filter((backend) => this.isUsable(backend));
  }

  private statusOf(backend: ResolvedBackend) {
    return this.health.statuses.get(backend.name) ?? { health: 'up' as const, admin: 'active' as const, backup: false, slowStartMs: 0, rampStart: -Infinity };
  }

  private isUsable(backend: ResolvedBackend): boolean {
    return isUsable(this.statusOf(backend));
  }

  /** Whether any primary is usable, recomputed once per health version. O(n) then O(1). */
  private anyPrimaryUsable(): boolean {
    if (this.primaryVersion !== this.health.version) {
      this.primaryVersion = this.health.version;
      this.primaryUsable = this.backends.some((backend) => this.isUsable(backend) && !this.statusOf(backend).backup);
    }
    return this.primaryUsable;
  }

  private walkOf(flow: Flow): FlowWalk {
    const cached = this.walks.get(flow);
    if (cached !== undefined && cached.version === this.health.version) return cached;
    const walk: FlowWalk = { version: this.health.version, cursor: 0, found: [], deferred: undefined, done: false, backups: !this.anyPrimaryUsable() };
    this.walks.set(flow, walk);
    return walk;
  }

  /** Extends `walk` until it holds `attempt` + 1 candidates or the strategy has none left. */
  private extend(flow: Flow, walk: FlowWalk, attempt: number): void {
    const strategy = this.strategy();
    const now = performance.now();
    while (walk.found.length <= attempt && !walk.done) {
      const backend = strategy === undefined || walk.cursor >= strategy.backends.length ? undefined : strategy.pick(flow, walk.cursor++);
      if (backend === undefined) {
        walk.done = true;
        if (walk.deferred !== undefined) walk.found.push(...walk.deferred);
        break;
      }
      const status = this.statusOf(backend);
      if (!isUsable(status) || status.backup !== walk.backups) continue;
      const fraction = slowStartFraction(status, now);
      if (fraction >= 1 || (this.plan.hashes ? admissionDraw(flow.key, backend.name) : this.random()) < fraction) walk.found.push(backend);
      else (walk.deferred ??= []).push(backend);
    }
  }

  pick(flow: Flow, attempt: number): ResolvedBackend | undefined {
    const walk = this.walkOf(flow);
    if (walk.found.length <= attempt) this.extend(flow, walk, attempt);
    return walk.found[attempt];
  }
}

/** What the gate wraps: a strategy over resolved backends, and whether it hashes the flow key. */
export type GateSubject = Pick<ServicePlan, 'chooser' | 'backends' | 'hashes'>;

/**
 * `subject`'s chooser gated by `health`: what a kernel table writer asks, slot by slot, for the
 * backend new flows of that slot go to (src/kernel), through the very gate the proxy uses.
 */
export function gateChooser(subject: GateSubject, health: ServiceState, loads: LoadView): Chooser<ResolvedBackend> {
  return new HealthGate(subject, health, loads);
}

/** The plan new connections use: `plan` with its chooser gated by `health`, and passive observations wired. */
export function gatePlan(plan: ServicePlan, health: ServiceState, loads: LoadView): ServicePlan {
  return { ...plan, chooser: new HealthGate(plan, health, loads), observe: (backend, passed) => health.observe(backend, passed) };
}
