/**
 * Why a PROXY protocol header was refused. One class, three stable codes:
 * - LB_ERR_PROXY_MALFORMED: the bytes break the grammar of the spec (bad signature, bad address text,
 *   lone CR or LF, length shorter than the address block, TLV overrunning the header, bad CRC32C…);
 * - LB_ERR_PROXY_TOO_LONG: no CRLF within 107 bytes (v1), or a v2 length field above the cap;
 * - LB_ERR_PROXY_UNSUPPORTED: well framed, but a value the spec leaves unassigned (v2 version other
 *   than 2, command other than LOCAL/PROXY, family/transport byte not among the seven listed).
 * `offset` is the index, from the first byte of the header, of the byte found wrong.
 */
import { LbError, type LbErrorCode } from '../errors.js';

export type ProxyErrorCode = Extract<LbErrorCode, 'LB_ERR_PROXY_MALFORMED' | 'LB_ERR_PROXY_TOO_LONG' | 'LB_ERR_PROXY_UNSUPPORTED'>;

export class ProxyProtocolError extends LbError {
  override readonly code: ProxyErrorCode;
  readonly offset: number;
  /** The version the first bytes announced, if they got that far. */
  readonly version: 1 | 2 | undefined;

  constructor(code: ProxyErrorCode, offset: number, version: 1 | 2 | undefined, what: string) {
    const prefix = version === undefined ? 'PROXY header' : `PROXY v${version} header`;
    super(code, `${prefix}: ${what} (at byte ${offset})`);
    this.name = 'ProxyProtocolError';
    this.code = code;
    this.offset = offset;
    this.version = version;
  }
}
