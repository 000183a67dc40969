/**
 * l4lb's own shortages, seen at accept or at a backend connect: out of descriptors (EMFILE,
 * ENFILE), of kernel buffers or memory (ENOBUFS, ENOMEM), of local ports (EADDRNOTAVAIL). They are
 * this host's failure, not a backend's: the data path keeps them out of passive health
 * (src/proxy/connection.ts), each service counts them by code, and this object, one per
 * balancer (a shortage is the process's, whichever listener met it), does the rest:
 *
 * - Logs once per burst: a warn line when the first error of a burst comes, with its code, and
 *   one line when the burst has ended (no local error for `quietMs`) with every count, so a storm
 *   of thousands of failed connects is two lines, not thousands.
 * - Pauses accepting for `pauseMs` after each descriptor or memory error, on every listener, as
 *   HAProxy does (`limit_listener` for 100 ms on EMFILE/ENFILE/ENOBUFS/ENOMEM) and nginx
 *   (`ngx_disable_accept_events` for 500 ms): every new client would take a descriptor that the
 *   connections already open need. Node cannot take a listener out of its poller (libuv accepts
 *   whatever arrives, and on EMFILE itself accepts and closes the pending ones: its "emfile
 *   trick"), so a paused listener resets each client the moment it is accepted, which gives the
 *   descriptor back at once and tells the client plainly, instead of trying to serve it.
 *
 * Time runs on the injected clock: the pause is a deadline read at accept (no timer), the end of
 * a burst one timer per burst.
 */
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock.js';
import { pausesAccept, type LocalErrno } from '../errors.js';

/** Where a local error was met. */
export type LocalErrorSite = 'accept' | 'connect';

export interface LocalErrorsOptions {
  readonly logger: Logger;
  readonly clock: Clock;
  /** Accepting stays paused this long after the last descriptor or memory error (default 100 ms, HAProxy's). */
  readonly pauseMs?: number;
  /** A burst ends after this long without a local error (default 1 s). */
  readonly quietMs?: number;
}

export const DEFAULT_LOCAL_PAUSE_MS = 100;
export const DEFAULT_LOCAL_QUIET_MS = 1000;

interface Burst {
  readonly startedAt: number;
  lastAt: number;
  readonly counts: Map<LocalErrno, number>;
  /** Clients reset at accept while paused. */
  refused: number;
}

export class LocalErrors {
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly pauseMs: number;
  private readonly quietMs: number;
  /** Accept is paused while the clock is before this; -Infinity when not paused. */
  private pausedUntil = -Infinity;
  private burst: Burst | undefined;
  private timer: TimerHandle | undefined;

  constructor(options: LocalErrorsOptions) {
    this.logger = options.logger;
    this.clock = options.clock;
    this.pauseMs = options.pauseMs ?? DEFAULT_LOCAL_PAUSE_MS;
    this.quietMs = options.quietMs ?? DEFAULT_LOCAL_QUIET_MS;
  }

  /** Whether listeners refuse new clients now. O(1); reads the clock only while a pause was set. */
  get paused(): boolean {
    if (this.pausedUntil === -Infinity) return false;
    if (this.clock.now() < this.pausedUntil) return true;
    this.pausedUntil = -Infinity;
    return false;
  }

  /** Whether a burst is under way (its end not logged yet). */
  get inBurst(): boolean {
    return this.burst !== undefined;
  }

  /**
   * A local error `code` at `site`, for service `service` (and the backend a connect was for).
   * Post: counted in the burst (a new burst is logged now), and accept paused for `pauseMs` if
   * the code calls for it.
   */
  record(code: LocalErrno, site: LocalErrorSite, service: string, backend?: string): void {
    const now = this.clock.now();
    const pausing = pausesAccept(code);
    if (pausing) this.pausedUntil = now + this.pauseMs;
    let burst = this.burst;
    if (burst === undefined) {
      burst = { startedAt: now, lastAt: now, counts: new Map(), refused: 0 };
      this.burst = burst;
      this.logger.warn(
        { code, site, service, ...(backend === undefined ? {} : { backend }), ...(pausing ? { pauseMs: this.pauseMs } : {}) },
        pausing
          ? 'local resource shortage: not counted against backends; accepting paused while it lasts'
          : 'local resource shortage: not counted against backends',
      );
      this.timer = this.clock.unref(this.clock.setTimeout(this.checkQuiet, this.quietMs));
    }
    burst.lastAt = now;
    burst.counts.set(code, (burst.counts.get(code) ?? 0) + 1);
  }

  /** A client was reset at accept because accepting is paused. */
  refusedWhilePaused(): void {
    if (this.burst !== undefined) this.burst.refused++;
  }

  /** Logs the end of a burst under way and stops the timer (the balancer is closing). */
  close(): void {
    this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.endBurst();
  }

  private readonly checkQuiet = (): void => {
    this.timer = undefined;
    const burst = this.burst;
    if (burst === undefined) return;
    const quietFor = this.clock.now() - burst.lastAt;
    if (quietFor < this.quietMs) {
      this.timer = this.clock.unref(this.clock.setTimeout(this.checkQuiet, this.quietMs - quietFor));
      return;
    }
    this.endBurst();
  };

  private endBurst(): void {
    const burst = this.burst;
    if (burst === undefined) return;
    this.burst = undefined;
    this.logger.warn(
      {
        errors: Object.fromEntries(burst.counts),
        refusedWhilePaused: burst.refused,
        durationMs: Math.round(burst.lastAt - burst.startedAt),
      },
      'local resource shortage ended',
    );
  }
}
