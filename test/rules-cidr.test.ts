/**
 * Address text and CIDR sets: tables for IPv4, IPv6, IPv4-mapped, /0, /32, /128 and bad inputs
 * with their exact messages; properties against oracles (Node's net.isIP for what is an address,
 * WHATWG URL for RFC 5952 text, and a BigInt prefix comparison for set membership).
 */
import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isLbError } from '../src/errors.js';
import { AccessPolicy, CidrSet, formatCidr, formatIPv4, formatIPv6, parseAddress, parseCidr, parseCidrList } from '../src/rules/index.js';

const FC = { seed: 42, numRuns: 500 } as const;

function messageOf(call: () => unknown): string {
  try {
    call();
  } catch (error) {
    if (!isLbError(error)) throw error;
    expect(error.code).toBe('LB_ERR_INVALID_ARGUMENT');
    return error.message;
  }
  throw new Error('expected an LbError');
}

describe('address text', () => {
  it.each([
    ['192.0.2.1', '192.0.2.1'],
    ['::', '::'],
    ['::1', '::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0000:0000:ff00:0042:8329', '2001:db8::ff00:42:8329'],
    ['1:0:1:1:1:1:1:1', '1:0:1:1:1:1:1:1'],
    ['::ffff:a01:203', '::ffff:10.1.2.3'],
    ['::FFFF:10.1.2.3', '::ffff:10.1.2.3'],
    ['::1.2.3.4', '::102:304'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
  ])('%s is %s in canonical form', (text, canonical) => {
    const parsed = parseAddress(text);
    expect(parsed && (parsed.family === 4 ? text : formatIPv6(parsed.bytes))).toBe(canonical);
  });

  it.each(['', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.256', ' 1.2.3.4', '1.2.3.4 ', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'fe80::1%eth0', '::ffff:1.2.3', 'g::1', '1:2:3:4:5:6:7:1.2.3.4'])(
    '%j is not an address',
    (text) => {
      expect(parseAddress(text)).toBeUndefined();
    },
  );

  it('agrees with net.isIP on what is an address (zone indexes aside)', () => {
    const alphabet = fc.constantFrom(...'0123456789abcdefABCDEF:.x'.split(''));
    const texts = fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4Extended(), fc.array(alphabet, { maxLength: 45 }).map((c) => c.join('')));
    fc.assert(
      fc.property(texts, (text) => {
        const parsed = parseAddress(text);
        expect(parsed?.family ?? 0).toBe(isIP(text));
      }),
      { seed: 42, numRuns: 3000 },
    );
  });

  it('formats IPv6 as RFC 5952 (checked against WHATWG URL) and parses its own output back', () => {
    const groups = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 });
    fc.assert(
      fc.property(groups, (words) => {
        const bytes = new Uint8Array(16);
        words.forEach((w, i) => {
          bytes[i * 2] = w >> 8;
          bytes[i * 2 + 1] = w & 0xff;
        });
        const text = formatIPv6(bytes);
        expect(parseAddress(text)?.bytes).toEqual(bytes);
        const mapped = words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff;
        const whatwg = new URL(`http://[${words.map((w) => w.toString(16)).join(':')}]`).hostname.slice(1, -1);
        if (!mapped) expect(text).toBe(whatwg);
      }),
      FC,
    );
  });
});

describe('CidrSet tables', () => {
  const cases: [string[], string, boolean][] = [
    [['10.0.0.0/8'], '10.1.2.3', true],
    [['10.0.0.0/8'], '11.0.0.0', false],
    [['10.0.0.0/8'], '9.255.255.255', false],
    [['10.0.0.0/8'], '::ffff:10.1.2.3', true],
    [['10.0.0.0/8'], '::ffff:a01:203', true],
    [['10.0.0.0/8'], '::FFFF:10.255.255.255', true],
    [['10.0.0.0/8'], '::ffff:11.0.0.1', false],
    [['10.0.0.0/8'], '::10.1.2.3', false],
    [['0.0.0.0/0'], '255.255.255.255', true],
    [['0.0.0.0/0'], '::ffff:1.2.3.4', true],
    [['0.0.0.0/0'], '::1', false],
    [['::/0'], '::1', true],
    [['::/0'], 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', true],
    [['::/0'], '1.2.3.4', false],
    [['::/0'], '::ffff:1.2.3.4', false],
    [['192.0.2.7/32'], '192.0.2.7', true],
    [['192.0.2.7/32'], '192.0.2.8', false],
    [['192.0.2.7/32'], '192.0.2.6', false],
    [['192.0.2.7'], '192.0.2.7', true],
    [['2001:db8::1/128'], '2001:db8::1', true],
    [['2001:db8::1/128'], '2001:DB8:0:0::1', true],
    [['2001:db8::1/128'], '2001:db8::2', false],
    [['2001:db8::1/128'], '2001:db8::', false],
    [['2001:db8::1'], '2001:db8::1', true],
    [['2001:db8::/32'], '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', true],
    [['2001:db8::/32'], '2001:db9::', false],
    [['2001:db8::/32'], '2001:db7:ffff:ffff:ffff:ffff:ffff:ffff', false],
    [['2001:db8:0:8000::/49'], '2001:db8:0:ffff::1', true],
    [['2001:db8:0:8000::/49'], '2001:db8:0:7fff::1', false],
    [['::ffff:10.0.0.0/104'], '10.9.9.9', true],
    [['::ffff:10.0.0.0/104'], '::ffff:10.9.9.9', true],
    [['::ffff:0:0/96'], '203.0.113.1', true],
    [['fe80::/10'], 'fe80::1%eth0', true],
    [['fe80::/10'], 'febf:ffff::1', true],
    [['fe80::/10'], 'fec0::1', false],
    [['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24'], '10.200.0.1', true],
    [['10.1.2.0/24', '10.1.0.0/16', '10.0.0.0/8'], '10.200.0.1', true],
    [['192.0.2.0/25', '192.0.2.128/25'], '192.0.2.200', true],
    [['192.0.2.0/25', '198.51.100.0/24'], '192.0.2.200', false],
    [['1.2.3.4/32', '2001:db8::/32'], '2001:db8::5', true],
    [['1.2.3.4/32', '2001:db8::/32'], '1.2.3.4', true],
    [['1.2.3.4/32', '2001:db8::/32'], '1.2.3.5', false],
    [[], '1.2.3.4', false],
    [['0.0.0.0/0', '::/0'], 'not-an-address', false],
    [['0.0.0.0/0', '::/0'], '', false],
  ];
  it.each(cases)('%j has %j: %s', (rules, address, expected) => {
    expect(CidrSet.parse(rules).has(address)).toBe(expected);
  });

  it('canonicalises blocks, mapped ones as IPv4', () => {
    expect(['10.0.0.0/8', '::ffff:10.0.0.0/104', '::ffff:0:0/96', '2001:DB8::/32', '192.0.2.7', '::1'].map((t) => formatCidr(parseCidr(t)))).toEqual([
      '10.0.0.0/8',
      '10.0.0.0/8',
      '0.0.0.0/0',
      '2001:db8::/32',
      '192.0.2.7/32',
      '::1/128',
    ]);
  });
});

describe('bad CIDRs', () => {
  it.each([
    ['10.0.0.0/33', '"10.0.0.0/33": prefix length must be 0–32'],
    ['2001:db8::/129', '"2001:db8::/129": prefix length must be 0–128'],
    ['10.0.0.1/8', '"10.0.0.1/8": host bits are set after the /8 prefix (the network is 10.0.0.0/8)'],
    ['2001:db8::1/32', '"2001:db8::1/32": host bits are set after the /32 prefix (the network is 2001:db8::/32)'],
    ['', '"": empty, expected an address or address/prefix'],
    ['10.0.0/8', '"10.0.0/8": "10.0.0" is not an IPv4 or IPv6 address'],
    ['010.0.0.0/8', '"010.0.0.0/8": "010.0.0.0" is not an IPv4 or IPv6 address'],
    [' 10.0.0.0/8', '" 10.0.0.0/8": " 10.0.0.0" is not an IPv4 or IPv6 address'],
    ['fe80::1%eth0/64', '"fe80::1%eth0/64": "fe80::1%eth0" is not an IPv4 or IPv6 address'],
    ['/8', '"/8": "" is not an IPv4 or IPv6 address'],
    ['10.0.0.0/', '"10.0.0.0/": prefix length must be a decimal number 0–32 without leading zeroes'],
    ['10.0.0.0/08', '"10.0.0.0/08": prefix length must be a decimal number 0–32 without leading zeroes'],
    ['10.0.0.0/-1', '"10.0.0.0/-1": prefix length must be a decimal number 0–32 without leading zeroes'],
    ['10.0.0.0/8/8', '"10.0.0.0/8/8": prefix length must be a decimal number 0–32 without leading zeroes'],
    ['::/1000', '"::/1000": prefix length must be a decimal number 0–128 without leading zeroes'],
  ])('%j', (text, message) => {
    expect(messageOf(() => parseCidr(text))).toBe(message);
  });

  it('bytes too short for the address are refused, not formatted as "undefined" or zeroes', () => {
    expect(messageOf(() => formatIPv4(new Uint8Array(16), 13))).toBe('an address needs 4 bytes at 13, got a 16-byte array');
    expect(messageOf(() => formatIPv6(new Uint8Array(4)))).toBe('an address needs 16 bytes at 0, got a 4-byte array');
    expect(messageOf(() => new CidrSet([{ family: 6, bytes: new Uint8Array(4), prefixLength: 0 }]))).toBe('an IPv6 block has 4 address bytes, expected 16');
  });

  it('a list error names the list and the entry', () => {
    expect(messageOf(() => parseCidrList(['10.0.0.0/8', '10.0.0.0/33'], 'allow'))).toBe('allow[1]: "10.0.0.0/33": prefix length must be 0–32');
    expect(messageOf(() => AccessPolicy.from({ deny: ['x'] }))).toBe('deny[0]: "x": "x" is not an IPv4 or IPv6 address');
  });
});

/** Oracle: an address as a BigInt with its family, IPv4-mapped folded to IPv4. */
function asBig(bytes: Uint8Array): { family: 4 | 6; value: bigint } {
  const mapped = bytes.length === 16 && bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  const used = mapped ? bytes.subarray(12) : bytes;
  return { family: used.length === 4 ? 4 : 6, value: used.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n) };
}

function naiveHas(blocks: { bytes: Uint8Array; prefix: number }[], address: Uint8Array): boolean {
  const a = asBig(address);
  return blocks.some((block) => {
    const b = asBig(block.bytes);
    const width = block.bytes.length === 4 ? 32 : 128;
    let prefix = block.prefix;
    if (b.family === 4 && width === 128) prefix -= 96;
    if (prefix < 0) return false; // an IPv6 block wider than /96 over the mapped range: IPv6 clients only
    const bits = BigInt((b.family === 4 ? 32 : 128) - prefix);
    return a.family === b.family && a.value >> bits === b.value >> bits;
  });
}

describe('CidrSet against a naive oracle', () => {
  const block = fc.oneof(
    fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 32 })),
    fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 128 })),
    fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }).map((v4) => Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4])), fc.integer({ min: 96, max: 128 })),
  ).map(([raw, prefix]) => {
    const bytes = raw.slice();
    for (let bit = prefix; bit < bytes.length * 8; bit++) bytes[bit >> 3] &= ~(0x80 >> (bit & 7));
    return { bytes, prefix };
  });
  const text = (bytes: Uint8Array): string => (bytes.length === 4 ? bytes.join('.') : formatIPv6(bytes));

  it('has(address) equals the naive prefix comparison, for addresses near and far from the blocks', () => {
    fc.assert(
      fc.property(fc.array(block, { maxLength: 12 }), fc.array(fc.tuple(fc.nat(), fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 20 }), (blocks, probes) => {
        const set = CidrSet.parse(blocks.map((b) => `${text(b.bytes)}/${b.prefix}`));
        for (const [pick, noise, how] of probes) {
          let address: Uint8Array;
          if (blocks.length === 0 || how === 0) address = how % 2 ? noise : noise.subarray(0, 4);
          else {
            // Near a block: its network address with a few low bits flipped, or as mapped IPv6.
            const base = blocks[pick % blocks.length].bytes.slice();
            base[base.length - 1] ^= noise[0];
            if (how === 2) base[Math.min(base.length - 1, (noise[1] % base.length))] ^= 1 << (noise[2] % 8);
            address = how === 3 && base.length === 4 ? Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...base]) : base;
          }
          expect(set.has(text(address)), `${text(address)} in ${blocks.map((b) => `${text(b.bytes)}/${b.prefix}`).join(',')}`).toBe(naiveHas(blocks, address));
        }
      }),
      FC,
    );
  });
});

describe('AccessPolicy', () => {
  it.each([
    [{}, '1.2.3.4', 'allowed'],
    [{ allow: [] }, '1.2.3.4', 'allowed'],
    [{ allow: ['10.0.0.0/8'] }, '10.1.1.1', 'allowed'],
    [{ allow: ['10.0.0.0/8'] }, '::ffff:10.1.1.1', 'allowed'],
    [{ allow: ['10.0.0.0/8'] }, '192.0.2.1', 'not-allowed'],
    [{ allow: ['10.0.0.0/8'] }, '2001:db8::1', 'not-allowed'],
    [{ deny: ['10.6.6.6'] }, '10.6.6.6', 'denied'],
    [{ deny: ['10.6.6.6'] }, '10.6.6.7', 'allowed'],
    [{ allow: ['10.0.0.0/8'], deny: ['10.6.0.0/16'] }, '10.6.1.1', 'denied'],
    [{ allow: ['10.6.6.6'], deny: ['10.0.0.0/8'] }, '10.6.6.6', 'denied'],
    [{ allow: ['10.0.0.0/8'], deny: ['10.6.0.0/16'] }, '10.7.1.1', 'allowed'],
    [{ allow: ['::/0'] }, '::ffff:1.2.3.4', 'not-allowed'],
    [{ deny: ['0.0.0.0/0'] }, '::1', 'allowed'],
    [{}, 'garbage', 'bad-address'],
    [{}, '', 'bad-address'],
  ] as const)('%j: %s is %s', (rules, address, verdict) => {
    expect(AccessPolicy.from(rules).evaluate(address)).toBe(verdict);
  });

  it('restricts only when a list is non-empty', () => {
    expect(AccessPolicy.from({}).restricts).toBe(false);
    expect(AccessPolicy.from({ allow: [], deny: [] }).restricts).toBe(false);
    expect(AccessPolicy.from({ deny: ['::1'] }).restricts).toBe(true);
  });
});
