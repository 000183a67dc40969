/**
 * The server name (SNI, RFC 6066 §3) and ALPN protocols (RFC 7301 §3.1) of a TLS ClientHello,
 * read from a client's first bytes without terminating TLS, as nginx's `ssl_preread` and HAProxy's
 * `req.ssl_sni` do. Pure and incremental: `feed(chunk)` with each TCP segment as it arrives;
 * the answer is `need-more` until the ClientHello is complete, then final.
 *
 * What it reads (RFC 8446 §5.1 record layer, §4.1.2 ClientHello; the same layout in TLS 1.0–1.2,
 * RFC 5246 §7.4.1.2): records of type handshake (22) whose fragments, concatenated, hold one
 * handshake message of type client_hello (1). A ClientHello may span several records (RFC 8446
 * §5.1: handshake messages may be fragmented across records) and any record may be split over
 * several TCP segments; only the concatenation matters, so every way of splitting the same bytes
 * gives the same answer (test/client-hello.test.ts checks it as a property).
 *
 * Bounds: a handshake message over MAX_HELLO_BYTES (16 KiB, a record's plaintext limit), a record
 * over 2^14 bytes (RFC 8446 §5.1, record_overflow), or more than MAX_HELLO_RECORDS records before the
 * message is complete is refused: at most MAX_FIRST_FLIGHT_BYTES are ever needed. Anything that is
 * not a TLS handshake record (an HTTP request, an SSLv2-compatible hello, an alert), or a
 * ClientHello whose lengths do not add up, is refused with a reason; `feed` never throws.
 *
 * The name is returned as DNS names are compared: lower case, a trailing dot removed (RFC 6066
 * says a HostName has none; some clients send it anyway). A name with bytes outside letters,
 * digits, '-', '_' and '.' or with an empty label is malformed.
 */

/** RFC 8446 §5.1: the largest plaintext fragment; also the largest ClientHello accepted. */
export const MAX_HELLO_BYTES = 16_384;
/** At most this many records may carry one ClientHello (real clients use one). */
export const MAX_HELLO_RECORDS = 16;
const RECORD_HEADER = 5;
/** The most bytes a ClientHello may take on the wire under the bounds above. */
export const MAX_FIRST_FLIGHT_BYTES = MAX_HELLO_BYTES + MAX_HELLO_RECORDS * RECORD_HEADER;

const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXTENSION_SERVER_NAME = 0;
const EXTENSION_ALPN = 16;
const NAME_TYPE_HOST = 0;

/** Why a first flight is refused: the `result` label of l4lb_sni_inspect_total and the access log's detail. */
export type HelloFailure = 'not-tls' | 'not-client-hello' | 'too-large' | 'malformed';

export type HelloResult =
  | { readonly status: 'need-more' }
  | {
      readonly status: 'done';
      /** The host_name of the server_name extension, normalised; absent when the client sent none. */
      readonly sni?: string;
      /** The ALPN protocols offered, in the client's order; absent when it sent no ALPN extension. */
      readonly alpn?: readonly string[];
      /** Bytes of the input the ClientHello's records took (what follows belongs to later records). */
      readonly length: number;
    }
  | { readonly status: 'error'; readonly reason: HelloFailure; readonly detail: string };

const NEED_MORE: HelloResult = { status: 'need-more' };

function failure(reason: HelloFailure, detail: string): HelloResult {
  return { status: 'error', reason, detail };
}

/** A malformed-hello signal inside the body parser: turned into a result at the top, never escapes. */
class Malformed extends Error {
  constructor(readonly detail: string) {
    super(detail);
  }
}

/** Reads big-endian fields from `bytes[at, end)`, signalling Malformed when a length runs past `end`. */
class Reader {
  constructor(
    private readonly bytes: Uint8Array,
    private at: number,
    private readonly end: number,
  ) {}

  get left(): number {
    return this.end - this.at;
  }

  private need(n: number, what: string): void {
    if (n > this.left) throw new Malformed(`${what}: ${n} bytes needed, ${this.left} left`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.at++]!;
  }

  u16(what: string): number {
    this.need(2, what);
    const value = (this.bytes[this.at]! << 8) | this.bytes[this.at + 1]!;
    this.at += 2;
    return value;
  }

  skip(n: number, what: string): void {
    this.need(n, what);
    this.at += n;
  }

  /** A sub-reader over the next `n` bytes, which this reader skips. */
  take(n: number, what: string): Reader {
    this.need(n, what);
    const sub = new Reader(this.bytes, this.at, this.at + n);
    this.at += n;
    return sub;
  }

  text(n: number, what: string): string {
    this.need(n, what);
    let out = '';
    for (let i = 0; i < n; i++) out += String.fromCharCode(this.bytes[this.at + i]!);
    this.at += n;
    return out;
  }
}

const HOST_NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

/** A server name as routes compare it: lower case, no trailing dot; undefined if it is not a host name. */
export function normaliseServerName(name: string): string | undefined {
  const lower = name.toLowerCase();
  const bare = lower.endsWith('.') ? lower.slice(0, -1) : lower;
  return bare.length > 0 && bare.length <= 253 && HOST_NAME.test(bare) ? bare : undefined;
}

function readServerName(extension: Reader): string {
  const list = extension.take(extension.u16('server_name list length'), 'server_name list');
  while (list.left > 0) {
    const type = list.u8('server_name type');
    const length = list.u16('server_name length');
    if (type !== NAME_TYPE_HOST) {
      list.skip(length, 'server_name');
      continue;
    }
    const raw = list.text(length, 'host_name');
    const name = normaliseServerName(raw);
    if (name === undefined) throw new Malformed(`server_name: not a host name (${JSON.stringify(raw.slice(0, 64))})`);
    return name;
  }
  throw new Malformed('server_name: no host_name in the list');
}

function readAlpn(extension: Reader): string[] {
  const list = extension.take(extension.u16('ALPN list length'), 'ALPN list');
  const protocols: string[] = [];
  while (list.left > 0) {
    const length = list.u8('ALPN protocol length');
    if (length === 0) throw new Malformed('ALPN: an empty protocol name');
    protocols.push(list.text(length, 'ALPN protocol'));
  }
  return protocols;
}

/** The ClientHello body (after its 4-byte handshake header). */
function readClientHello(body: Reader, length: number): HelloResult {
  body.skip(2, 'legacy_version');
  body.skip(32, 'random');
  const sessionId = body.u8('legacy_session_id length');
  if (sessionId > 32) throw new Malformed(`legacy_session_id: ${sessionId} bytes (at most 32)`);
  body.skip(sessionId, 'legacy_session_id');
  const suites = body.u16('cipher_suites length');
  if (suites < 2 || suites % 2 !== 0) throw new Malformed(`cipher_suites: ${suites} bytes (a positive even number expected)`);
  body.skip(suites, 'cipher_suites');
  const compression = body.u8('legacy_compression_methods length');
  if (compression < 1) throw new Malformed('legacy_compression_methods: empty');
  body.skip(compression, 'legacy_compression_methods');
  let sni: string | undefined;
  let alpn: string[] | undefined;
  if (body.left > 0) {
    const extensions = body.take(body.u16('extensions length'), 'extensions');
    const seen = new Set<number>();
    while (extensions.left > 0) {
      const type = extensions.u16('extension type');
      const data = extensions.take(extensions.u16('extension length'), 'extension data');
      // RFC 8446 §4.2: there MUST NOT be more than one extension of the same type.
      if (seen.has(type)) throw new Malformed(`extension ${type} appears twice`);
      seen.add(type);
      if (type === EXTENSION_SERVER_NAME) sni = readServerName(data);
      else if (type === EXTENSION_ALPN) alpn = readAlpn(data);
    }
  }
  if (body.left > 0) throw new Malformed(`${body.left} bytes after the extensions`);
  return { status: 'done', length, ...(sni === undefined ? {} : { sni }), ...(alpn === undefined ? {} : { alpn }) };
}

/**
 * The answer for `input`, the first bytes of a connection. A pure function of the bytes: a prefix
 * of a complete ClientHello answers need-more, and every answer but need-more is final (more
 * bytes never change it). Cost: O(input), no allocation beyond the handshake message's bytes when
 * it spans records.
 */
export function parseClientHello(input: Uint8Array): HelloResult {
  // Collect the handshake fragments of the records received so far.
  const fragments: Uint8Array[] = [];
  let collected = 0;
  let at = 0;
  let records = 0;
  let declared: number | undefined;
  for (;;) {
    if (declared !== undefined && collected >= declared + 4) break;
    if (input.length - at < 1) return NEED_MORE;
    const type = input[at]!;
    if (records === 0 && type !== CONTENT_HANDSHAKE) return failure('not-tls', `first byte 0x${type.toString(16).padStart(2, '0')} is not a TLS handshake record`);
    if (type !== CONTENT_HANDSHAKE) return failure('malformed', `record ${records + 1} has content type ${type} inside the ClientHello (handshake records only)`);
    if (input.length - at < 2) return NEED_MORE;
    if (input[at + 1] !== 3) return failure(records === 0 ? 'not-tls' : 'malformed', `record version major ${input[at + 1]!} is not 3`);
    if (input.length - at < RECORD_HEADER) return NEED_MORE;
    if (records === MAX_HELLO_RECORDS) return failure('too-large', `the ClientHello is not complete after ${MAX_HELLO_RECORDS} records`);
    const length = (input[at + 3]! << 8) | input[at + 4]!;
    if (length === 0) return failure('malformed', `record ${records + 1} is empty`);
    if (length > MAX_HELLO_BYTES) return failure('malformed', `record ${records + 1} is ${length} bytes (at most ${MAX_HELLO_BYTES})`);
    if (input.length - at - RECORD_HEADER < length) {
      // An incomplete record: its partial fragment may already tell the message type and length.
      fragments.push(input.subarray(at + RECORD_HEADER));
      collected += input.length - at - RECORD_HEADER;
      const early = checkHeader(fragments, collected);
      return early ?? NEED_MORE;
    }
    fragments.push(input.subarray(at + RECORD_HEADER, at + RECORD_HEADER + length));
    collected += length;
    at += RECORD_HEADER + length;
    records++;
    const header = checkHeader(fragments, collected);
    if (header !== undefined) return header;
    if (collected >= 4) declared = handshakeLength(fragments);
  }
  const message = fragments.length === 1 ? fragments[0]! : concat(fragments, collected);
  const total = declared + 4;
  // Bytes after the ClientHello in its last record would be a second handshake message: not a first flight a client sends.
  if (collected > total) return failure('malformed', `${collected - total} bytes after the ClientHello in its records`);
  try {
    return readClientHello(new Reader(message, 4, total), at);
  } catch (error) {
    if (error instanceof Malformed) return failure('malformed', error.detail);
    throw error;
  }
}

function concat(fragments: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const fragment of fragments) {
    out.set(fragment, at);
    at += fragment.length;
  }
  return out;
}

/** The i-th byte of the handshake bytes collected so far. Pre: i < collected. */
function byteAt(fragments: readonly Uint8Array[], i: number): number {
  let index = i;
  for (const fragment of fragments) {
    if (index < fragment.length) return fragment[index]!;
    index -= fragment.length;
  }
  return 0;
}

function handshakeLength(fragments: readonly Uint8Array[]): number {
  return (byteAt(fragments, 1) << 16) | (byteAt(fragments, 2) << 8) | byteAt(fragments, 3);
}

/** A refusal the handshake header alone decides (type, length), as soon as its bytes are in. */
function checkHeader(fragments: readonly Uint8Array[], collected: number): HelloResult | undefined {
  if (collected < 1) return undefined;
  const type = byteAt(fragments, 0);
  if (type !== HANDSHAKE_CLIENT_HELLO) return failure('not-client-hello', `handshake message type ${type} is not client_hello (1)`);
  if (collected < 4) return undefined;
  const length = handshakeLength(fragments);
  if (length + 4 > MAX_HELLO_BYTES) return failure('too-large', `a ClientHello of ${length} bytes (at most ${MAX_HELLO_BYTES - 4})`);
  if (length < 38) return failure('malformed', `a ClientHello of ${length} bytes is too short`);
  return undefined;
}

/**
 * Incremental reader of one connection's first flight. Memory: the bytes fed until the answer is
 * final (at most MAX_FIRST_FLIGHT_BYTES are needed; the caller bounds what it feeds beyond that).
 */
export class ClientHelloParser {
  private received: Uint8Array = new Uint8Array(0);
  private answer: HelloResult = NEED_MORE;

  /** Bytes fed so far. */
  get length(): number {
    return this.received.length;
  }

  /** Every byte fed so far, in order (what is forwarded to the backend once a route is chosen). */
  bytes(): Uint8Array {
    return this.received;
  }

  /** Appends `chunk`; the answer for every byte fed so far. Once final, the same answer again. Cost: O(bytes fed). */
  feed(chunk: Uint8Array): HelloResult {
    if (this.answer.status !== 'need-more') return this.answer;
    const next = new Uint8Array(this.received.length + chunk.length);
    next.set(this.received, 0);
    next.set(chunk, this.received.length);
    this.received = next;
    this.answer = parseClientHello(next);
    return this.answer;
  }
}
