/**
 * The access log: one pino JSON line per connection, written when it closes, with what HAProxy's
 * `option tcplog` carries (service, client, backend, timers, bytes, retries, termination state).
 * The logger and each service's child are made once; nothing is logged while bytes flow.
 *
 * A connection that failed on l4lb's or the backend's side (no backend, connect failed or timed
 * out, queue full, backend reset, bad PROXY header) is logged at warn, the rest at info, so
 * `level >= 40` finds the failures (HAProxy's `option log-separate-errors`).
 *
 * For operators: `log.timestamp: iso` writes `time` as ISO 8601 (UTC) instead of epoch ms, and
 * `accessLog.path` sends the access lines to a file of their own (every other line stays on
 * stdout), reopened on SIGUSR1 after logrotate moved it (nginx's `kill -USR1`).
 */
import pino, { type DestinationStream, type Level, type Logger } from 'pino';
import type { SonicBoom } from 'sonic-boom';
import type { Config } from '../config/index.js';
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
  | 'local-error' // the backend connect failed on l4lb's own side (EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL); not the backend's fault
  | 'no-backend' // the strategy offered no backend (none configured, none eligible)
  | 'refused-queue-full' // service at maxConnections and its wait queue full
  | 'refused-queue-timeout' // waited timeouts.queue without a free slot
  | 'client-aborted' // the client went away while queued or while the backend was connecting
  | 'proxy-header-invalid' // a trusted peer's PROXY header was malformed, too long or cut short
  | 'proxy-header-timeout' // a trusted peer sent no complete PROXY header within timeouts.proxyHeader
  | 'sni-refused' // a passthrough listener had no route for the first flight (no name matched, or not TLS, and no default): reset
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
  'local-error': "connect failed on l4lb's side (out of descriptors, buffers, memory or local ports)",
  'no-backend': 'no backend',
  'refused-queue-full': 'refused (queue full)',
  'refused-queue-timeout': 'refused (queue timeout)',
  'client-aborted': 'client left before the backend connected',
  'proxy-header-invalid': 'invalid PROXY header',
  'proxy-header-timeout': 'no PROXY header in time',
  'proxy-header-not-allowed': 'PROXY header from an untrusted peer',
  'sni-refused': 'refused (no route for its server name or first bytes)',
  'refused-denied': 'refused (source in deny)',
  'refused-not-allowed': 'refused (source not in allow)',
  'refused-bad-address': 'refused (source address unreadable)',
  'refused-over-connections': 'refused (perSourceConnections)',
  'refused-over-rate': 'refused (perSourceRate)',
  'refused-table-full': 'refused (source table full)',
};

/** The level of a connection's access line: warn when it failed on l4lb's or the backend's side. */
const END_REASON_LEVEL: Readonly<Record<EndReason, Extract<Level, 'info' | 'warn'>>> = {
  'client-close': 'info',
  'backend-close': 'info',
  'client-reset': 'info',
  'backend-reset': 'warn',
  'idle-timeout': 'info',
  'backend-down': 'warn',
  shutdown: 'info',
  'connect-timeout': 'warn',
  'connect-failed': 'warn',
  'local-error': 'warn',
  'no-backend': 'warn',
  'refused-queue-full': 'warn',
  'refused-queue-timeout': 'warn',
  'client-aborted': 'info',
  'proxy-header-invalid': 'warn',
  'proxy-header-timeout': 'warn',
  'proxy-header-not-allowed': 'warn',
  'sni-refused': 'warn',
  'refused-denied': 'warn',
  'refused-not-allowed': 'warn',
  'refused-bad-address': 'warn',
  'refused-over-connections': 'warn',
  'refused-over-rate': 'warn',
  'refused-table-full': 'warn',
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
  /** A passthrough listener's connections: the listener's socket name, what its inspection found, the server name. */
  listener?: string;
  inspect?: string;
  sni?: string;
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

/** How the process logs (the configuration's `log` and `accessLog`; read at start). */
export interface LogOptions {
  /** `time` as epoch milliseconds (pino's default) or an ISO 8601 UTC string. */
  readonly timestamp?: 'epoch' | 'iso';
  /** The least level written (pino's default: info). */
  readonly level?: 'debug' | 'info' | 'warn' | 'error';
  /** Access lines go to this file (appended, made if missing) instead of stdout. */
  readonly accessLog?: string;
}

/** The log options a configuration asks for. */
export function logOptions(config: Config): LogOptions {
  return {
    ...(config.log?.timestamp === undefined ? {} : { timestamp: config.log.timestamp }),
    ...(config.log?.level === undefined ? {} : { level: config.log.level }),
    ...(config.accessLog === undefined ? {} : { accessLog: config.accessLog.path }),
  };
}

/** Files this process's loggers opened, for reopenLogFiles(). */
const openFiles = new Set<SonicBoom>();

/**
 * Reopens every log file this process opened (the access log), at the same path: after logrotate
 * renamed it, new lines go to a new file. What was buffered is written to the old one first.
 */
export function reopenLogFiles(): void {
  for (const file of openFiles) {
    file.flush(); // starts writing the buffer; reopen() then waits for that write to end
    file.reopen();
  }
}

/** A batched SonicBoom (see createLogger), and its flush that is a no-op once it closed. */
function batched(dest: number | string): { stream: SonicBoom; flush(callback?: (error?: Error) => void): void } {
  const stream = pino.destination({ dest, sync: false, append: true, mkdir: true, minLength: ACCESS_BATCH_BYTES, maxWrite: PIPE_BUF });
  let open = true;
  stream.once('close', () => {
    open = false;
    openFiles.delete(stream);
  });
  const flush = (callback?: (error?: Error) => void): void => {
    if (open) stream.flush(callback);
    else callback?.();
  };
  setInterval(flush, ACCESS_FLUSH_MS).unref();
  return { stream, flush };
}

/**
 * The process logger: JSON lines to `destination`, or to stdout. On stdout, access lines are
 * batched (one write of 3–4 KiB instead of one write, one thread-pool hop and one wake-up per
 * connection, as profiled in docs/performance.md), flushed at least every second and when the
 * process exits (pino flushes its destination on exit); every other line (listening, reloads,
 * health changes) is written at once, so whoever waits for it sees it without delay. With
 * `accessLog`, access lines go, batched the same way, to that file instead.
 */
export function createLogger(destination?: DestinationStream, options: LogOptions = {}): Logger {
  const time = options.timestamp === 'iso' ? { timestamp: pino.stdTimeFunctions.isoTime } : {};
  const accessFile = options.accessLog === undefined ? undefined : batched(options.accessLog);
  if (accessFile !== undefined) openFiles.add(accessFile.stream);
  const stdout = destination === undefined ? batched(1) : undefined;
  const main: DestinationStream = destination ?? stdout!.stream;
  const flushMain = (callback?: (error?: Error) => void): void => {
    if (stdout !== undefined) stdout.flush(callback);
    else callback?.();
  };
  // Which stream the line being written goes to: set around each call, read by write() (pino
  // writes the line synchronously, inside the call).
  let access = false;
  const stream: DestinationStream & { flush?: (callback?: (error?: Error) => void) => void } =
    accessFile === undefined
      ? main
      : {
          write: (line: string) => (access ? accessFile.stream : main).write(line),
          flush: (callback) => {
            let left = 2;
            const done = (): void => {
              if (--left === 0) callback?.();
            };
            accessFile.flush(done);
            flushMain(done);
          },
        };
  return pino(
    {
      base: null,
      ...time,
      ...(options.level === undefined ? {} : { level: options.level }),
      hooks: {
        logMethod(args, method) {
          const isAccess = args[1] === ACCESS_MESSAGE;
          if (!isAccess || accessFile === undefined) {
            method.apply(this, args);
            if (!isAccess) flushMain();
            return;
          }
          // An access line, and a file takes them: tell the stream where it goes.
          access = true;
          try {
            method.apply(this, args);
          } finally {
            access = false;
          }
        },
      },
    },
    stream,
  );
}

export function logAccess(logger: Logger, record: AccessRecord): void {
  logger[END_REASON_LEVEL[record.end]](record, ACCESS_MESSAGE);
}
