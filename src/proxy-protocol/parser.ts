/**
 * Incremental PROXY protocol header parser for a socket (spec §2.1, §2.2, and §2.2's rule for
 * telling the versions apart): feed chunks as they arrive; it tells v1 from v2 by the first byte
 * ('P' or CR), checks every byte of the v1 prefix and of the v2 fixed header as it comes (so a
 * client that speaks anything else is refused at its first wrong byte, not after a timeout), never
 * holds more than 107 bytes for v1 or 16 + maxV2Length for v2, and hands back the bytes of the last
 * chunk that follow the header (the client's first payload) as a view, without copying.
 *
 * `push` never throws: every outcome is a result. The parser allocates its 107-byte buffer once,
 * grows it once for a v2 header longer than that, and allocates only when it finishes (the header
 * object, or the error).
 */
import { LbError } from '../errors.js';
import { ProxyProtocolError } from './errors.js';
import { V1_MAX_LENGTH, V1_PREFIX, V2_FIXED_LENGTH, type ProxyHeader } from './types.js';
import { decodeV1 } from './v1.js';
import { DEFAULT_MAX_V2_LENGTH, checkV2FixedByte, decodeV2, v2TotalLength } from './v2.js';

export interface ProxyParserOptions {
  /** Highest accepted v2 length field (address block + TLVs), 0–65535; default 2048. */
  readonly maxV2Length?: number;
  /** Check PP2_TYPE_CRC32C when present (spec §2.2.3: a receiver that supports it MUST); default true. */
  readonly verifyCrc32c?: boolean;
}

export type ProxyParseResult =
  | { readonly status: 'need-more' }
  | {
      readonly status: 'done';
      readonly header: ProxyHeader;
      /** Bytes of the chunk just pushed that belonged to the header. */
      readonly consumed: number;
      /** Bytes of the whole header, across all chunks. */
      readonly headerLength: number;
      /** chunk.subarray(consumed): what the client sent after the header, for the caller to forward. */
      readonly rest: Uint8Array;
    }
  | { readonly status: 'error'; readonly error: ProxyProtocolError };

type ParserState = 'detect' | 'v1' | 'v2-fixed' | 'v2-body' | 'done' | 'failed';

const NEED_MORE: ProxyParseResult = Object.freeze({ status: 'need-more' });
const CR = 0x0d;
const LF = 0x0a;

export class ProxyHeaderParser {
  private readonly maxV2Length: number;
  private readonly verifyCrc32c: boolean;
  private buffer = new Uint8Array(V1_MAX_LENGTH);
  private have = 0;
  private total = 0;
  private state: ParserState = 'detect';
  private header: ProxyHeader | undefined;
  private failure: ProxyParseResult | undefined;

  /** Throws LbError LB_ERR_INVALID_ARGUMENT for an out-of-range maxV2Length. */
  constructor(options: ProxyParserOptions = {}) {
    const maxV2Length = options.maxV2Length ?? DEFAULT_MAX_V2_LENGTH;
    if (!(Number.isInteger(maxV2Length) && maxV2Length >= 0 && maxV2Length <= 0xffff)) {
      throw new LbError('LB_ERR_INVALID_ARGUMENT', `maxV2Length must be an integer 0–65535, got ${maxV2Length}`);
    }
    this.maxV2Length = maxV2Length;
    this.verifyCrc32c = options.verifyCrc32c ?? true;
  }

  /** Header bytes held so far (for a slow-drip metric); 0 once finished. */
  get bytesBuffered(): number {
    return this.state === 'done' || this.state === 'failed' ? 0 : this.have;
  }

  /** Forgets everything, to parse another connection's header. */
  reset(): void {
    this.have = 0;
    this.total = 0;
    this.state = 'detect';
    this.header = undefined;
    this.failure = undefined;
  }

  /**
   * Feeds the next bytes of the connection. Returns need-more until the header is complete, then
   * done (once; later pushes return done with consumed 0 and the whole chunk as rest), or error
   * (sticky). Cost O(chunk bytes up to the header end); the rest of the chunk is not looked at.
   */
  push(chunk: Uint8Array): ProxyParseResult {
    if (this.state === 'done') {
      return { status: 'done', header: this.header as ProxyHeader, consumed: 0, headerLength: this.total, rest: chunk };
    }
    if (this.state === 'failed') return this.failure as ProxyParseResult;
    let i = 0;
    // Each pass reads at most chunk[i] once before the loop tests i < chunk.length again, so the
    // single-byte reads below (chunk[i], chunk[i++]) are in range.
    while (i < chunk.length) {
      switch (this.state) {
        case 'detect': {
          const first = chunk[i]!;
          if (first === V1_PREFIX[0]) this.state = 'v1';
          else if (first === CR) this.state = 'v2-fixed';
          else {
            return this.fail(new ProxyProtocolError('LB_ERR_PROXY_MALFORMED', 0, undefined,
              `first byte 0x${first.toString(16).padStart(2, '0')} starts neither "PROXY " (v1) nor the v2 signature`));
          }
          break;
        }
        case 'v1': {
          const byte = chunk[i++]!;
          const at = this.have;
          this.buffer[this.have++] = byte;
          if (at < V1_PREFIX.length) {
            if (byte !== V1_PREFIX[at]) {
              return this.fail(new ProxyProtocolError('LB_ERR_PROXY_MALFORMED', at, 1, `expected "PROXY " at the start, byte ${at} differs`));
            }
            break;
          }
          const previous = this.buffer[at - 1];
          if (byte === LF) {
            if (previous !== CR) return this.fail(new ProxyProtocolError('LB_ERR_PROXY_MALFORMED', at, 1, 'LF without CR before it'));
            this.total = this.have;
            const decoded = decodeV1(this.buffer, this.have);
            return decoded instanceof ProxyProtocolError ? this.fail(decoded) : this.finish(decoded, chunk, i);
          }
          if (previous === CR) return this.fail(new ProxyProtocolError('LB_ERR_PROXY_MALFORMED', at - 1, 1, 'CR not followed by LF'));
          if (this.have === V1_MAX_LENGTH) {
            return this.fail(new ProxyProtocolError('LB_ERR_PROXY_TOO_LONG', at, 1, `no CRLF within the first ${V1_MAX_LENGTH} bytes`));
          }
          break;
        }
        case 'v2-fixed': {
          const at = this.have;
          this.buffer[this.have++] = chunk[i++]!;
          const fault = checkV2FixedByte(this.buffer, at, this.maxV2Length);
          if (fault) return this.fail(fault);
          if (this.have === V2_FIXED_LENGTH) {
            const total = v2TotalLength(this.buffer);
            if (total === undefined) return this.fail(new ProxyProtocolError('LB_ERR_PROXY_MALFORMED', 14, 2, 'the length field is missing'));
            this.total = total;
            if (this.total > this.buffer.length) {
              const grown = new Uint8Array(this.total);
              grown.set(this.buffer.subarray(0, V2_FIXED_LENGTH));
              this.buffer = grown;
            }
            this.state = 'v2-body';
            if (this.total === V2_FIXED_LENGTH) return this.completeV2(chunk, i);
          }
          break;
        }
        case 'v2-body': {
          const take = Math.min(this.total - this.have, chunk.length - i);
          this.buffer.set(chunk.subarray(i, i + take), this.have);
          this.have += take;
          i += take;
          if (this.have === this.total) return this.completeV2(chunk, i);
          break;
        }
      }
    }
    return NEED_MORE;
  }

  private completeV2(chunk: Uint8Array, consumed: number): ProxyParseResult {
    const decoded = decodeV2(this.buffer, this.total, this.verifyCrc32c);
    return decoded instanceof ProxyProtocolError ? this.fail(decoded) : this.finish(decoded, chunk, consumed);
  }

  private finish(header: ProxyHeader, chunk: Uint8Array, consumed: number): ProxyParseResult {
    this.state = 'done';
    this.header = header;
    return { status: 'done', header, consumed, headerLength: this.total, rest: chunk.subarray(consumed) };
  }

  private fail(error: ProxyProtocolError): ProxyParseResult {
    this.state = 'failed';
    this.failure = { status: 'error', error };
    return this.failure;
  }
}
