/**
 * `pgsql`: send a StartupMessage (protocol 3.0) and judge the first message of the reply, as
 * HAProxy's `option pgsql-check user <name>` does (src/tcpcheck.c, reg-tests/checks/pgsql-check.vtc):
 *
 * - an authentication request ('R': Ok, cleartext, MD5, SASL/SCRAM, GSS, SSPI...) passes: the
 *   postmaster accepted the connection, forked a backend and is asking us to log in, so it is
 *   serving clients. We never log in; closing here is the same silent EOF a psql password
 *   prompt produces;
 * - an ErrorResponse ('E') fails with the server's message. HAProxy does the same (`!rstring ^E`,
 *   "Layer7 invalid response"): at this stage PostgreSQL sends one only when it cannot serve this
 *   client at all: "the database system is starting up" (57P03), "too many clients already"
 *   (53300), "no pg_hba.conf entry" (28000), shutting down (57P01);
 * - anything else (another type byte, a length that does not frame, an unknown authentication
 *   code) fails as invalid: something that is not PostgreSQL answered.
 *
 * Wire format: PostgreSQL documentation, "Frontend/Backend Protocol", §55.2.1 (start-up) and
 * §55.7 (message formats): Byte1 type, Int32 length counting itself, then the body.
 */
import { CheckOptionError } from '../errors.js';
import { hexPreview, printable, runProbe, type ProbeProtocol, type Verdict } from './probe.js';
import type { HealthChecker } from './types.js';

export const DEFAULT_PGSQL_USER = 'l4lb';

/** An ErrorResponse longer than this is not a start-up error; SASL mechanism lists are tiny. */
export const PGSQL_MAX_REPLY_BYTES = 8192;

const PROTOCOL_3_0 = 196608; // 3 << 16
/** NAMEDATALEN - 1: PostgreSQL truncates longer role and database names. */
const MAX_NAME_BYTES = 63;

export interface PgsqlCheckOptions {
  /** Role named in the StartupMessage; it need not exist or be able to log in. Default `l4lb`. */
  readonly user?: string;
  /** Database named in the StartupMessage; omitted by default (the server then uses the user). */
  readonly database?: string;
}

const AUTH_NAMES: ReadonlyMap<number, string> = new Map([
  [0, 'ok (trust)'],
  [2, 'KerberosV5'],
  [3, 'cleartext password'],
  [5, 'MD5 password'],
  [6, 'SCM credential'],
  [7, 'GSSAPI'],
  [9, 'SSPI'],
  [10, 'SASL'],
]);

function checkName(option: 'user' | 'database', value: string): Uint8Array {
  const bytes = new TextEncoder().encode(value);
  if (bytes.length === 0 || bytes.length > MAX_NAME_BYTES || bytes.includes(0)) {
    throw new CheckOptionError({ option, detail: `must be 1..${MAX_NAME_BYTES} bytes without NUL, got ${JSON.stringify(value)}` });
  }
  return bytes;
}

/** The StartupMessage bytes for `options`. Throws CheckOptionError naming a bad user or database name. */
export function pgsqlStartupMessage(options: PgsqlCheckOptions = {}): Uint8Array {
  const pairs: [string, Uint8Array][] = [['user', checkName('user', options.user ?? DEFAULT_PGSQL_USER)]];
  if (options.database !== undefined) pairs.push(['database', checkName('database', options.database)]);
  const encoder = new TextEncoder();
  const parts = pairs.flatMap(([key, value]) => [encoder.encode(key), new Uint8Array(1), value, new Uint8Array(1)]);
  const bodyLength = parts.reduce((sum, part) => sum + part.length, 0) + 1;
  const message = Buffer.alloc(8 + bodyLength);
  message.writeUInt32BE(message.length, 0);
  message.writeUInt32BE(PROTOCOL_3_0, 4);
  let offset = 8;
  for (const part of parts) {
    message.set(part, offset);
    offset += part.length;
  }
  return message; // the final byte is the terminating NUL from Buffer.alloc
}

/** Reads the ErrorResponse fields (type byte + C string, until a 0 type byte); undefined if malformed. */
export function parseErrorFields(body: Uint8Array): Map<string, string> | undefined {
  const fields = new Map<string, string>();
  let i = 0;
  for (;;) {
    const type = body[i];
    if (type === undefined) return undefined; // ran off the end before the terminating 0 type
    if (type === 0) return i === body.length - 1 ? fields : undefined;
    const end = body.indexOf(0, i + 1);
    if (end === -1) return undefined;
    fields.set(String.fromCharCode(type), printable(body.subarray(i + 1, end), 300));
    i = end + 1;
  }
}

/** Terminate ('X'), sent after a pass so a trust-authenticated session ends cleanly. */
const TERMINATE = new Uint8Array([0x58, 0, 0, 0, 4]);

function decodeAuthentication(body: Uint8Array): Verdict {
  if (body.length < 4) return { ok: false, kind: 'invalid', reason: 'authentication request shorter than its code' };
  const code = Buffer.from(body.buffer, body.byteOffset, body.length).readInt32BE(0);
  const name = AUTH_NAMES.get(code);
  if (name === undefined) return { ok: false, kind: 'invalid', reason: `unexpected authentication request code ${code}` };
  const extra = body.length - 4;
  if (code === 5) {
    if (extra !== 4) return { ok: false, kind: 'invalid', reason: `MD5 authentication request with ${extra} salt bytes` };
  } else if (code === 10) {
    // SASL: NUL-terminated mechanism names, then one more NUL.
    const list = body.subarray(4);
    if (list.length < 2 || list[list.length - 1] !== 0 || list[list.length - 2] !== 0 || list[0] === 0) {
      return { ok: false, kind: 'invalid', reason: 'malformed SASL mechanism list' };
    }
    const mechanisms = printable(list.subarray(0, list.length - 2), 100).replaceAll('?', ',');
    return { ok: true, detail: `authentication request: SASL (${mechanisms})` };
  } else if (extra !== 0) {
    return { ok: false, kind: 'invalid', reason: `authentication request ${code} with ${extra} unexpected bytes` };
  }
  // After AuthenticationOk (trust) the session is open: end it with Terminate. After a password
  // request we just close: PostgreSQL treats that EOF silently, but logs any other message.
  return code === 0 ? { ok: true, detail: `authentication request: ${name}`, farewell: TERMINATE } : { ok: true, detail: `authentication request: ${name}` };
}

/** The verdict on the reply to a StartupMessage so far (pure). */
export function decodePgsqlStartupReply(reply: Uint8Array, ended: boolean): Verdict | undefined {
  if (reply.length > 0 && reply[0] !== 0x52 /* R */ && reply[0] !== 0x45 /* E */) {
    return { ok: false, kind: 'invalid', reason: `not a PostgreSQL reply: first bytes ${hexPreview(reply)}` };
  }
  if (reply.length < 5) {
    return ended ? { ok: false, kind: 'closed', reason: `connection closed after ${reply.length} bytes of a reply` } : undefined;
  }
  const length = Buffer.from(reply.buffer, reply.byteOffset, reply.length).readUInt32BE(1);
  if (length < 4 || length + 1 > PGSQL_MAX_REPLY_BYTES) {
    return { ok: false, kind: 'invalid', reason: `not a PostgreSQL reply: message length ${length}` };
  }
  if (reply.length < length + 1) {
    return ended ? { ok: false, kind: 'closed', reason: `connection closed after ${reply.length} of ${length + 1} bytes` } : undefined;
  }
  const body = reply.subarray(5, length + 1);
  if (reply[0] === 0x52) return decodeAuthentication(body);
  const fields = parseErrorFields(body);
  if (fields === undefined) return { ok: false, kind: 'invalid', reason: 'malformed ErrorResponse' };
  const severity = fields.get('V') ?? fields.get('S') ?? 'ERROR';
  const sqlstate = fields.get('C');
  const message = fields.get('M') ?? 'no message';
  return { ok: false, kind: 'status', reason: `${severity}${sqlstate ? ` ${sqlstate}` : ''}: ${message}` };
}

/** Builds the checker; throws CheckOptionError naming a bad user or database name (a configuration error). */
export function createPgsqlChecker(options: PgsqlCheckOptions = {}): HealthChecker {
  const protocol: ProbeProtocol = {
    request: pgsqlStartupMessage(options),
    maxReplyBytes: PGSQL_MAX_REPLY_BYTES,
    decode: decodePgsqlStartupReply,
  };
  return {
    type: 'pgsql',
    check: (target, timeoutMs, signal) => runProbe(target, timeoutMs, signal, protocol),
  };
}
