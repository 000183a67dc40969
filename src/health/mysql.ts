/**
 * `mysql`: read the server's greeting and pass on a well-formed protocol-10 handshake, fail with
 * the server's message on an error packet (0xff: "Too many connections", "Host ... is not allowed
 * to connect"). HAProxy's `option mysql-check` without `user` does the same (src/tcpcheck.c,
 * `tcpcheck_mysql_expect_iniths`); we are stricter about the greeting's layout.
 *
 * Wire format: MySQL client/server protocol, "Protocol::Packet" (3-byte little-endian payload
 * length, 1-byte sequence id) and "Protocol::HandshakeV10" (protocol version 10, NUL-terminated
 * server version, 4-byte connection id, 8 bytes of auth-plugin data, a 0x00 filler, 2 bytes of
 * capability flags, then optional fields we do not need).
 *
 * Like HAProxy's check without a user, this closes the connection during the handshake, which
 * the server counts as an aborted connect; see docs/health.md about `max_connect_errors`.
 */
import { hexPreview, printable, runProbe, type ProbeProtocol, type Verdict } from './probe.js';
import type { HealthChecker } from './types.js';

/** Greetings are ~80-120 bytes; error packets carry one short message. */
export const MYSQL_MAX_PACKET_BYTES = 1024;

/** Version, NUL, connection id, 8 scramble bytes, filler, 2 capability bytes. */
const MIN_GREETING_AFTER_VERSION = 1 + 4 + 8 + 1 + 2;

function decodeError(payload: Uint8Array): Verdict {
  const codeLow = payload[1];
  const codeHigh = payload[2];
  if (codeLow === undefined || codeHigh === undefined) return { ok: false, kind: 'invalid', reason: 'error packet shorter than its code' };
  const code = codeLow | (codeHigh << 8);
  // With CLIENT_PROTOCOL_41 a '#' and a 5-character SQL state follow; during the handshake the
  // server may not send them.
  const hasState = payload.length >= 9 && payload[3] === 0x23; /* '#' */
  const state = hasState ? ` (${printable(payload.subarray(4, 9))})` : '';
  const message = printable(payload.subarray(hasState ? 9 : 3), 300);
  return { ok: false, kind: 'status', reason: `error ${code}${state}: ${message}` };
}

function decodeGreeting(payload: Uint8Array): Verdict {
  const versionEnd = payload.indexOf(0, 1);
  if (versionEnd === -1) return { ok: false, kind: 'invalid', reason: 'greeting without a NUL-terminated server version' };
  const version = payload.subarray(1, versionEnd);
  for (const c of version) {
    if (c < 0x20 || c >= 0x7f) return { ok: false, kind: 'invalid', reason: `greeting with a non-printable server version ${hexPreview(version)}` };
  }
  const filler = payload[versionEnd + 1 + 4 + 8];
  if (filler === undefined || payload.length < versionEnd + MIN_GREETING_AFTER_VERSION) {
    return { ok: false, kind: 'invalid', reason: `greeting of ${payload.length} bytes is too short for HandshakeV10` };
  }
  if (filler !== 0) return { ok: false, kind: 'invalid', reason: `greeting filler byte is 0x${filler.toString(16)}, expected 0x00` };
  return { ok: true, detail: `MySQL protocol 10, server ${printable(version, 80)}` };
}

/** The verdict on the server's first packet so far (pure). */
export function decodeMysqlGreeting(reply: Uint8Array, ended: boolean): Verdict | undefined {
  // Packet header: 3-byte little-endian payload length, 1-byte sequence id.
  const length0 = reply[0];
  const length1 = reply[1];
  const length2 = reply[2];
  const sequence = reply[3];
  if (length0 === undefined || length1 === undefined || length2 === undefined || sequence === undefined) {
    return ended ? { ok: false, kind: 'closed', reason: `connection closed after ${reply.length} bytes of a packet header` } : undefined;
  }
  const length = length0 | (length1 << 8) | (length2 << 16);
  if (length === 0 || length + 4 > MYSQL_MAX_PACKET_BYTES) {
    return { ok: false, kind: 'invalid', reason: `not a MySQL greeting: packet length ${length} (first bytes ${hexPreview(reply)})` };
  }
  if (sequence !== 0) return { ok: false, kind: 'invalid', reason: `not a MySQL greeting: sequence id ${sequence}` };
  // The first payload byte decides early: garbage need not be waited for.
  const protocolVersion = reply[4];
  if (protocolVersion !== undefined && protocolVersion !== 0x0a && protocolVersion !== 0xff) {
    return { ok: false, kind: 'invalid', reason: `not a MySQL greeting: protocol version byte 0x${protocolVersion.toString(16)}` };
  }
  if (reply.length < length + 4) {
    return ended ? { ok: false, kind: 'closed', reason: `connection closed after ${reply.length} of ${length + 4} bytes` } : undefined;
  }
  const payload = reply.subarray(4, 4 + length);
  return payload[0] === 0xff ? decodeError(payload) : decodeGreeting(payload);
}

export const MYSQL_PROTOCOL: ProbeProtocol = {
  request: undefined,
  maxReplyBytes: MYSQL_MAX_PACKET_BYTES,
  decode: decodeMysqlGreeting,
};

export function createMysqlChecker(): HealthChecker {
  return {
    type: 'mysql',
    check: (target, timeoutMs, signal) => runProbe(target, timeoutMs, signal, MYSQL_PROTOCOL),
  };
}
