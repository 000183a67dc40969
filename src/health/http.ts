/**
 * `http`: `GET <path> HTTP/1.1` with `Host` and `Connection: close`, pass when the status code is
 * one of the expected ones (default 200). Only the status line is read (RFC 9112 §4:
 * `HTTP-version SP status-code SP [ reason-phrase ] CRLF`), strictly: version HTTP/1.0 or 1.1,
 * exactly three digits 100-599, CRLF line end. Interim 1xx responses (RFC 9110 §15.2) are skipped
 * to the final response; 101 is refused since we never ask to switch protocols.
 *
 * HAProxy's `option httpchk` accepts any 2xx or 3xx by default; we default to 200 alone, because
 * a health endpoint that redirects (to a login page, say) is rarely healthy. `expectStatus` takes
 * HAProxy-like ranges: 200, "2xx", "200-299", "2xx-3xx", or a list of these.
 */
import { CheckOptionError } from '../errors.js';
import { printable, runProbe, type ProbeProtocol, type Verdict } from './probe.js';
import type { HealthChecker, HealthTarget } from './types.js';

export type StatusSpec = number | string;
export type ExpectedStatus = StatusSpec | readonly StatusSpec[];

/** Inclusive ranges of accepted status codes. */
export type StatusRanges = readonly (readonly [number, number])[];

export const DEFAULT_HTTP_PATH = '/';
export const DEFAULT_EXPECTED_STATUS: ExpectedStatus = 200;

/** Room for a status line plus any interim (1xx) responses before it. */
export const HTTP_MAX_REPLY_BYTES = 8192;
const MAX_STATUS_LINE = 1024;

export interface HttpCheckOptions {
  /** Request target, origin-form: starts with '/', no spaces or control characters. Default '/'. */
  readonly path?: string;
  /** Host header value; default the target's host (IPv6 in brackets) and port unless 80. */
  readonly host?: string;
  readonly expectStatus?: ExpectedStatus;
}

function badStatus(spec: unknown): never {
  throw new CheckOptionError({ option: 'expectStatus', detail: `${JSON.stringify(spec)} is not a status (100-599), "Nxx", or a range "A-B"` });
}

function parseBound(text: string, spec: unknown, low: boolean): number {
  const exact = /^[1-5]\d\d$/.exec(text);
  if (exact) return Number(text);
  const klass = /^([1-5])xx$/i.exec(text);
  if (klass) return Number(klass[1]) * 100 + (low ? 0 : 99);
  return badStatus(spec);
}

/** Parses `expectStatus` into ranges. Throws CheckOptionError (option expectStatus) naming the bad element. */
export function parseExpectedStatus(expected: ExpectedStatus = DEFAULT_EXPECTED_STATUS): StatusRanges {
  const list: readonly StatusSpec[] = Array.isArray(expected) ? expected : [expected as StatusSpec];
  if (list.length === 0) badStatus(expected);
  return list.map((spec): readonly [number, number] => {
    if (typeof spec === 'number') {
      if (!Number.isInteger(spec) || spec < 100 || spec > 599) badStatus(spec);
      return [spec, spec];
    }
    if (typeof spec !== 'string') return badStatus(spec);
    const [lowText, highText = lowText, ...extra] = spec.trim().split('-');
    if (lowText === undefined || highText === undefined || extra.length > 0) return badStatus(spec);
    const low = parseBound(lowText.trim(), spec, true);
    const high = parseBound(highText.trim(), spec, false);
    if (high < low) badStatus(spec);
    return [low, high];
  });
}

export function describeStatusRanges(ranges: StatusRanges): string {
  return ranges.map(([low, high]) => (low === high ? String(low) : `${low}-${high}`)).join(', ');
}

function checkPath(path: string): string {
  if (!/^\/[\x21-\x7e]*$/.test(path)) {
    throw new CheckOptionError({ option: 'path', detail: `must start with '/' and contain no spaces or control characters, got ${JSON.stringify(path)}` });
  }
  return path;
}

function checkHostHeader(host: string): string {
  if (!/^[\x21-\x7e]+$/.test(host)) {
    throw new CheckOptionError({ option: 'host', detail: `must be visible ASCII without spaces, got ${JSON.stringify(host)}` });
  }
  return host;
}

/** The Host header for a target: `[v6]:port`, `host:port`, or just the host on port 80. */
export function hostHeader(target: HealthTarget): string {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  return target.port === 80 ? host : `${host}:${target.port}`;
}

export function httpRequest(path: string, host: string): Uint8Array {
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: l4lb-health\r\nAccept: */*\r\nConnection: close\r\n\r\n`, 'latin1');
}

const STATUS_LINE = /^HTTP\/1\.[01] ([1-5]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;

function findCrlf(reply: Uint8Array, from: number): number {
  for (let i = from; i + 1 < reply.length; i++) {
    if (reply[i] === 0x0d && reply[i + 1] === 0x0a) return i;
  }
  return -1;
}

/** The verdict on an HTTP response so far, given the accepted ranges (pure). */
export function decodeHttpStatus(reply: Uint8Array, ended: boolean, ranges: StatusRanges): Verdict | undefined {
  let start = 0;
  for (;;) {
    // Reject garbage as soon as the first bytes cannot start "HTTP/1.".
    const prefix = 'HTTP/1.';
    for (let i = 0; i < prefix.length && start + i < reply.length; i++) {
      if (reply[start + i] !== prefix.charCodeAt(i)) {
        return { ok: false, kind: 'invalid', reason: `not an HTTP/1.x response: "${printable(reply.subarray(start), 40)}"` };
      }
    }
    const end = findCrlf(reply, start);
    if (end === -1) {
      if (reply.length - start > MAX_STATUS_LINE) return { ok: false, kind: 'invalid', reason: `status line longer than ${MAX_STATUS_LINE} bytes` };
      return ended ? { ok: false, kind: 'closed', reason: `connection closed after ${reply.length} bytes, before a complete status line` } : undefined;
    }
    const line = Buffer.from(reply.buffer, reply.byteOffset + start, end - start).toString('latin1');
    const match = STATUS_LINE.exec(line);
    if (match === null) return { ok: false, kind: 'invalid', reason: `malformed status line "${printable(reply.subarray(start, end), 80)}"` };
    const code = Number(match[1]);
    if (code === 101) return { ok: false, kind: 'invalid', reason: 'unrequested 101 Switching Protocols' };
    if (code < 200) {
      // An interim response: skip its header section to the final response.
      let headersEnd = -1;
      for (let i = end; i + 3 < reply.length; i++) {
        if (reply[i] === 0x0d && reply[i + 1] === 0x0a && reply[i + 2] === 0x0d && reply[i + 3] === 0x0a) {
          headersEnd = i + 4;
          break;
        }
      }
      if (headersEnd === -1) {
        return ended ? { ok: false, kind: 'closed', reason: `connection closed inside an interim ${code} response` } : undefined;
      }
      start = headersEnd;
      continue;
    }
    const reason = printable(Buffer.from(match[2] ?? '', 'latin1'), 80);
    if (ranges.some(([low, high]) => code >= low && code <= high)) return { ok: true, detail: `HTTP ${code}${reason ? ` ${reason}` : ''}` };
    return { ok: false, kind: 'status', reason: `HTTP ${code}${reason ? ` ${reason}` : ''}, expected ${describeStatusRanges(ranges)}` };
  }
}

/** Builds the checker; throws CheckOptionError naming the bad path, host or expectStatus (configuration errors). */
export function createHttpChecker(options: HttpCheckOptions = {}): HealthChecker {
  const path = checkPath(options.path ?? DEFAULT_HTTP_PATH);
  const fixedHost = options.host === undefined ? undefined : checkHostHeader(options.host);
  const ranges = parseExpectedStatus(options.expectStatus ?? DEFAULT_EXPECTED_STATUS);
  const decode = (reply: Uint8Array, ended: boolean): Verdict | undefined => decodeHttpStatus(reply, ended, ranges);
  const fixedRequest = fixedHost === undefined ? undefined : httpRequest(path, fixedHost);
  return {
    type: 'http',
    check: (target, timeoutMs, signal) => {
      const request = fixedRequest ?? httpRequest(path, hostHeader(target));
      const protocol: ProbeProtocol = { request, maxReplyBytes: HTTP_MAX_REPLY_BYTES, decode };
      return runProbe(target, timeoutMs, signal, protocol);
    },
  };
}
