/**
 * `redis`: PING in the RESP array form, pass on exactly `+PONG\r\n` (HAProxy's `option
 * redis-check`, which sends `*1\r\n$4\r\nPING\r\n` and expects `+PONG`). An error reply such as
 * `-LOADING ...` or `-NOAUTH ...` fails with the server's own message. Spec: the Redis
 * serialization protocol (RESP2), simple strings and errors.
 */
import { printable, runProbe, type ProbeProtocol, type Verdict } from './probe.js';
import type { HealthChecker } from './types.js';

const PING = new TextEncoder().encode('*1\r\n$4\r\nPING\r\n');
const CR = 0x0d;
const LF = 0x0a;
const PLUS = 0x2b;
const MINUS = 0x2d;

/** Simple strings and errors are one line; Redis's longest error texts are well under this. */
export const REDIS_MAX_REPLY_BYTES = 1024;

/** The verdict on a PING reply so far (pure). */
export function decodeRedisPong(reply: Uint8Array, ended: boolean): Verdict | undefined {
  if (reply.length > 0 && reply[0] !== PLUS && reply[0] !== MINUS) {
    return { ok: false, kind: 'invalid', reason: `not a Redis reply: "${printable(reply, 40)}"` };
  }
  const cr = reply.indexOf(CR);
  if (cr === -1 || cr + 1 >= reply.length) {
    return ended ? { ok: false, kind: 'closed', reason: `connection closed after ${reply.length} bytes of a reply line` } : undefined;
  }
  if (reply[cr + 1] !== LF) return { ok: false, kind: 'invalid', reason: 'reply line not ended by CRLF' };
  const line = reply.subarray(1, cr);
  if (reply[0] === MINUS) return { ok: false, kind: 'status', reason: printable(line) };
  if (line.length === 4 && printable(line) === 'PONG') return { ok: true, detail: 'PONG' };
  return { ok: false, kind: 'invalid', reason: `expected +PONG, got "+${printable(line, 60)}"` };
}

export const REDIS_PROTOCOL: ProbeProtocol = {
  request: PING,
  maxReplyBytes: REDIS_MAX_REPLY_BYTES,
  decode: decodeRedisPong,
};

export function createRedisChecker(): HealthChecker {
  return {
    type: 'redis',
    check: (target, timeoutMs, signal) => runProbe(target, timeoutMs, signal, REDIS_PROTOCOL),
  };
}
