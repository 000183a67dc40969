/**
 * The one I/O step every checker shares: connect, send a request, feed the reply bytes to a pure
 * decoder until it gives a verdict, and tear everything down. HAProxy's tcpcheck engine in
 * miniature (connect / send / expect with min-recv), with the same guarantees as its check task:
 * one deadline per probe, a bounded receive buffer, and nothing left behind.
 */
import { isLocalError } from '../errors.js';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { CheckResult, FailureKind, HealthTarget } from './types.js';

/** What a decoder concludes from the bytes it has seen. */
export type Verdict =
  | { readonly ok: true; readonly detail: string; readonly farewell?: Uint8Array }
  | { readonly ok: false; readonly kind: Exclude<FailureKind, 'connect' | 'timeout' | 'aborted'>; readonly reason: string };

/** A protocol's half of a probe: pure, no I/O, testable on byte arrays. */
export interface ProbeProtocol {
  /** Sent once the connection is up; undefined sends nothing (wait for a server greeting). */
  readonly request: Uint8Array | undefined;
  /** The receive bound: a reply that needs more than this many bytes is `invalid`. */
  readonly maxReplyBytes: number;
  /**
   * A verdict on `reply` (every byte received so far, at most `maxReplyBytes`), or undefined to
   * wait for more. `ended` is true once the server has closed its side or reset: then the decoder
   * must decide (an incomplete reply is `closed`). Must not throw.
   */
  decode(reply: Uint8Array, ended: boolean): Verdict | undefined;
}

function failure(started: number, kind: FailureKind, reason: string): CheckResult {
  return { ok: false, durationMs: performance.now() - started, kind, reason };
}

/** An error message for a socket error, with its code first (stable) when there is one. */
function describeSocketError(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code === undefined ? error.message : `${code}: ${error.message}`;
}

/** Checks the target before any socket exists; returns a reason when it is unusable. */
function badTarget(target: HealthTarget, timeoutMs: number): string | undefined {
  if (typeof target?.host !== 'string' || target.host.length === 0) return 'invalid target: empty host';
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
    return `invalid target ${target.host}: port ${String(target.port)} is not 1..65535`;
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) return `invalid timeout ${String(timeoutMs)} ms`;
  return undefined;
}

/**
 * Runs one probe. Never rejects. Postcondition: when the promise settles, the timer is cleared,
 * the abort listener removed and the socket closed (its 'close' event has fired), so a caller
 * that awaits a probe holds no resources of it. Memory: one buffer of `maxReplyBytes`, allocated
 * on the first byte received. `protocol` undefined means a plain TCP connect check.
 */
export function runProbe(
  target: HealthTarget,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  protocol: ProbeProtocol | undefined,
): Promise<CheckResult> {
  const started = performance.now();
  const invalid = badTarget(target, timeoutMs);
  if (invalid !== undefined) return Promise.resolve(failure(started, 'connect', invalid));
  if (signal?.aborted) return Promise.resolve(failure(started, 'aborted', 'aborted before connecting'));

  return new Promise<CheckResult>((resolve) => {
    let verdict: CheckResult | undefined;
    let connected = false;
    let received = 0;
    let buffer: Buffer | undefined;
    let closed = false;

    let socket: net.Socket;
    try {
      socket = net.connect({ host: target.host, port: target.port, noDelay: true });
    } catch (error) {
      // Options Node refuses synchronously: still a failed probe, never a rejection.
      resolve(failure(started, 'connect', describeSocketError(error as Error)));
      return;
    }

    const finish = (result: CheckResult, farewell?: Uint8Array): void => {
      if (verdict !== undefined) return;
      verdict = result;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (farewell !== undefined && !socket.destroyed) {
        // A polite goodbye (best effort), then close at once: the bytes go out before the FIN.
        socket.end(farewell);
      }
      socket.destroy();
      if (closed) resolve(result);
    };

    const onAbort = (): void => finish(failure(started, 'aborted', 'aborted'));

    const timer = setTimeout(() => {
      const phase = connected ? `waiting for the reply (${received} bytes received)` : 'connecting';
      finish(failure(started, 'timeout', `timeout after ${timeoutMs} ms ${phase}`));
    }, timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });

    /** Asks the decoder; finishes on a verdict. Returns whether a verdict now exists. */
    const decide = (ended: boolean): boolean => {
      if (verdict !== undefined) return true;
      if (protocol === undefined) return false;
      let answer: Verdict | undefined;
      try {
        answer = protocol.decode(buffer === undefined ? new Uint8Array(0) : buffer.subarray(0, received), ended);
      } catch (error) {
        // A decoder must not throw; if one does, the probe fails instead of the process.
        answer = { ok: false, kind: 'invalid', reason: `decoder error: ${error instanceof Error ? error.message : String(error)}` };
      }
      if (answer === undefined) return false;
      const durationMs = performance.now() - started;
      if (answer.ok) finish({ ok: true, durationMs, detail: answer.detail }, answer.farewell);
      else finish({ ok: false, durationMs, kind: answer.kind, reason: answer.reason });
      return true;
    };

    socket.on('connect', () => {
      connected = true;
      if (protocol === undefined) {
        finish({ ok: true, durationMs: performance.now() - started, detail: 'connected' });
        return;
      }
      if (protocol.request !== undefined) socket.write(protocol.request);
    });

    socket.on('data', (chunk: Buffer) => {
      if (verdict !== undefined || protocol === undefined) return;
      const limit = protocol.maxReplyBytes;
      buffer ??= Buffer.allocUnsafe(limit);
      const room = limit - received;
      const take = Math.min(room, chunk.length);
      chunk.copy(buffer, received, 0, take);
      received += take;
      if (take < chunk.length || received === limit) {
        // The bound is reached: if what fits is not a complete answer, the reply is too long to be
        // the protocol (a server streaming forever ends here).
        if (!decide(false)) finish(failure(started, 'invalid', `no complete reply within ${limit} bytes`));
        return;
      }
      decide(false);
    });

    socket.on('end', () => {
      if (verdict !== undefined || protocol === undefined) return;
      if (!decide(true)) finish(failure(started, 'closed', `connection closed after ${received} bytes`));
    });

    socket.on('error', (error: Error) => {
      if (verdict !== undefined) return;
      if (!connected) {
        // l4lb's own shortage (EMFILE, …) says nothing about the server: not a failed check.
        const local = isLocalError((error as NodeJS.ErrnoException).code);
        finish(failure(started, local ? 'aborted' : 'connect', `${local ? "local error on l4lb's side: " : ''}${describeSocketError(error)}`));
      } else {
        // A reset after some bytes: let the decoder judge what arrived, as if the server closed.
        if (!decide(true)) finish(failure(started, 'closed', `connection error after ${received} bytes: ${describeSocketError(error)}`));
      }
    });

    socket.on('close', () => {
      closed = true;
      if (verdict === undefined) {
        // Closed without 'end' or 'error' reaching a verdict (e.g. a half-open edge): decide now.
        finish(failure(started, connected ? 'closed' : 'connect', connected ? `connection closed after ${received} bytes` : 'connection closed before connecting'));
      }
      if (verdict !== undefined) resolve(verdict);
    });
  });
}

/** Up to `max` characters of `bytes` as printable ASCII (others as '?'), for failure reasons. */
export function printable(bytes: Uint8Array, max = 200): string {
  let text = '';
  for (const c of bytes.subarray(0, max)) text += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '?';
  return bytes.length > max ? `${text}...` : text;
}

/** The first bytes of `bytes` in hex, for "this is not the protocol" reasons. */
export function hexPreview(bytes: Uint8Array, max = 16): string {
  return Buffer.from(bytes.subarray(0, max)).toString('hex') + (bytes.length > max ? '...' : '');
}
