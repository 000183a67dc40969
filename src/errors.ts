/**
 * Typed errors with stable codes (the undici habit): callers branch on `code`, never on the message.
 * The CLI turns any LbError into one line on stderr and an exit code; nothing else should print a stack.
 */

export type LbErrorCode =
  | 'LB_ERR_INVALID_ARGUMENT'
  | 'LB_ERR_NO_BACKENDS'
  | 'LB_ERR_DUPLICATE_BACKEND'
  | 'LB_ERR_BAD_WEIGHT'
  | 'LB_ERR_TABLE_SIZE'
  | 'LB_ERR_CONFIG'
  | 'LB_ERR_LISTEN'
  | 'LB_ERR_RESOLVE'
  | 'LB_ERR_UNKNOWN_SERVICE'
  | 'LB_ERR_UNKNOWN_BACKEND'
  | 'LB_ERR_ADMIN'
  | 'LB_ERR_CLOSED'
  | 'LB_ERR_PROXY_MALFORMED'
  | 'LB_ERR_PROXY_TOO_LONG'
  | 'LB_ERR_PROXY_UNSUPPORTED';

export class LbError extends Error {
  readonly code: LbErrorCode;

  constructor(code: LbErrorCode, message: string) {
    super(message);
    this.name = 'LbError';
    this.code = code;
  }

  /** Why something was refused, one line per problem (a ConfigError has one per problem of the file). */
  lines(): string[] {
    return [this.message];
  }
}

/** Why a configuration or an action was refused, as lines: an LbError's own, else an internal error. */
export function problemsOf(error: unknown): string[] {
  if (isLbError(error)) return error.lines();
  return [`internal error: ${error instanceof Error ? error.message : String(error)}`];
}

export function isLbError(value: unknown): value is LbError {
  return value instanceof LbError;
}

/** A backend host name that resolves nowhere (at start or reload). */
export class ResolveError extends LbError {
  /** The errno code of the failed lookup (ENOTFOUND, EAI_AGAIN, …), or its message when it has none. */
  readonly reason: string;

  constructor(
    readonly where: string,
    readonly host: string,
    cause: unknown,
  ) {
    const reason = (cause as NodeJS.ErrnoException | undefined)?.code ?? (cause instanceof Error ? cause.message : String(cause));
    super('LB_ERR_RESOLVE', `${where}: cannot resolve "${host}" (${reason})`);
    this.name = 'ResolveError';
    this.reason = reason;
  }
}

/** A request named a service the running configuration does not have. */
export class UnknownServiceError extends LbError {
  constructor(
    readonly service: string,
    readonly known: readonly string[],
  ) {
    super('LB_ERR_UNKNOWN_SERVICE', `no service "${service}" (services: ${known.join(', ') || 'none'})`);
    this.name = 'UnknownServiceError';
  }
}

/** A request named a backend its service does not have. */
export class UnknownBackendError extends LbError {
  constructor(
    readonly service: string,
    readonly backend: string,
    readonly known: readonly string[],
  ) {
    super('LB_ERR_UNKNOWN_BACKEND', `service "${service}" has no backend "${backend}" (backends: ${known.join(', ')})`);
    this.name = 'UnknownBackendError';
  }
}

/** Work refused because its owner is stopping or stopped (a balancer closing, a scheduler stopped). */
export class ClosedError extends LbError {
  constructor(message: string) {
    super('LB_ERR_CLOSED', message);
    this.name = 'ClosedError';
  }
}
