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
}

export function isLbError(value: unknown): value is LbError {
  return value instanceof LbError;
}
