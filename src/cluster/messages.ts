/**
 * The IPC protocol between the cluster primary and its workers, over node:cluster's
 * channel (structured clone: `serialization: 'advanced'`). Closed unions, one `type` each.
 *
 * Health and admin state are decided once, in the primary, and pushed (`start`, `health`); the
 * workers push back what only they see (passive observations) and answer requests by `id`.
 * Errors travel as LbErrorWire (src/errors.ts) so the primary rebuilds them with their code.
 */
import type { Config, Endpoint } from '../config/index.js';
import { LbError, isLbError, type LbErrorWire } from '../errors.js';
import type { ListenerStats, ServiceStatusStats } from '../proxy/index.js';
import type { HandedSocket } from '../runtime/index.js';
import type { SharedStatus } from '../services/index.js';

/** Primary → worker. */
export type PrimaryMessage =
  /**
   * Answer to `hello`: the configuration to run and the verdicts to start from, and the listening
   * sockets the primary inherited (fds of the primary: a worker's `listen({ fd })` is opened there).
   */
  | { readonly type: 'start'; readonly config: Config; readonly statuses: readonly SharedStatus[]; readonly sockets: readonly HandedSocket[] }
  /** Every backend's verdicts, after any change (full snapshot: idempotent, order-proof). */
  | { readonly type: 'health'; readonly statuses: readonly SharedStatus[] }
  /** A configuration the primary has validated and applied; answered by `reloaded`. */
  | { readonly type: 'reload'; readonly id: number; readonly config: Config }
  /** Answered by `stats`. */
  | { readonly type: 'stats'; readonly id: number }
  /** Answered by one `socket` per listener, each with its handle, then `sockets` (an upgrade). */
  | { readonly type: 'sockets'; readonly id: number }
  /** Close the listeners, drain up to `drainMs`, exit 0. A second one with 0 ends connections now. */
  | { readonly type: 'stop'; readonly drainMs: number };

/** Worker → primary. */
export type WorkerMessage =
  /** The worker's message handler is installed: send `start`. */
  | { readonly type: 'hello' }
  | { readonly type: 'started'; readonly listening: readonly { readonly service: string; readonly listen: Endpoint; readonly socket: string }[] }
  /** Could not start (the error with its code and fields); the worker exits 1 after sending it. */
  | { readonly type: 'failed'; readonly error: LbErrorWire }
  /** A passive observation, sent at once (failures) or after a failure (the pass that resets it). */
  | { readonly type: 'observe'; readonly service: string; readonly backend: string; readonly passed: boolean }
  /** `error` null: applied; else why not (the worker keeps its previous configuration). */
  | { readonly type: 'reloaded'; readonly id: number; readonly error: LbErrorWire | null }
  | { readonly type: 'stats'; readonly id: number; readonly services: readonly ServiceStatusStats[]; readonly listeners: readonly ListenerStats[] }
  /** One listening socket (its handle travels with the message), named by its socket name (proxy's socketName). */
  | { readonly type: 'socket'; readonly id: number; readonly name: string }
  /** Every `socket` of request `id` has been sent. */
  | { readonly type: 'sockets'; readonly id: number }
  /** After `stop`: this worker's listeners are closed. */
  | { readonly type: 'draining' };

const PRIMARY_TYPES: ReadonlySet<string> = new Set<PrimaryMessage['type']>(['start', 'health', 'reload', 'stats', 'sockets', 'stop']);
const WORKER_TYPES: ReadonlySet<string> = new Set<WorkerMessage['type']>(['hello', 'started', 'failed', 'observe', 'reloaded', 'stats', 'socket', 'sockets', 'draining']);

function typeOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const type = (value as { type?: unknown }).type;
  return typeof type === 'string' ? type : undefined;
}

/** Whether `value` is one of ours (the channel may carry other messages); the sender is trusted for the rest. */
export function isPrimaryMessage(value: unknown): value is PrimaryMessage {
  return PRIMARY_TYPES.has(typeOf(value) ?? '');
}

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return WORKER_TYPES.has(typeOf(value) ?? '');
}

/**
 * An error as it crosses IPC: an LbError keeps its class, code and fields (fromWire rebuilds it in
 * the primary); anything else is a bug, sent as what the CLI would print for it.
 */
export function errorToWire(error: unknown): LbErrorWire {
  if (isLbError(error)) return error.toWire();
  return new LbError('LB_ERR_INTERNAL', `internal error: ${error instanceof Error ? error.message : String(error)}`).toWire();
}
