/**
 * The process's descriptor budget: how many client connections it may hold before a new accept
 * or backend connect would fail with EMFILE. HAProxy derives its `maxconn` from `ulimit -n` the
 * same way (two descriptors per proxied connection, some kept for checks and the rest) and stops
 * taking clients at that mark, so the kernel never has to refuse it a descriptor.
 *
 * Without it, under a low limit, which of accept() and socket() meets the limit first is chance
 * (each client takes one descriptor at accept and the next for its backend connect), and an
 * accept that fails is invisible to l4lb: libuv accepts and closes the pending clients with its
 * reserve descriptor and reports nothing.
 */

import { readdirSync, readFileSync } from 'node:fs';

/** Descriptors kept out of the budget: health checks, the admin API, DNS, logs, a handover's channel. */
export const DESCRIPTOR_RESERVE = 64;

/** Descriptors one client connection holds: its own socket and its backend's. */
export const DESCRIPTORS_PER_CONNECTION = 2;

/**
 * The soft `Max open files` of /proc/self/limits, or Infinity where there is none (not Linux,
 * "unlimited", unreadable). Node raises the soft limit to the hard one at start.
 */
export function descriptorLimit(limits: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number {
  let text: string;
  try {
    text = limits();
  } catch {
    return Number.POSITIVE_INFINITY;
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  const value = soft === undefined ? Number.NaN : Number(soft);
  return Number.isInteger(value) && value > 0 ? value : Number.POSITIVE_INFINITY;
}

/** Descriptors this process has open now (Infinity-safe: 0 where /proc is missing). O(descriptors). */
export function openDescriptors(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return 0;
  }
}

/** Pure: client connections that fit in `limit` with `open` already taken and `reserve` kept; at least 1. */
export function connectionBudget(limit: number, open: number, reserve = DESCRIPTOR_RESERVE): number {
  if (!Number.isFinite(limit)) return Number.POSITIVE_INFINITY;
  return Math.max(1, Math.floor((limit - open - reserve) / DESCRIPTORS_PER_CONNECTION));
}

/** Client connections held against the budget, process-wide (every service of a balancer shares one). */
export class DescriptorBudget {
  private held = 0;

  constructor(readonly capacity: number) {}

  /** Takes one connection's share; false (nothing taken) when the budget is spent. */
  tryAcquire(): boolean {
    if (this.held >= this.capacity) return false;
    this.held++;
    return true;
  }

  /** Gives back a share taken by tryAcquire. */
  release(): void {
    if (this.held > 0) this.held--;
  }

  get inUse(): number {
    return this.held;
  }

  /** The budget of this process as it stands: its limit, what is open now, the reserve. */
  static measure(): DescriptorBudget {
    return new DescriptorBudget(connectionBudget(descriptorLimit(), openDescriptors()));
  }
}
