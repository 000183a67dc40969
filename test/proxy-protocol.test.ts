/**
 * PROXY protocol known answers: the spec's own lines and limits (§2.1, §2.2), hand-built v2 bytes,
 * headers captured from a real HAProxy 2.6 (send-proxy, send-proxy-v2 with crc32c and unique-id,
 * the LOCAL header of its health checks), and a table of refusals with their exact code and offset.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ProxyHeaderParser,
  ProxyProtocolError,
  crc32c,
  encodeForConnection,
  encodeV1,
  encodeV2,
  proxiedEndpoints,
  v1HeaderFor,
  v2HeaderFor,
  type ProxyHeader,
  type ProxyParseResult,
} from '../src/proxy-protocol/index.js';
import { isLbError } from '../src/errors.js';
import { decodeV2 } from '../src/proxy-protocol/v2.js';

interface Vector {
  name: string;
  text?: string;
  hex?: string;
}
interface ValidVector extends Vector {
  headerLength: number;
  header: Record<string, unknown>;
  extensions?: Record<string, unknown>;
  tlvs?: { type: number; hex: string }[];
  reencodesExactly: boolean;
}
interface InvalidVector extends Vector {
  code: string;
  offset: number;
}
interface HaproxyVector {
  name: string;
  hex: string;
  clientPort?: number;
  frontendPort?: number;
}

const fixtures = new URL('./fixtures/proxy-protocol/', import.meta.url);
const spec = JSON.parse(readFileSync(new URL('spec-vectors.json', fixtures), 'utf8')) as { valid: ValidVector[]; invalid: InvalidVector[] };
const haproxy = JSON.parse(readFileSync(new URL('haproxy-vectors.json', fixtures), 'utf8')) as { vectors: HaproxyVector[] };

function bytesOf(vector: Vector): Uint8Array {
  return vector.text !== undefined ? Buffer.from(vector.text, 'latin1') : Buffer.from(vector.hex ?? '', 'hex');
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** The header in the fixtures' JSON shape: byte fields as hex, under a Hex-suffixed name. */
function plain(header: ProxyHeader): Record<string, unknown> {
  if (header.version === 1) return { ...header };
  const addresses = header.addresses.family === 'unix-stream' || header.addresses.family === 'unix-dgram'
    ? { family: header.addresses.family, sourcePathHex: hex(header.addresses.sourcePath), destinationPathHex: hex(header.addresses.destinationPath) }
    : header.addresses;
  return { version: 2, command: header.command, addresses };
}

function plainExtensions(header: ProxyHeader): Record<string, unknown> {
  if (header.version !== 2) return {};
  const { alpn, uniqueId, ssl, ...rest } = header.extensions;
  const out: Record<string, unknown> = { ...rest };
  if (alpn) out.alpnHex = hex(alpn);
  if (uniqueId) out.uniqueIdHex = hex(uniqueId);
  if (ssl) {
    const { subTlvs: _subTlvs, ...sslRest } = ssl;
    out.ssl = sslRest;
  }
  return out;
}

function parseWhole(bytes: Uint8Array): ProxyParseResult {
  return new ProxyHeaderParser().push(bytes);
}

function reencode(header: ProxyHeader): Uint8Array {
  return header.version === 1 ? encodeV1(header) : encodeV2(header);
}

describe('spec vectors: valid headers', () => {
  it.each(spec.valid.map((v) => [v.name, v] as const))('%s', (_name, vector) => {
    const bytes = bytesOf(vector);
    const result = parseWhole(bytes);
    if (result.status !== 'done') throw new Error(`expected done, got ${result.status === 'error' ? result.error.message : result.status}`);
    expect(result.headerLength).toBe(vector.headerLength);
    expect(result.consumed).toBe(vector.headerLength);
    expect(hex(result.rest)).toBe(hex(bytes.subarray(vector.headerLength)));
    expect(plain(result.header)).toEqual(vector.header);
    if (vector.extensions) expect(plainExtensions(result.header)).toEqual(vector.extensions);
    if (vector.tlvs && result.header.version === 2) {
      expect(result.header.tlvs.map((t) => ({ type: t.type, hex: hex(t.value) }))).toEqual(vector.tlvs);
    }
    const again = reencode(result.header);
    if (vector.reencodesExactly) expect(hex(again)).toBe(hex(bytes.subarray(0, vector.headerLength)));
    const reparsed = parseWhole(again);
    expect(reparsed.status === 'done' && reparsed.header).toEqual(result.header);
  });

  it('one byte short of each valid header is need-more, never an error', () => {
    for (const vector of spec.valid) {
      const bytes = bytesOf(vector);
      const parser = new ProxyHeaderParser();
      expect(parser.push(bytes.subarray(0, vector.headerLength - 1)), vector.name).toEqual({ status: 'need-more' });
      expect(parser.bytesBuffered).toBe(vector.headerLength - 1);
      const last = parser.push(bytes.subarray(vector.headerLength - 1));
      expect(last.status === 'done' && last.consumed, vector.name).toBe(1);
    }
  });
});

describe('spec vectors: refused headers', () => {
  it.each(spec.invalid.map((v) => [v.name, v] as const))('%s', (_name, vector) => {
    const bytes = bytesOf(vector);
    for (const chunking of ['whole', 'byte by byte'] as const) {
      const parser = new ProxyHeaderParser();
      let result: ProxyParseResult = { status: 'need-more' };
      if (chunking === 'whole') result = parser.push(bytes);
      else for (let i = 0; i < bytes.length && result.status === 'need-more'; i++) result = parser.push(bytes.subarray(i, i + 1));
      if (result.status !== 'error') throw new Error(`${chunking}: expected an error, got ${result.status}`);
      expect(result.error).toBeInstanceOf(ProxyProtocolError);
      expect(isLbError(result.error)).toBe(true);
      expect([result.error.code, result.error.offset], result.error.message).toEqual([vector.code, vector.offset]);
      expect(result.error.message).toContain(`(at byte ${vector.offset})`);
      // The error is sticky: more bytes do not revive the parser.
      expect(parser.push(Buffer.from('PROXY UNKNOWN\r\n'))).toBe(result);
    }
  });

  it('messages name what is wrong', () => {
    const message = (text: string): string => {
      const r = parseWhole(Buffer.from(text, 'latin1'));
      return r.status === 'error' ? r.error.message : r.status;
    };
    expect(message('GET / HTTP/1.1\r\n')).toBe('PROXY header: first byte 0x47 starts neither "PROXY " (v1) nor the v2 signature (at byte 0)');
    expect(message('PROXY TCP4 1.2.3.4 1.2.3.4 1 99999\r\n')).toBe(
      'PROXY v1 header: destination port must be 0–65535 in decimal without leading zeroes (at byte 29)',
    );
    expect(message('PROXY UDP4 x\r\n')).toBe('PROXY v1 header: protocol must be TCP4, TCP6 or UNKNOWN, got "UDP4" (at byte 6)');
  });
});

describe('HAProxy 2.6 captures', () => {
  it('has the four captures', () => {
    expect(haproxy.vectors.map((v) => v.name)).toEqual([
      'haproxy send-proxy, IPv4',
      'haproxy send-proxy-v2 crc32c,unique-id, IPv4',
      'haproxy send-proxy-v2 crc32c,unique-id, IPv6',
      'haproxy health check with send-proxy-v2 (LOCAL)',
    ]);
  });

  it.each(haproxy.vectors.map((v) => [v.name, v] as const))('%s', (name, vector) => {
    const bytes = Buffer.from(vector.hex, 'hex');
    const result = parseWhole(bytes);
    if (result.status !== 'done') throw new Error(result.status === 'error' ? result.error.message : 'need-more');
    const header = result.header;
    if (name.includes('LOCAL')) {
      expect(header).toMatchObject({ version: 2, command: 'local', addresses: { family: 'unspec' } });
      expect(result.rest.length).toBe(0);
    } else {
      expect(Buffer.from(result.rest).toString()).toBe('PAYLOAD\n');
      const loopback = name.includes('IPv6') ? '::1' : '127.0.0.1';
      const endpoints = header.version === 1
        ? header.protocol !== 'UNKNOWN' && { source: header.source, destination: header.destination }
        : header.addresses.family === 'tcp4' || header.addresses.family === 'tcp6'
          ? { source: header.addresses.source, destination: header.addresses.destination }
          : false;
      expect(endpoints).toEqual({
        source: { address: loopback, port: vector.clientPort },
        destination: { address: loopback, port: vector.frontendPort },
      });
    }
    if (header.version === 2 && name.includes('unique-id')) {
      expect(header.extensions.crc32c).toBeTypeOf('number');
      expect(Buffer.from(header.extensions.uniqueId ?? []).toString()).toMatch(/^abc123-\d+$/);
    }
    expect(hex(reencode(header))).toBe(hex(bytes.subarray(0, result.headerLength)));
  });

  it('the CRC32C HAProxy sent is the CRC32c of its header with the field zeroed; encodeV2 computes the same way', () => {
    const bytes = Buffer.from(haproxy.vectors[1].hex, 'hex');
    const parsed = parseWhole(bytes);
    if (parsed.status !== 'done' || parsed.header.version !== 2) throw new Error('capture does not parse');
    // HAProxy puts the CRC32C TLV first, right after the 12-byte IPv4 block: value at 16 + 12 + 3.
    expect(crc32c(bytes, 0, parsed.headerLength, 31)).toBe(bytes.readUInt32BE(31));
    expect(parsed.header.extensions.crc32c).toBe(bytes.readUInt32BE(31));
    const ours = encodeV2({ ...parsed.header, tlvs: parsed.header.tlvs.filter((t) => t.type !== 0x03) }, { crc32c: true });
    const at = ours.length - 4;
    expect(crc32c(ours, 0, ours.length, at)).toBe(Buffer.from(ours).readUInt32BE(at));
    expect(parseWhole(ours).status).toBe('done');
  });

  it('verifyCrc32c: false accepts a header whose checksum does not match', () => {
    const bad = spec.invalid.find((v) => v.name.startsWith('v2 CRC32C mismatch'));
    const result = new ProxyHeaderParser({ verifyCrc32c: false }).push(bytesOf(bad as Vector));
    expect(result.status).toBe('done');
  });
});

describe('CRC32c', () => {
  it('matches the RFC 3720 / iSCSI check values', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
  });
});

describe('parser mechanics', () => {
  it('keeps the payload that follows the header in the same chunk, as a view', () => {
    const chunk = Buffer.from('PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\r\nHELLO');
    const result = parseWhole(chunk);
    if (result.status !== 'done') throw new Error('expected done');
    expect(Buffer.from(result.rest).toString()).toBe('HELLO');
    expect(result.rest.buffer).toBe(chunk.buffer);
  });

  it('after done, later chunks are all payload', () => {
    const parser = new ProxyHeaderParser();
    parser.push(Buffer.from('PROXY UNKNOWN\r\n'));
    const next = parser.push(Buffer.from('more'));
    expect(next.status === 'done' && [next.consumed, Buffer.from(next.rest).toString()]).toEqual([0, 'more']);
    expect(parser.bytesBuffered).toBe(0);
  });

  it('an empty chunk is need-more', () => {
    expect(new ProxyHeaderParser().push(new Uint8Array(0))).toEqual({ status: 'need-more' });
  });

  it('reset() parses a second header', () => {
    const parser = new ProxyHeaderParser();
    expect(parser.push(Buffer.from('x')).status).toBe('error');
    parser.reset();
    expect(parser.push(Buffer.from('PROXY UNKNOWN\r\n')).status).toBe('done');
  });

  it('maxV2Length is configurable and enforced at the length field, before the body arrives', () => {
    const header = encodeV2({ command: 'proxy', addresses: { family: 'unspec' }, tlvs: [{ type: 0xe0, value: new Uint8Array(100) }] });
    expect(new ProxyHeaderParser({ maxV2Length: 103 }).push(header).status).toBe('done');
    const small = new ProxyHeaderParser({ maxV2Length: 102 }).push(header.subarray(0, 16));
    expect(small.status === 'error' && [small.error.code, small.error.offset]).toEqual(['LB_ERR_PROXY_TOO_LONG', 14]);
    const big = encodeV2({ command: 'proxy', addresses: { family: 'unspec' }, tlvs: [{ type: 0xe0, value: new Uint8Array(60000) }] });
    expect(new ProxyHeaderParser({ maxV2Length: 65535 }).push(big).status).toBe('done');
    expect(parseWhole(big).status).toBe('error');
  });

  it('decodeV2 on bytes that end inside the address block refuses them instead of reading missing bytes', () => {
    const v4 = encodeV2({ command: 'proxy', addresses: { family: 'tcp4', source: { address: '192.0.2.1', port: 4000 }, destination: { address: '198.51.100.2', port: 80 } } });
    for (const cut of [16, 20, 27]) {
      const decoded = decodeV2(v4.subarray(0, cut), v4.length, true);
      expect(decoded instanceof ProxyProtocolError && [decoded.code, decoded.offset]).toEqual(['LB_ERR_PROXY_MALFORMED', 16]);
    }
    expect(decodeV2(v4.subarray(0, 12), v4.length, true)).toBeInstanceOf(ProxyProtocolError);
    expect(decodeV2(v4, v4.length, true)).not.toBeInstanceOf(ProxyProtocolError);
  });

  it('rejects a bad maxV2Length at construction', () => {
    for (const bad of [-1, 65536, 1.5, Number.NaN]) {
      expect(() => new ProxyHeaderParser({ maxV2Length: bad })).toThrow(/maxV2Length must be an integer 0–65535/);
    }
  });
});

describe('headers for a connection', () => {
  const v4 = { source: { address: '192.0.2.1', port: 4000 }, destination: { address: '198.51.100.2', port: 80 } };
  it('IPv4 and IPv4-mapped ends give TCP4', () => {
    const mapped = { source: { address: '::ffff:192.0.2.1', port: 4000 }, destination: { address: '::FFFF:198.51.100.2', port: 80 } };
    expect(Buffer.from(encodeV1(v1HeaderFor(v4))).toString()).toBe('PROXY TCP4 192.0.2.1 198.51.100.2 4000 80\r\n');
    expect(Buffer.from(encodeV1(v1HeaderFor(mapped))).toString()).toBe('PROXY TCP4 192.0.2.1 198.51.100.2 4000 80\r\n');
    expect(hex(encodeV2(v2HeaderFor(mapped)))).toBe('0d0a0d0a000d0a515549540a2111000cc0000201c63364020fa00050');
  });

  it('an IPv6 end makes both IPv6, the IPv4 one mapped; zone indexes are dropped', () => {
    const mixed = { source: { address: 'fe80::1%eth0', port: 1 }, destination: { address: '10.0.0.1', port: 2 } };
    expect(Buffer.from(encodeV1(v1HeaderFor(mixed))).toString()).toBe('PROXY TCP6 fe80::1 ::ffff:10.0.0.1 1 2\r\n');
    expect(v2HeaderFor(mixed).addresses).toEqual({
      family: 'tcp6',
      source: { address: 'fe80::1', port: 1 },
      destination: { address: '::ffff:10.0.0.1', port: 2 },
    });
  });

  it('unknown or unusable endpoints give UNKNOWN / LOCAL', () => {
    expect(Buffer.from(encodeV1(v1HeaderFor(undefined))).toString()).toBe('PROXY UNKNOWN\r\n');
    expect(hex(encodeV2(v2HeaderFor(undefined)))).toBe('0d0a0d0a000d0a515549540a20000000');
    const bad = { source: { address: 'not-an-ip', port: 1 }, destination: v4.destination };
    expect(v1HeaderFor(bad)).toEqual({ version: 1, protocol: 'UNKNOWN' });
    expect(v2HeaderFor({ ...v4, destination: { address: '1.2.3.4', port: 70000 } }).command).toBe('local');
  });

  it('encoders refuse bad input with LB_ERR_INVALID_ARGUMENT', () => {
    const wrong = [
      () => encodeV1({ version: 1, protocol: 'TCP4', source: { address: '::1', port: 1 }, destination: v4.destination }),
      () => encodeV1({ version: 1, protocol: 'TCP6', source: { address: '::1', port: 65536 }, destination: { address: '::1', port: 1 } }),
      () => encodeV2({ command: 'proxy', addresses: { family: 'tcp4', ...v4 }, tlvs: [{ type: 256, value: new Uint8Array() }] }),
      () => encodeV2({ command: 'proxy', addresses: { family: 'unspec' }, tlvs: [{ type: 1, value: new Uint8Array(65533) }] }),
      () => encodeV2({ command: 'proxy', addresses: { family: 'unspec' }, tlvs: [{ type: 3, value: new Uint8Array(4) }] }, { crc32c: true }),
    ];
    for (const call of wrong) {
      let caught: unknown;
      try {
        call();
      } catch (error) {
        caught = error;
      }
      expect(isLbError(caught) && caught.code).toBe('LB_ERR_INVALID_ARGUMENT');
    }
  });
});

describe('what a received header stands for', () => {
  const endpointsOf = (bytes: Uint8Array): unknown => {
    const result = parseWhole(bytes);
    if (result.status !== 'done') throw new Error('expected done');
    return proxiedEndpoints(result.header);
  };
  const connection = { source: { address: '203.0.113.7', port: 51000 }, destination: { address: '192.0.2.10', port: 443 } };

  it('TCP over IPv4 or IPv6, v1 or v2: the header endpoints', () => {
    expect(endpointsOf(encodeForConnection('v1', connection))).toEqual(connection);
    expect(endpointsOf(encodeForConnection('v2', connection))).toEqual(connection);
    const six = { source: { address: '2001:db8::7', port: 1 }, destination: { address: '2001:db8::1', port: 2 } };
    expect(endpointsOf(encodeForConnection('v1', six))).toEqual(six);
    expect(endpointsOf(encodeForConnection('v2', six))).toEqual(six);
  });

  it('UNKNOWN, LOCAL, UNSPEC, UDP and UNIX: undefined (use the real endpoints)', () => {
    expect(endpointsOf(encodeForConnection('v1', undefined))).toBeUndefined();
    expect(endpointsOf(encodeForConnection('v2', undefined))).toBeUndefined();
    const valid = spec.valid.filter((v) => /LOCAL|UNSPEC|UDP4|UNIX|worst case/.test(v.name));
    expect(valid.length).toBe(6);
    for (const vector of valid) expect(endpointsOf(bytesOf(vector)), vector.name).toBeUndefined();
  });
});
