/**
 * The thin I/O loop around checkers and the reducer: one probe per backend every `interval`
 * (plus seeded jitter, HAProxy's `spread-checks`), never two at once for the same backend, each
 * result fed to the pure rise/fall reducer; `change` events when a backend goes up or down and
 * `result` events for every probe (metrics: outcome and duration). Passive observations from the
 * proxy (connect failures and resets) count as failed checks, as HAProxy's `observe layer4` with
 * `on-error fail-check` does. Defaults are HAProxy's: inter 2s, rise 2, fall 3, timeout = inter.
 */
import { EventEmitter } from 'node:events';
import { ClosedError, LbError } from '../errors.js';
import { DEFAULT_FALL, DEFAULT_RISE, initialState, next, validateThresholds, type Health, type HealthState, type InitialHealth } from './reducer.js';
import type { CheckResult, HealthChecker, HealthTarget } from './types.js';

export const DEFAULT_INTERVAL_MS = 2000;
export const DEFAULT_JITTER = 0.05;
export const DEFAULT_PASSIVE_ERROR_LIMIT = 1;

export interface ScheduledBackend {
  /** Stable identity used in events (the backend's name). */
  readonly id: string;
  readonly target: HealthTarget;
}

export interface HealthSchedulerOptions {
  readonly checker: HealthChecker;
  /** Between the end of one probe and the start of the next. Default 2000 (HAProxy `inter`). */
  readonly intervalMs?: number;
  /** Bound of one probe, connect + exchange. Default: the interval (HAProxy without `timeout check`). */
  readonly timeoutMs?: number;
  readonly rise?: number;
  readonly fall?: number;
  /** Default 'up', HAProxy's default `init-state`. */
  readonly initial?: InitialHealth;
  /** Each delay is interval x (1 ± jitter), uniformly; 0..1, default 0.05. */
  readonly jitter?: number;
  /**
   * Delay of a backend's first probe; default a uniform draw in [0, interval), which spreads the
   * first probes of many backends over one interval as HAProxy does.
   */
  readonly firstCheckDelayMs?: number;
  /** Consecutive passive failures that make one failed check (HAProxy `error-limit`). Default 1. */
  readonly passiveErrorLimit?: number;
  /** Uniform in [0, 1); inject `seededRandom(seed)` for reproducible schedules. Default Math.random. */
  readonly random?: () => number;
}

export type ResultSource = 'active' | 'passive';

export interface HealthResultEvent {
  readonly backend: string;
  readonly source: ResultSource;
  readonly passed: boolean;
  /** The probe's outcome (active) or a synthesized failure (passive), with its duration. */
  readonly result: CheckResult;
  /** The reducer's state after this result. */
  readonly state: HealthState;
}

export interface HealthChangeEvent {
  readonly backend: string;
  readonly health: Health;
  readonly previous: Health;
  /** Why: the failing probe's kind and reason, or the passing probe's detail. */
  readonly reason: string;
}

export interface HealthSchedulerEvents {
  change: [HealthChangeEvent];
  result: [HealthResultEvent];
}

interface Entry {
  readonly backend: ScheduledBackend;
  state: HealthState;
  timer: NodeJS.Timeout | undefined;
  inFlight: AbortController | undefined;
  passiveErrors: number;
  removed: boolean;
}

/** mulberry32: a tiny seeded generator, uniform in [0, 1). Deterministic per seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The delay before the next probe: interval x (1 + jitter x u), u uniform in [-1, 1). Pure. */
export function checkDelay(intervalMs: number, jitter: number, random: () => number): number {
  return Math.max(0, intervalMs * (1 + jitter * (2 * random() - 1)));
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new LbError('LB_ERR_INVALID_ARGUMENT', `health check ${name} must be a number > 0, got ${String(value)}`);
  }
  return value;
}

function describeResult(result: CheckResult): string {
  return result.ok ? result.detail : `${result.kind}: ${result.reason}`;
}

export class HealthScheduler extends EventEmitter<HealthSchedulerEvents> {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly rise: number;
  readonly fall: number;
  readonly initial: InitialHealth;
  private readonly checker: HealthChecker;
  private readonly jitter: number;
  private readonly firstCheckDelayMs: number | undefined;
  private readonly passiveErrorLimit: number;
  private readonly random: () => number;
  private readonly entries = new Map<string, Entry>();
  private readonly pending = new Set<Promise<void>>();
  private stopped = false;

  /** Validates every option (LbError on a bad one) and starts probing `backends`. */
  constructor(options: HealthSchedulerOptions, backends: readonly ScheduledBackend[] = []) {
    super();
    this.checker = options.checker;
    this.intervalMs = positive('interval', options.intervalMs ?? DEFAULT_INTERVAL_MS);
    this.timeoutMs = positive('timeout', options.timeoutMs ?? this.intervalMs);
    this.rise = options.rise ?? DEFAULT_RISE;
    this.fall = options.fall ?? DEFAULT_FALL;
    validateThresholds(this.rise, this.fall);
    this.initial = options.initial ?? 'up';
    initialState(this.initial, this.rise, this.fall); // validates `initial`
    this.jitter = options.jitter ?? DEFAULT_JITTER;
    if (!(this.jitter >= 0 && this.jitter <= 1)) {
      throw new LbError('LB_ERR_INVALID_ARGUMENT', `health check jitter must be within 0..1, got ${String(this.jitter)}`);
    }
    this.firstCheckDelayMs = options.firstCheckDelayMs;
    if (this.firstCheckDelayMs !== undefined && !(this.firstCheckDelayMs >= 0)) {
      throw new LbError('LB_ERR_INVALID_ARGUMENT', `health check first delay must be >= 0, got ${String(this.firstCheckDelayMs)}`);
    }
    this.passiveErrorLimit = options.passiveErrorLimit ?? DEFAULT_PASSIVE_ERROR_LIMIT;
    if (!Number.isInteger(this.passiveErrorLimit) || this.passiveErrorLimit < 1) {
      throw new LbError('LB_ERR_INVALID_ARGUMENT', `health check passive error limit must be an integer >= 1, got ${String(this.passiveErrorLimit)}`);
    }
    this.random = options.random ?? Math.random;
    for (const backend of backends) this.add(backend);
  }

  /** Starts probing `backend` in the initial state. Throws LB_ERR_DUPLICATE_BACKEND on a duplicate id, ClosedError (LB_ERR_CLOSED) after stop(). */
  add(backend: ScheduledBackend): void {
    if (this.stopped) throw new ClosedError({ component: 'health-scheduler' }, `health scheduler is stopped; cannot add "${backend.id}"`);
    if (this.entries.has(backend.id)) throw new LbError('LB_ERR_DUPLICATE_BACKEND', `backend "${backend.id}" is already health-checked`);
    const entry: Entry = {
      backend,
      state: initialState(this.initial, this.rise, this.fall),
      timer: undefined,
      inFlight: undefined,
      passiveErrors: 0,
      removed: false,
    };
    this.entries.set(backend.id, entry);
    this.schedule(entry, this.firstCheckDelayMs ?? this.random() * this.intervalMs);
  }

  /** Stops probing `id` (its in-flight probe is aborted and ignored). False if unknown. */
  remove(id: string): boolean {
    const entry = this.entries.get(id);
    if (entry === undefined) return false;
    this.entries.delete(id);
    this.release(entry);
    return true;
  }

  /** Current health of `id`, undefined if not checked. */
  health(id: string): Health | undefined {
    return this.entries.get(id)?.state.health;
  }

  /** Current reducer state of every backend. */
  states(): ReadonlyMap<string, HealthState> {
    return new Map([...this.entries].map(([id, entry]) => [id, entry.state]));
  }

  /**
   * A passive observation from live traffic: `passed` false for a connect failure or reset.
   * `passiveErrorLimit` consecutive failures make one failed check; a success only resets that
   * count (it does not prove health: HAProxy's observe mode works the same). Ignored (false)
   * for an unknown backend or after stop(). O(1).
   */
  observe(id: string, passed: boolean): boolean {
    const entry = this.entries.get(id);
    if (entry === undefined || this.stopped) return false;
    if (passed) {
      entry.passiveErrors = 0;
      return true;
    }
    entry.passiveErrors += 1;
    if (entry.passiveErrors >= this.passiveErrorLimit) {
      const count = entry.passiveErrors;
      entry.passiveErrors = 0;
      const result: CheckResult = {
        ok: false,
        durationMs: 0,
        kind: 'connect',
        reason: `passive: ${count} consecutive connection failure${count === 1 ? '' : 's'} from live traffic`,
      };
      this.apply(entry, result, 'passive');
    }
    return true;
  }

  /** Clears every timer, aborts in-flight probes and resolves once they have all settled. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const entry of this.entries.values()) this.release(entry);
    this.entries.clear();
    await Promise.all([...this.pending]);
  }

  private release(entry: Entry): void {
    entry.removed = true;
    clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.inFlight?.abort();
  }

  private schedule(entry: Entry, delayMs: number): void {
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.launch(entry);
    }, delayMs);
  }

  private launch(entry: Entry): void {
    if (entry.removed || this.stopped || entry.inFlight !== undefined) return;
    const controller = new AbortController();
    entry.inFlight = controller;
    const run = this.probe(entry, controller).finally(() => this.pending.delete(run));
    this.pending.add(run);
  }

  private async probe(entry: Entry, controller: AbortController): Promise<void> {
    let result: CheckResult;
    try {
      result = await this.checker.check(entry.backend.target, this.timeoutMs, controller.signal);
    } catch (error) {
      // A checker must not throw; if one does, it is a failed probe, not a dead scheduler.
      result = { ok: false, durationMs: 0, kind: 'invalid', reason: `checker error: ${error instanceof Error ? error.message : String(error)}` };
    }
    entry.inFlight = undefined;
    if (entry.removed || this.stopped) return;
    this.schedule(entry, checkDelay(this.intervalMs, this.jitter, this.random));
    // An aborted probe (l4lb's own shortage, src/proxy/local-errors.ts) is no verdict on the backend.
    if (!result.ok && result.kind === 'aborted') return;
    this.apply(entry, result, 'active');
  }

  /** Feeds one result to the reducer and emits; state is consistent before any listener runs. */
  private apply(entry: Entry, result: CheckResult, source: ResultSource): void {
    const previous = entry.state;
    entry.state = next(previous, result.ok, this.rise, this.fall);
    this.emit('result', { backend: entry.backend.id, source, passed: result.ok, result, state: entry.state });
    if (entry.state.health !== previous.health) {
      this.emit('change', { backend: entry.backend.id, health: entry.state.health, previous: previous.health, reason: describeResult(result) });
    }
  }
}

/** Builds a scheduler (options validated, LbError on a bad one) and starts probing `backends`. */
export function createHealthScheduler(options: HealthSchedulerOptions, backends: readonly ScheduledBackend[] = []): HealthScheduler {
  return new HealthScheduler(options, backends);
}
