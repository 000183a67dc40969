/**
 * Errors of l4lb's own host, not of the backend: a connect that fails because this process or
 * kernel ran short (descriptors, buffers, memory, local ports) says nothing about the backend,
 * so it must not feed passive health (HAProxy likewise keeps its own resource errors out of
 * `observe layer4`, and pauses its listeners while descriptors are short).
 */

import type { LocalErrorCode } from '../errors.js';

export { isLocalError, LOCAL_ERROR_CODES, type LocalErrorCode } from '../errors.js';

/** Whether the shortage is of descriptors: accepting more would only make it worse, so listeners pause. */
export function pausesAccepting(code: LocalErrorCode): boolean {
  return code === 'EMFILE' || code === 'ENFILE';
}

/** How long listeners stay paused after a descriptor shortage, ms (HAProxy retries its listeners after a short backoff). */
export const ACCEPT_PAUSE_MS = 100;

/** A quiet time after which the next local error starts a new burst (and is logged again), ms. */
export const LOCAL_ERROR_BURST_GAP_MS = 1000;

/**
 * Logs once per burst: `note(now)` is true for the first error of a burst, i.e. when no error was
 * noted in the last `gapMs`. Pure apart from its own last time.
 */
export class BurstGate {
  private last = Number.NEGATIVE_INFINITY;
  /** Errors noted since the last burst was reported (the first one included). */
  private count = 0;

  constructor(private readonly gapMs = LOCAL_ERROR_BURST_GAP_MS) {}

  /** Notes an error at `now`; returns the count of the burst that just ended if a new one starts, else undefined. */
  note(now: number): { startsBurst: boolean; previous: number } {
    const startsBurst = now - this.last >= this.gapMs;
    const previous = this.count;
    if (startsBurst) this.count = 0;
    this.count++;
    this.last = now;
    return { startsBurst, previous };
  }
}
