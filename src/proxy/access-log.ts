/**
 * The access log: one pino JSON line per connection, written when it closes, with what HAProxy's
 * `option tcplog` carries (service, client, backend, timers, bytes, retries, termination state).
 * The logger and each service's child are made once; nothing is logged while bytes flow.
 */
import pino, { type DestinationStream, type Logger } from 'pino';
import type { SpliceEnd } from './splice.js';

/** Refusals by the source rules at accept, before any backend is contacted (src/proxy/source-rules.ts). */
export type SourceRefusal =
  | 'refused-denied'
  | 'refused-not-allowed'
  | 'refused-bad-address'
  | 'refused-over-connections'
  | 'refused-over-rate'
  | 'refused-table-full';

/** How a connection ended: the splice's reasons, plus the ways it can end before it is spliced. */
export type EndReason =
  | SpliceEnd
  | 'connect-timeout' // the last backend tried did not answer within timeouts.connect
  | 'connect-failed' // the last backend tried refused or failed (ECONNREFUSED, …)
  | 'no-backend' // the strategy offered no backend (none configured, none eligible)
  | 'refused-queue-full' // service at maxConnections and its wait queue full
  | 'refused-queue-timeout' // waited timeouts.queue without a free slot
  | 'client-aborted' // the client went away while queued or while the backend was connecting
  | 'proxy-header-invalid' // a trusted peer's PROXY header was malformed, too long or cut short
  | 'proxy-header-timeout' // a trusted peer sent no complete PROXY header within timeouts.proxyHeader
  | SourceRefusal; // refused at accept by allow/deny or limits (summarised, not logged one by one)

/** Human words for each reason, for the demo and docs; the log carries the code. */
export const END_REASON_TEXT: Readonly<Record<EndReason, string>> = {
  'client-close': 'closed by client',
  'backend-close': 'closed by backend',
  'client-reset': 'reset by client',
  'backend-reset': 'reset by backend',
  'idle-timeout': 'idle timeout',
  'backend-down': 'closed: backend went down (onDown: close)',
  shutdown: 'closed by balancer shutdown',
  'connect-timeout': 'connect timeout',
  'connect-failed': 'connect failed',
  'no-backend': 'no backend',
  'refused-queue-full': 'refused (queue full)',
  'refused-queue-timeout': 'refused (queue timeout)',
  'client-aborted': 'client left before the backend connected',
  'proxy-header-invalid': 'invalid PROXY header',
  'proxy-header-timeout': 'no PROXY header in time',
  'proxy-header-not-allowed': 'PROXY header from an untrusted peer',
  'refused-denied': 'refused (source in deny)',
  'refused-not-allowed': 'refused (source not in allow)',
  'refused-bad-address': 'refused (source address unreadable)',
  'refused-over-connections': 'refused (perSourceConnections)',
  'refused-over-rate': 'refused (perSourceRate)',
  'refused-table-full': 'refused (source table full)',
};

/** One line of the access log (the JSON fields next to pino's level, time and msg). */
export interface AccessRecord {
  /** Client address:port as seen by the listener ([v6]:port for IPv6), or as a trusted PROXY header named it. */
  client: string;
  /** The TCP peer (the proxy in front), only when a PROXY header named another client. */
  peer?: string;
  /** Backend name, or null when none was connected. */
  backend: string | null;
  /** The backend's address:port, or null. */
  backendAddress: string | null;
  /** Time spent waiting in the service queue, ms. */
  queueMs: number;
  /** From the first connect attempt to the backend's connect, ms (the successful try only: -1 if none). */
  connectMs: number;
  /** From accept to close, ms. */
  durationMs: number;
  bytesUp: number;
  bytesDown: number;
  /** Connect attempts that failed before the last one. */
  retries: number;
  end: EndReason;
  /** The socket error code, when one ended the connection. */
  error?: string;
}

/** `host:port`, bracketing IPv6 hosts. */
export function formatAddress(host: string | undefined, port: number | undefined): string {
  const shown = host ?? '?';
  return `${shown.includes(':') ? `[${shown}]` : shown}:${port ?? '?'}`;
}

/** Milliseconds rounded to 0.1 ms, the precision that means something for loopback timings. */
export function roundMs(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** The message of every access-log line, so readers can filter on it. */
export const ACCESS_MESSAGE = 'connection';

/** Access lines are written once at least this many bytes wait (about 12 lines)... */
const ACCESS_BATCH_BYTES = 3072;
/**
 * ...and each write(2) carries whole lines and at most PIPE_BUF (4 KiB) bytes, so the lines of
 * several processes sharing stdout (workers: N) cannot interleave, on a pipe as in a file.
 */
const PIPE_BUF = 4096;
/** ...or after this long, whichever comes first. */
const ACCESS_FLUSH_MS = 1000;

/**
 * The process logger: JSON lines to `destination`, or to stdout. On stdout, access lines are
 * batched (one write of 3–4 KiB instead of one write, one thread-pool hop and one wake-up per
 * connection, as profiled in docs/performance.md), flushed at least every second and when the
 * process exits (pino flushes its destination on exit); every other line (listening, reloads,
 * health changes) is written at once, so whoever waits for it sees it without delay.
 */
export function createLogger(destination?: DestinationStream): Logger {
  if (destination !== undefined) return pino({ base: null }, destination);
  const stdout = pino.destination({ dest: 1, sync: false, minLength: ACCESS_BATCH_BYTES, maxWrite: PIPE_BUF });
  let open = true;
  stdout.once('close', () => {
    open = false;
  });
  const flush = (): void => {
    if (open) stdout.flush();
  };
  setInterval(flush, ACCESS_FLUSH_MS).unref();
  return pino(
    {
      base: null,
      hooks: {
        logMethod(args, method) {
          method.apply(this, args);
          if (args[1] !== ACCESS_MESSAGE) flush();
        },
      },
    },
    stdout,
  );
}

export function logAccess(logger: Logger, record: AccessRecord): void {
  logger.info(record, ACCESS_MESSAGE);
}
