/**
 * Per-source limits with an injected clock: rate parsing, concurrent and rate limits at their
 * boundaries, source keys (IPv6 /64, IPv4-mapped), and the memory bound under a flood of distinct
 * sources. A property compares the limiter with an unbounded exact model: while nothing is
 * forgotten they agree exactly; with a small table the limiter only ever errs towards admitting.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isLbError } from '../src/errors.js';
import { SourceLimiter, parseRate, type Admission, type SourceLease } from '../src/rules/index.js';

function lease(admission: Admission): SourceLease {
  if (admission.verdict !== 'admitted') throw new Error(`expected admitted, got ${admission.verdict}`);
  return admission.lease;
}

function messageOf(call: () => unknown): string {
  try {
    call();
  } catch (error) {
    if (isLbError(error)) return `${error.code}: ${error.message}`;
    throw error;
  }
  return 'no error';
}

describe('parseRate', () => {
  it.each([
    ['10/s', { count: 10, periodMs: 1000 }],
    ['1/s', { count: 1, periodMs: 1000 }],
    ['5/m', { count: 5, periodMs: 60_000 }],
    ['999999999/m', { count: 999_999_999, periodMs: 60_000 }],
  ])('%s', (text, rate) => {
    expect(parseRate(text)).toEqual(rate);
  });

  it.each(['', '0/s', '10', '10/', '/s', '10/h', '10/S', '10 /s', ' 10/s', '1e3/s', '-1/s', '1.5/s', '010/s', '1000000000/s', '10/sec'])('%j is refused', (text) => {
    expect(messageOf(() => parseRate(text))).toBe(
      `LB_ERR_INVALID_ARGUMENT: rate ${JSON.stringify(text)}: expected "N/s" or "N/m" with N a whole number 1–999999999, e.g. "20/s"`,
    );
  });

  it('bad limiter options are refused with their name', () => {
    expect(messageOf(() => new SourceLimiter({ perSourceConnections: 0 }))).toBe(
      'LB_ERR_INVALID_ARGUMENT: perSourceConnections must be a whole number 1–2147483647, got 0',
    );
    expect(messageOf(() => new SourceLimiter({ maxSources: 0 }))).toBe('LB_ERR_INVALID_ARGUMENT: maxSources must be a whole number 1–16777216, got 0');
    expect(messageOf(() => new SourceLimiter({ ipv6PrefixLength: 129 }))).toBe('LB_ERR_INVALID_ARGUMENT: ipv6PrefixLength must be a whole number 0–128, got 129');
    expect(messageOf(() => new SourceLimiter({ perSourceRate: '5/x' }))).toContain('rate "5/x"');
  });
});

describe('concurrent connections', () => {
  it('admits up to the limit per source, refuses beyond, admits again after a release', () => {
    const limiter = new SourceLimiter({ perSourceConnections: 2 });
    const a1 = lease(limiter.admit('192.0.2.1', 0));
    lease(limiter.admit('192.0.2.1', 0));
    expect(limiter.admit('192.0.2.1', 0).verdict).toBe('over-connections');
    expect(limiter.admit('192.0.2.2', 0).verdict).toBe('admitted');
    expect(limiter.connections('192.0.2.1')).toBe(2);
    a1.release();
    expect(limiter.connections('192.0.2.1')).toBe(1);
    lease(limiter.admit('192.0.2.1', 0));
    expect(limiter.admit('192.0.2.1', 0).verdict).toBe('over-connections');
  });

  it('release is idempotent', () => {
    const limiter = new SourceLimiter({ perSourceConnections: 1 });
    const first = lease(limiter.admit('::1', 0));
    first.release();
    first.release();
    lease(limiter.admit('::1', 0));
    expect(limiter.admit('::1', 0).verdict).toBe('over-connections');
    expect(limiter.stats()).toEqual({ tracked: 1, pinned: 1, evictions: 0 });
  });

  it('without a rate, a source with no connection open is forgotten', () => {
    const limiter = new SourceLimiter({ perSourceConnections: 5 });
    const leases = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((a) => lease(limiter.admit(a, 0)));
    expect(limiter.stats().tracked).toBe(3);
    for (const l of leases) l.release();
    expect(limiter.stats()).toEqual({ tracked: 0, pinned: 0, evictions: 0 });
  });
});

describe('new-connection rate (token bucket, injected clock)', () => {
  it('"3/s": a burst of 3, then one more each 333.3 ms; refused attempts cost nothing', () => {
    const limiter = new SourceLimiter({ perSourceRate: '3/s' });
    const at = (now: number): string => limiter.admit('198.51.100.9', now).verdict;
    expect([at(0), at(0), at(0), at(0)]).toEqual(['admitted', 'admitted', 'admitted', 'over-rate']);
    for (let i = 0; i < 50; i++) expect(at(100)).toBe('over-rate');
    expect(at(333)).toBe('over-rate');
    expect(at(334)).toBe('admitted');
    expect(at(334)).toBe('over-rate');
    expect(at(10_000)).toBe('admitted'); // refilled to the burst size, not beyond
    expect([at(10_000), at(10_000), at(10_000)]).toEqual(['admitted', 'admitted', 'over-rate']);
    expect(limiter.admit('198.51.100.10', 10_000).verdict).toBe('admitted');
  });

  it('"2/m" refills per minute', () => {
    const limiter = new SourceLimiter({ perSourceRate: '2/m' });
    const at = (now: number): string => limiter.admit('2001:db8::7', now).verdict;
    expect([at(0), at(1), at(2)]).toEqual(['admitted', 'admitted', 'over-rate']);
    expect(at(29_999)).toBe('over-rate');
    expect(at(30_001)).toBe('admitted');
    expect(at(30_002)).toBe('over-rate');
  });

  it('a clock that stands still or goes back refills nothing and breaks nothing', () => {
    const limiter = new SourceLimiter({ perSourceRate: '1/s' });
    expect(limiter.admit('10.0.0.1', 5000).verdict).toBe('admitted');
    expect(limiter.admit('10.0.0.1', 1000).verdict).toBe('over-rate');
    expect(limiter.admit('10.0.0.1', 5999).verdict).toBe('over-rate');
    expect(limiter.admit('10.0.0.1', 6000).verdict).toBe('admitted');
  });

  it('with both limits, a connection refused for concurrency costs no token', () => {
    const limiter = new SourceLimiter({ perSourceConnections: 1, perSourceRate: '2/s' });
    const held = lease(limiter.admit('10.0.0.1', 0));
    expect(limiter.admit('10.0.0.1', 0).verdict).toBe('over-connections');
    expect(limiter.admit('10.0.0.1', 0).verdict).toBe('over-connections');
    held.release();
    expect(limiter.admit('10.0.0.1', 0).verdict).toBe('admitted');
  });
});

describe('source keys', () => {
  const limiter = new SourceLimiter({ perSourceConnections: 1 });
  it.each([
    ['10.1.2.3', '::ffff:10.1.2.3', true],
    ['10.1.2.3', '10.1.2.4', false],
    ['2001:db8::1', '2001:db8::ffff:1', true],
    ['2001:db8::1', '2001:db8:0:1::1', false],
    ['fe80::1%eth0', 'fe80::2', true],
  ])('%s and %s share a key: %s', (a, b, same) => {
    expect(limiter.sourceKey(a) === limiter.sourceKey(b)).toBe(same);
  });

  it('prefix lengths are configurable', () => {
    const exact = new SourceLimiter({ ipv6PrefixLength: 128, ipv4PrefixLength: 24 });
    expect(exact.sourceKey('2001:db8::1') === exact.sourceKey('2001:db8::2')).toBe(false);
    expect(exact.sourceKey('10.1.2.3') === exact.sourceKey('10.1.2.200')).toBe(true);
  });

  it('one IPv6 host rotating through its /64 is one source', () => {
    const rotating = new SourceLimiter({ perSourceConnections: 3 });
    const verdicts = Array.from({ length: 5 }, (_, i) => rotating.admit(`2001:db8:1:2::${(i + 1).toString(16)}`, 0).verdict);
    expect(verdicts).toEqual(['admitted', 'admitted', 'admitted', 'over-connections', 'over-connections']);
  });

  it('text that is not an address is refused as bad-address', () => {
    expect(limiter.admit('', 0).verdict).toBe('bad-address');
    expect(limiter.admit('localhost', 0).verdict).toBe('bad-address');
  });
});

describe('memory bound', () => {
  it('a flood of 100 000 distinct sources never tracks more than maxSources, and a pinned client keeps its count', () => {
    const limiter = new SourceLimiter({ perSourceConnections: 2, perSourceRate: '100/s', maxSources: 1000 });
    const legit = [lease(limiter.admit('192.0.2.50', 0)), lease(limiter.admit('192.0.2.50', 0))];
    let maxTracked = 0;
    for (let i = 0; i < 100_000; i++) {
      const address = i % 2 ? `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` : `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`;
      lease(limiter.admit(address, i)).release();
      maxTracked = Math.max(maxTracked, limiter.stats().tracked);
    }
    expect(maxTracked).toBe(1000);
    expect(limiter.stats().evictions).toBe(100_000 + 1 - 1000);
    // The well-behaved client with connections open was never forgotten: its limit still holds.
    expect(limiter.connections('192.0.2.50')).toBe(2);
    expect(limiter.admit('192.0.2.50', 100_000).verdict).toBe('over-connections');
    legit[0].release();
    expect(limiter.admit('192.0.2.50', 100_000).verdict).toBe('admitted');
  });

  it('when every slot is pinned, a new source is refused as table-full until one closes', () => {
    const limiter = new SourceLimiter({ perSourceRate: '10/s', maxSources: 3 });
    const held = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((a) => lease(limiter.admit(a, 0)));
    expect(limiter.admit('10.0.0.4', 0).verdict).toBe('table-full');
    expect(limiter.admit('10.0.0.1', 0).verdict).toBe('admitted'); // known sources still served
    held[1].release();
    expect(limiter.admit('10.0.0.4', 0).verdict).toBe('admitted');
    expect(limiter.stats()).toEqual({ tracked: 3, pinned: 3, evictions: 1 });
  });

  it('a source refused for rate is kept young, so a flood of others evicts idle quiet sources first', () => {
    const limiter = new SourceLimiter({ perSourceRate: '1/s', maxSources: 3 });
    lease(limiter.admit('10.0.0.9', 0)).release(); // abuser, bucket now empty
    lease(limiter.admit('10.0.0.1', 1)).release();
    lease(limiter.admit('10.0.0.2', 2)).release();
    expect(limiter.admit('10.0.0.9', 3).verdict).toBe('over-rate'); // seen again: now the youngest
    lease(limiter.admit('10.0.0.3', 4)).release(); // evicts 10.0.0.1, the oldest
    expect(limiter.admit('10.0.0.9', 5).verdict).toBe('over-rate');
  });
});

describe('limiter against an exact unbounded model', () => {
  interface ModelSource {
    active: number;
    tokens: number;
    stamp: number;
  }
  const LIMIT = 3;
  const RATE = { count: 4, periodMs: 1000 };

  const ops = fc.array(
    fc.oneof(
      fc.record({ kind: fc.constant('admit' as const), source: fc.integer({ min: 0, max: 11 }), advance: fc.integer({ min: 0, max: 400 }) }),
      fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
    ),
    { maxLength: 200 },
  );

  function run(maxSources: number, sequence: { kind: 'admit' | 'release'; source?: number; advance?: number; pick?: number }[]): void {
    const limiter = new SourceLimiter({ perSourceConnections: LIMIT, perSourceRate: RATE, maxSources });
    const model = new Map<number, ModelSource>();
    const open: { source: number; lease: SourceLease }[] = [];
    let now = 0;
    for (const op of sequence) {
      if (op.kind === 'release') {
        if (open.length === 0) continue;
        const [closed] = open.splice((op.pick ?? 0) % open.length, 1);
        closed.lease.release();
        (model.get(closed.source) as ModelSource).active--;
        continue;
      }
      now += op.advance ?? 0;
      const source = op.source ?? 0;
      let m = model.get(source);
      if (!m) model.set(source, (m = { active: 0, tokens: RATE.count, stamp: now }));
      const elapsed = now - m.stamp;
      if (elapsed > 0) {
        m.tokens = Math.min(RATE.count, m.tokens + (elapsed * RATE.count) / RATE.periodMs);
        m.stamp = now;
      }
      const expected = m.active >= LIMIT ? 'over-connections' : m.tokens < 1 ? 'over-rate' : 'admitted';
      const got = limiter.admit(`10.0.0.${source}`, now);
      if (maxSources >= 12) {
        expect(got.verdict).toBe(expected);
      } else {
        // Forgetting may only admit more: never refused where the exact model admits, and the
        // concurrency verdict stays exact (a source with connections open is never forgotten).
        if (expected === 'admitted') expect(['admitted', 'table-full']).toContain(got.verdict);
        if (got.verdict === 'over-connections' || expected === 'over-connections') expect(got.verdict).toBe(expected);
        expect(limiter.stats().tracked).toBeLessThanOrEqual(maxSources);
      }
      if (got.verdict === 'admitted') {
        m.active++;
        m.tokens -= 1;
        open.push({ source, lease: got.lease });
      }
      expect(limiter.stats().pinned).toBe([...model.values()].filter((s) => s.active > 0).length);
    }
  }

  it('agrees verdict for verdict when the table holds every source', () => {
    fc.assert(fc.property(ops, (sequence) => run(64, sequence)), { seed: 42, numRuns: 300 });
  });

  it('with a table smaller than the source pool, errs only towards admitting', () => {
    fc.assert(fc.property(ops, fc.integer({ min: 1, max: 6 }), (sequence, maxSources) => run(maxSources, sequence)), { seed: 42, numRuns: 300 });
  });
});
