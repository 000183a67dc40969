/**
 * The PROXY protocol on the proxy's sockets (HAProxy doc/proxy-protocol.txt; the codec is
 * src/proxy-protocol/):
 *
 * - `readProxyHeader`: a trusted peer's header, read from the paused client socket with one timer
 *   (`timeouts.proxyHeader`, on the service's clock), as HAProxy's `accept-proxy`: the header is required, any fault
 *   closes the connection. Nothing past the header is consumed: the bytes after it in the same
 *   chunk are put back on the socket (`unshift`) and the socket is paused again, so the splice
 *   forwards them first, intact.
 * - `headerScreen`: for peers outside `accept`, the first client bytes are compared with the two
 *   signatures (§2.1 "PROXY ", §2.2 the 12-byte v2 signature) as the splice forwards them; a
 *   header from an untrusted peer ends the connection before any of it reaches the backend.
 *   Only a proper prefix of a signature (at most 11 bytes) is ever held back.
 * - `writeProxyHeader`: `send` — the header goes out as the first bytes of the backend connection,
 *   corked with whatever the client has already sent so both leave in one write.
 */
import type { Socket } from 'node:net';
import type { Clock } from '../clock.js';
import { ProxyHeaderParser, encodeForConnection, proxiedEndpoints, type ConnectionEndpoints, type ProxyVersionName } from '../proxy-protocol/index.js';
import type { ClientScreen } from './splice.js';

/** Why reading a header failed (the access log's `end`). */
export type HeaderFailure = 'proxy-header-invalid' | 'proxy-header-timeout';

export type HeaderOutcome =
  /** `endpoints` undefined: a LOCAL/UNKNOWN header (spec §2.1, §2.2): the socket's own ends apply. */
  | { readonly status: 'done'; readonly endpoints: ConnectionEndpoints | undefined }
  | { readonly status: 'failed'; readonly failure: HeaderFailure; readonly detail: string };

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/**
 * Pre: `socket` is paused, nothing read from it yet, no other 'data' listener. Post: `done` is
 * called once with the outcome, unless the socket closes first (its owner handles that). After
 * `done`, the socket is paused with no listener of ours left and no timer running; on success the
 * client's bytes after the header are the first ones it will emit. Memory: the parser holds at
 * most 107 bytes (v1) or 16 + 2048 (v2). The timeout runs on `clock`. Returns a function that
 * cancels the read.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number, done: (outcome: HeaderOutcome) => void, clock: Clock): () => void {
  const parser = new ProxyHeaderParser();
  let received = 0;
  const stop = (): void => {
    clock.clearTimer(timer);
    socket.removeListener('data', onData);
    socket.removeListener('end', onEnd);
    socket.removeListener('close', stop);
    socket.pause();
  };
  const fail = (failure: HeaderFailure, detail: string): void => {
    stop();
    done({ status: 'failed', failure, detail });
  };
  const onData = (chunk: Buffer): void => {
    received += chunk.length;
    const result = parser.push(chunk);
    switch (result.status) {
      case 'need-more':
        return;
      case 'error':
        fail('proxy-header-invalid', result.error.message);
        return;
      case 'done':
        stop();
        if (result.rest.length > 0) socket.unshift(toBuffer(result.rest));
        done({ status: 'done', endpoints: proxiedEndpoints(result.header) });
        return;
      default: {
        const never: never = result;
        throw new Error(`unexpected parser status ${String(never)}`);
      }
    }
  };
  const onEnd = (): void => {
    fail('proxy-header-invalid', `truncated: the peer closed after ${received} bytes of the PROXY header`);
  };
  const onTimeout = (): void => {
    fail('proxy-header-timeout', `no complete PROXY header within ${timeoutMs} ms (${received} bytes received)`);
  };
  const timer = clock.setTimeout(onTimeout, timeoutMs);
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('close', stop);
  socket.resume();
  return stop;
}

const V1_SIGNATURE = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** 'full': `data` starts with `signature`; 'prefix': `data` is a proper prefix of it; else 'no'. */
function against(data: Buffer, signature: Buffer): 'full' | 'prefix' | 'no' {
  const n = Math.min(data.length, signature.length);
  if (data.compare(signature, 0, n, 0, n) !== 0) return 'no';
  return n === signature.length ? 'full' : 'prefix';
}

/** A screen for one connection from a peer outside `accept` (see the file header). */
export function headerScreen(): ClientScreen {
  let held: Buffer | undefined;
  return {
    push(chunk: Buffer): Buffer | 'hold' | 'refuse' {
      const data = held === undefined ? chunk : Buffer.concat([held, chunk]);
      const v1 = against(data, V1_SIGNATURE);
      const v2 = against(data, V2_SIGNATURE);
      if (v1 === 'full' || v2 === 'full') return 'refuse';
      if (v1 === 'prefix' || v2 === 'prefix') {
        held = data;
        return 'hold';
      }
      held = undefined;
      return data;
    },
    flush(): Buffer | undefined {
      const rest = held;
      held = undefined;
      return rest;
    },
  };
}

/**
 * Pre: `backend` just connected, nothing written to it. Post: the header for `endpoints` is queued
 * as its first bytes; the socket stays corked until the next tick, so the client bytes the splice
 * forwards on its first turn go out in the same write.
 */
export function writeProxyHeader(backend: Socket, version: ProxyVersionName, endpoints: ConnectionEndpoints | undefined): void {
  backend.cork();
  backend.write(encodeForConnection(version, endpoints));
  process.nextTick(uncork, backend);
}

function uncork(socket: Socket): void {
  if (!socket.destroyed) socket.uncork();
}
