/**
 * PROXY protocol v1 and v2 (HAProxy doc/proxy-protocol.txt): an incremental header parser for the
 * accept side and encoders for the send side. Pure: no sockets, no clock, no logging.
 */
export * from './types.js';
export { ProxyProtocolError, type ProxyErrorCode } from './errors.js';
export { ProxyHeaderParser, type ProxyParseResult, type ProxyParserOptions } from './parser.js';
export { encodeV1, encodeV2, type EncodeV2Options } from './encode.js';
export {
  encodeForConnection,
  proxiedEndpoints,
  v1HeaderFor,
  v2HeaderFor,
  type ConnectionEndpoints,
  type ProxyVersionName,
} from './endpoints.js';
export { DEFAULT_MAX_V2_LENGTH } from './v2.js';
export { crc32c } from './crc32c.js';
