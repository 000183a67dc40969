/**
 * CIDR blocks (RFC 4632 for IPv4, RFC 4291 §2.3 for IPv6) and a set of them that answers "is this
 * client address inside?" in O(log n) without allocating.
 *
 * IPv4-mapped IPv6 (RFC 4291 §2.5.5.2, ::ffff:a.b.c.d) is IPv4: a dual-stack listener reports an
 * IPv4 client that way, so `10.0.0.0/8` matches `::ffff:10.1.2.3`, and a rule written inside the
 * mapped range (`::ffff:10.0.0.0/104`) is stored as the IPv4 rule it means (`10.0.0.0/8`). An IPv6
 * rule wider than /96 that covers the mapped range (`::/0`) does not match IPv4 clients: `::/0`
 * means every IPv6 client, `0.0.0.0/0` every IPv4 one.
 *
 * Blocks are stored as sorted disjoint [first, last] intervals (two CIDR blocks are either disjoint
 * or nested, so the nested ones are dropped); a lookup is a binary search.
 */
import { LbError } from '../errors.js';
import { formatIPv4, formatIPv6, isMappedIPv4, parseIPv4Into, parseIPv6Into, type IpFamily } from './address.js';

export interface Cidr {
  readonly family: IpFamily;
  /** Network address, host bits zero: 4 or 16 bytes. */
  readonly bytes: Uint8Array;
  readonly prefixLength: number;
}

function bad(text: string, why: string): LbError {
  return new LbError('LB_ERR_INVALID_ARGUMENT', `${JSON.stringify(text)}: ${why}`);
}

/** Canonical text of a block, e.g. "10.0.0.0/8", "2001:db8::/32". */
export function formatCidr(cidr: Cidr): string {
  return `${cidr.family === 4 ? formatIPv4(cidr.bytes) : formatIPv6(cidr.bytes)}/${cidr.prefixLength}`;
}

function masked(bytes: Uint8Array, prefixLength: number): Uint8Array {
  const out = bytes.slice();
  // bit < out.length · 8, so bit >> 3 < out.length and out[bit >> 3] is defined.
  for (let bit = prefixLength; bit < out.length * 8; bit++) out[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return out;
}

/**
 * Parses "address/prefix" or a bare address (a /32 or /128). Throws LbError LB_ERR_INVALID_ARGUMENT
 * naming the input and the fault, e.g. `"10.0.0.0/33": prefix length must be 0–32`. A block with
 * host bits set ("10.0.0.1/8") is refused: it is almost always a typo for a single host or a
 * different network. IPv4-mapped blocks of /96 or longer come back as IPv4.
 */
export function parseCidr(text: string): Cidr {
  if (text.length === 0) throw bad(text, 'empty, expected an address or address/prefix');
  const slash = text.indexOf('/');
  const addressText = slash >= 0 ? text.slice(0, slash) : text;
  const bytes = new Uint8Array(16);
  let family: IpFamily;
  if (parseIPv4Into(addressText, 0, addressText.length, bytes, 0)) family = 4;
  else if (parseIPv6Into(addressText, 0, addressText.length, bytes, 0)) family = 6;
  else throw bad(text, `${JSON.stringify(addressText)} is not an IPv4 or IPv6 address`);
  const width = family === 4 ? 32 : 128;
  let prefixLength = width;
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) {
      throw bad(text, `prefix length must be a decimal number 0–${width} without leading zeroes`);
    }
    prefixLength = Number(prefixText);
    if (prefixLength > width) throw bad(text, `prefix length must be 0–${width}`);
  }
  let cidr: Cidr = { family, bytes: bytes.slice(0, width / 8), prefixLength };
  const network = masked(cidr.bytes, prefixLength);
  if (network.some((b, i) => b !== cidr.bytes[i])) {
    throw bad(text, `host bits are set after the /${prefixLength} prefix (the network is ${formatCidr({ family, bytes: network, prefixLength })})`);
  }
  if (family === 6 && prefixLength >= 96 && isMappedIPv4(cidr.bytes)) {
    cidr = { family: 4, bytes: cidr.bytes.slice(12), prefixLength: prefixLength - 96 };
  }
  return cidr;
}

/**
 * Parses a list; an error names the list and the entry: `allow[1]: "10.0.0.0/33": prefix length
 * must be 0–32`.
 */
export function parseCidrList(texts: readonly string[], label = 'cidr'): Cidr[] {
  return texts.map((text, index) => {
    try {
      return parseCidr(text);
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new LbError('LB_ERR_INVALID_ARGUMENT', `${label}[${index}]: ${why}`);
    }
  });
}

/** Disjoint sorted intervals of `width`-word keys (1 word for IPv4, 4 for IPv6), big-endian words. */
class IntervalTable {
  private readonly firsts: Uint32Array;
  private readonly lasts: Uint32Array;
  readonly count: number;

  constructor(
    private readonly width: number,
    blocks: readonly Cidr[],
  ) {
    const intervals = blocks.map((block) => {
      // parseCidr makes 4 or 16 bytes; a Cidr built by hand is checked here, once per block.
      if (block.bytes.length !== width * 4) {
        throw new LbError('LB_ERR_INVALID_ARGUMENT', `an IPv${block.family} block has ${block.bytes.length} address bytes, expected ${width * 4}`);
      }
      const first = new Uint32Array(width);
      const last = new Uint32Array(width);
      // w · 4 + 3 < width · 4 = block.bytes.length (checked above), so every byte read is defined.
      for (let w = 0; w < width; w++) {
        const bits = Math.max(0, Math.min(32, block.prefixLength - w * 32));
        const word = ((block.bytes[w * 4]! << 24) | (block.bytes[w * 4 + 1]! << 16) | (block.bytes[w * 4 + 2]! << 8) | block.bytes[w * 4 + 3]!) >>> 0;
        first[w] = word;
        last[w] = bits === 32 ? word : (word | (0xffffffff >>> bits)) >>> 0;
      }
      return { first, last, prefixLength: block.prefixLength };
    });
    // By first address, wider block first; then drop every block nested in the one before it.
    intervals.sort((a, b) => compareWords(a.first, 0, b.first, 0, width) || a.prefixLength - b.prefixLength);
    const kept: typeof intervals = [];
    for (const interval of intervals) {
      const previous = kept[kept.length - 1];
      if (previous && compareWords(interval.first, 0, previous.last, 0, width) <= 0) continue;
      kept.push(interval);
    }
    this.count = kept.length;
    this.firsts = new Uint32Array(kept.length * width);
    this.lasts = new Uint32Array(kept.length * width);
    kept.forEach((interval, i) => {
      this.firsts.set(interval.first, i * width);
      this.lasts.set(interval.last, i * width);
    });
  }

  /** True if key (width words at key[0]) lies in an interval. O(log n), no allocation. */
  contains(key: Uint32Array): boolean {
    let low = 0;
    let high = this.count - 1;
    let candidate = -1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      if (compareWords(this.firsts, mid * this.width, key, 0, this.width) <= 0) {
        candidate = mid;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    return candidate >= 0 && compareWords(key, 0, this.lasts, candidate * this.width, this.width) <= 0;
  }
}

/** Compares a[aAt, aAt + width) with b[bAt, bAt + width). Pre: both ranges lie inside their arrays. */
function compareWords(a: Uint32Array, aAt: number, b: Uint32Array, bAt: number, width: number): number {
  // w < width, so aAt + w and bAt + w are inside a and b (pre).
  for (let w = 0; w < width; w++) {
    if (a[aAt + w] !== b[bAt + w]) return a[aAt + w]! < b[bAt + w]! ? -1 : 1;
  }
  return 0;
}

/**
 * A client address parsed once for any number of lookups: IPv4-mapped IPv6 folded to IPv4, the
 * address as big-endian 32-bit words. Reusable: `set` overwrites it without allocating.
 */
export class AddressKey {
  family: IpFamily = 4;
  readonly words = new Uint32Array(4);
  private readonly bytes = new Uint8Array(16);

  /**
   * Parses an IPv4, IPv6 or IPv4-mapped IPv6 address (a zone index such as %eth0 is ignored).
   * Returns false, leaving the key unusable, if it is not an address.
   */
  set(address: string): boolean {
    const zone = address.indexOf('%');
    const end = zone >= 0 ? zone : address.length;
    if (parseIPv4Into(address, 0, end, this.bytes, 12)) return this.load(4, 12);
    if (!parseIPv6Into(address, 0, end, this.bytes, 0)) return false;
    return isMappedIPv4(this.bytes) ? this.load(4, 12) : this.load(6, 0);
  }

  private load(family: IpFamily, at: number): true {
    this.family = family;
    const b = this.bytes;
    // at is 12 for IPv4 (one word) and 0 for IPv6 (four), so at + 4w + 3 ≤ 15 < b.length = 16.
    for (let w = 0; w < (family === 4 ? 1 : 4); w++) {
      this.words[w] = ((b[at + w * 4]! << 24) | (b[at + w * 4 + 1]! << 16) | (b[at + w * 4 + 2]! << 8) | b[at + w * 4 + 3]!) >>> 0;
    }
    return true;
  }
}

const SCRATCH_KEY = new AddressKey();

/** An immutable set of CIDR blocks. */
export class CidrSet {
  private readonly v4: IntervalTable;
  private readonly v6: IntervalTable;
  readonly blocks: readonly Cidr[];

  constructor(blocks: readonly Cidr[]) {
    this.blocks = blocks;
    this.v4 = new IntervalTable(1, blocks.filter((b) => b.family === 4));
    this.v6 = new IntervalTable(4, blocks.filter((b) => b.family === 6));
  }

  /** Parses the texts (see parseCidrList for errors). */
  static parse(texts: readonly string[], label?: string): CidrSet {
    return new CidrSet(parseCidrList(texts, label));
  }

  get isEmpty(): boolean {
    return this.blocks.length === 0;
  }

  /**
   * True if the address (IPv4, IPv6, IPv4-mapped IPv6; a zone index such as %eth0 is ignored) lies
   * in a block. False for text that is not an address. O(log n), no allocation.
   */
  has(address: string): boolean {
    return SCRATCH_KEY.set(address) && this.hasKey(SCRATCH_KEY);
  }

  /** Same as `has` for an address already parsed. */
  hasKey(key: AddressKey): boolean {
    return key.family === 4 ? this.v4.contains(key.words) : this.v6.contains(key.words);
  }
}
