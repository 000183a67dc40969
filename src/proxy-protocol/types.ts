/**
 * The PROXY protocol header as data: what the parser returns and the encoders take.
 * Spec: HAProxy "The PROXY protocol, Versions 1 & 2" (doc/proxy-protocol.txt, rev. 2020/03/05),
 * §2.1 (human-readable v1), §2.2 (binary v2), §2.2.1–2.2.8 (TLVs).
 */

/** One end of the proxied connection. `address` is canonical text (RFC 5952 for IPv6). */
export interface ProxyEndpoint {
  readonly address: string;
  readonly port: number;
}

/** v1 `PROXY TCP4|TCP6 src dst sport dport\r\n`. */
export interface ProxyHeaderV1Tcp {
  readonly version: 1;
  readonly protocol: 'TCP4' | 'TCP6';
  readonly source: ProxyEndpoint;
  readonly destination: ProxyEndpoint;
}

/** v1 `PROXY UNKNOWN…\r\n`: the receiver uses the real connection's endpoints (§2.1). */
export interface ProxyHeaderV1Unknown {
  readonly version: 1;
  readonly protocol: 'UNKNOWN';
}

export type ProxyHeaderV1 = ProxyHeaderV1Tcp | ProxyHeaderV1Unknown;

/** v2 command (low nibble of byte 13): LOCAL = 0x0, PROXY = 0x1 (§2.2). */
export type ProxyCommand = 'local' | 'proxy';

/**
 * v2 family/transport byte (byte 14): the seven values §2.2 lists as expected.
 * 0x00 unspec, 0x11 tcp4, 0x12 udp4, 0x21 tcp6, 0x22 udp6, 0x31 unix-stream, 0x32 unix-dgram.
 */
export type ProxyV2Family = 'unspec' | 'tcp4' | 'udp4' | 'tcp6' | 'udp6' | 'unix-stream' | 'unix-dgram';

export type ProxyV2Addresses =
  | { readonly family: 'unspec' }
  | {
      readonly family: 'tcp4' | 'udp4' | 'tcp6' | 'udp6';
      readonly source: ProxyEndpoint;
      readonly destination: ProxyEndpoint;
    }
  | {
      readonly family: 'unix-stream' | 'unix-dgram';
      /** 108 bytes each, as sent (NUL padded). */
      readonly sourcePath: Uint8Array;
      readonly destinationPath: Uint8Array;
    };

/** A type-length-value extension; `value` is at most 65535 bytes. */
export interface ProxyTlv {
  readonly type: number;
  readonly value: Uint8Array;
}

/** PP2_TYPE_SSL (§2.2.6): client flags, verify result, and the sub-TLVs it carries. */
export interface ProxySslInfo {
  readonly client: number;
  readonly verify: number;
  readonly version?: string;
  readonly commonName?: string;
  readonly cipher?: string;
  readonly signatureAlgorithm?: string;
  readonly keyAlgorithm?: string;
  readonly subTlvs: readonly ProxyTlv[];
}

/** The registered TLVs, decoded. Every TLV is also in `tlvs`, in wire order. */
export interface ProxyExtensions {
  readonly alpn?: Uint8Array;
  readonly authority?: string;
  /** The checksum as received; present only when it matched (or verification was turned off). */
  readonly crc32c?: number;
  readonly uniqueId?: Uint8Array;
  readonly ssl?: ProxySslInfo;
  readonly netns?: string;
}

export interface ProxyHeaderV2 {
  readonly version: 2;
  readonly command: ProxyCommand;
  readonly addresses: ProxyV2Addresses;
  readonly tlvs: readonly ProxyTlv[];
  readonly extensions: ProxyExtensions;
}

export type ProxyHeader = ProxyHeaderV1 | ProxyHeaderV2;

/** What `encodeV2` needs: a v2 header without the decoded view, TLVs optional. */
export interface ProxyHeaderV2Input {
  readonly command: ProxyCommand;
  readonly addresses: ProxyV2Addresses;
  readonly tlvs?: readonly ProxyTlv[];
}

/** TLV type numbers (§2.2). */
export const PP2_TYPE_ALPN = 0x01;
export const PP2_TYPE_AUTHORITY = 0x02;
export const PP2_TYPE_CRC32C = 0x03;
export const PP2_TYPE_NOOP = 0x04;
export const PP2_TYPE_UNIQUE_ID = 0x05;
export const PP2_TYPE_SSL = 0x20;
export const PP2_SUBTYPE_SSL_VERSION = 0x21;
export const PP2_SUBTYPE_SSL_CN = 0x22;
export const PP2_SUBTYPE_SSL_CIPHER = 0x23;
export const PP2_SUBTYPE_SSL_SIG_ALG = 0x24;
export const PP2_SUBTYPE_SSL_KEY_ALG = 0x25;
export const PP2_TYPE_NETNS = 0x30;
export const PP2_CLIENT_SSL = 0x01;
export const PP2_CLIENT_CERT_CONN = 0x02;
export const PP2_CLIENT_CERT_SESS = 0x04;

/** The 12-byte v2 signature (§2.2). */
export const V2_SIGNATURE: readonly number[] = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
/** "PROXY " — the first six bytes of every v1 line. */
export const V1_PREFIX: readonly number[] = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20];
/** Longest v1 line including CRLF (§2.1: "PROXY UNKNOWN" with two full IPv6 addresses). */
export const V1_MAX_LENGTH = 107;
export const V2_FIXED_LENGTH = 16;
/** PP2_TYPE_UNIQUE_ID is "up to 128 bytes" (§2.2.5). */
export const UNIQUE_ID_MAX_LENGTH = 128;

const FAMILY_BYTES: Record<ProxyV2Family, number> = {
  unspec: 0x00,
  tcp4: 0x11,
  udp4: 0x12,
  tcp6: 0x21,
  udp6: 0x22,
  'unix-stream': 0x31,
  'unix-dgram': 0x32,
};

export function familyByte(family: ProxyV2Family): number {
  return FAMILY_BYTES[family];
}

/** The family of a v2 family/transport byte, or undefined if §2.2 does not list it (or the byte is missing). */
export function familyOfByte(byte: number | undefined): ProxyV2Family | undefined {
  switch (byte) {
    case 0x00:
      return 'unspec';
    case 0x11:
      return 'tcp4';
    case 0x12:
      return 'udp4';
    case 0x21:
      return 'tcp6';
    case 0x22:
      return 'udp6';
    case 0x31:
      return 'unix-stream';
    case 0x32:
      return 'unix-dgram';
    default:
      return undefined;
  }
}

/** Bytes of the address block for a family: 2*4+2*2, 2*16+2*2, 2*108, or 0 (§2.2). */
export function addressBlockLength(family: ProxyV2Family): number {
  switch (family) {
    case 'unspec':
      return 0;
    case 'tcp4':
    case 'udp4':
      return 12;
    case 'tcp6':
    case 'udp6':
      return 36;
    case 'unix-stream':
    case 'unix-dgram':
      return 216;
  }
}
