/**
 * The one interface every health checker implements (HAProxy `tcpcheck.c` rule sets, glb-healthcheck
 * checkers): a checker reports one raw pass/fail per probe and never decides up/down; that is the
 * job of the pure rise/fall reducer in `reducer.ts` (glb-healthcheck's `DampenedResultStream`).
 */

/** Where a probe goes: a host name or address literal, and a TCP port. */
export interface HealthTarget {
  readonly host: string;
  readonly port: number;
}

export type CheckType = 'tcp' | 'redis' | 'pgsql' | 'mysql' | 'http';

export const CHECK_TYPES: readonly CheckType[] = ['tcp', 'redis', 'pgsql', 'mysql', 'http'];

/**
 * Why a probe failed, a closed set with bounded cardinality (a metrics label), after HAProxy's
 * check statuses:
 * - `connect`: the TCP connection was refused, reset or unroutable (L4CON);
 * - `timeout`: no verdict before the deadline, connecting or waiting for the reply (L4TOUT/L7TOUT);
 * - `closed`: the server closed before a complete reply (L7RSP on an empty or truncated answer);
 * - `invalid`: bytes that are not the protocol, or a reply larger than the read bound (L7RSP);
 * - `status`: a well-formed answer that says "not serving" (L7STS: `-LOADING`, an ErrorResponse,
 *   a MySQL error packet, an unexpected HTTP status);
 * - `aborted`: the caller's AbortSignal fired (a scheduler stopping), not the server's fault.
 */
export type FailureKind = 'connect' | 'timeout' | 'closed' | 'invalid' | 'status' | 'aborted';

/** One probe's outcome. `durationMs` runs from the start of the connect to the verdict. */
export type CheckResult =
  | { readonly ok: true; readonly durationMs: number; readonly detail: string }
  | { readonly ok: false; readonly durationMs: number; readonly kind: FailureKind; readonly reason: string };

export interface HealthChecker {
  readonly type: CheckType;
  /**
   * Probes `target` once. Never rejects and never throws: every failure, including a bad target,
   * is a `{ ok: false }` result. Before the returned promise settles the probe's socket is
   * destroyed and its timer cleared, whatever the server did, so nothing outlives the call.
   * `timeoutMs` bounds the whole probe (connect + exchange), as HAProxy's `inter` does when no
   * `timeout check` is set. An aborted `signal` ends the probe at once with kind `aborted`.
   */
  check(target: HealthTarget, timeoutMs: number, signal?: AbortSignal): Promise<CheckResult>;
}
