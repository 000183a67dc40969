/**
 * Units of the source-rule and PROXY header wiring that the socket tests cannot pin down exactly:
 * the refusal log's rate (a manual clock: a first line at once, then one summary per interval
 * while refusals go on, silence once they stop) and the screen for untrusted peers (fast-check, seed 42: any chunking
 * of any bytes passes them through unchanged unless they start with a PROXY signature).
 */
import fc from 'fast-check';
import pino from 'pino';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { encodeForConnection } from '../src/proxy-protocol/index.js';
import { headerScreen } from '../src/proxy/proxy-header.js';
import { REFUSAL_LOG_INTERVAL_MS, RefusalLog } from '../src/proxy/source-rules.js';

function sink(): { logger: pino.Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') records.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ base: null }, stream), records };
}

describe('RefusalLog', () => {
  it('logs the first refusal at once, then one summary per interval while they go on, then nothing', async () => {
    const clock = new ManualClock();
    const { logger, records } = sink();
    const log = new RefusalLog(logger, clock);
    log.note('refused-denied', '10.0.0.1:1');
    for (let i = 0; i < 999; i++) log.note(i % 3 === 0 ? 'refused-over-rate' : 'refused-denied', '10.0.0.2:2');
    clock.advance(REFUSAL_LOG_INTERVAL_MS);
    for (let i = 0; i < 10; i++) log.note('refused-table-full', '10.0.0.3:3');
    clock.advance(REFUSAL_LOG_INTERVAL_MS);
    clock.advance(10 * REFUSAL_LOG_INTERVAL_MS); // quiet: no more lines
    expect(clock.pending).toBe(0);
    log.note('refused-not-allowed', '10.0.0.4:4'); // after a quiet interval: at once again
    log.close();
    await new Promise((resolve) => logger.flush(() => resolve(undefined)));
    expect(records.map(({ msg, client, refused, total }) => ({ msg, client, refused, total }))).toEqual([
      { msg: 'connection refused by source rules', client: '10.0.0.1:1', refused: undefined, total: undefined },
      { msg: 'connections refused by source rules (summary)', client: undefined, refused: { 'refused-over-rate': 333, 'refused-denied': 666 }, total: 999 },
      { msg: 'connections refused by source rules (summary)', client: undefined, refused: { 'refused-table-full': 10 }, total: 10 },
      { msg: 'connection refused by source rules', client: '10.0.0.4:4', refused: undefined, total: undefined },
    ]);
  });
});

describe('headerScreen', () => {
  const signatures = [Buffer.from('PROXY '), Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])];

  /** Feeds `chunks`; returns what was forwarded (flushed at the end) or 'refused'. */
  function run(chunks: Buffer[]): Buffer | 'refused' {
    const screen = headerScreen();
    const out: Buffer[] = [];
    let screening = true;
    for (const chunk of chunks) {
      if (!screening) {
        out.push(chunk);
        continue;
      }
      const verdict = screen.push(chunk);
      if (verdict === 'refuse') return 'refused';
      if (verdict !== 'hold') {
        out.push(verdict);
        screening = false;
      }
    }
    if (screening) out.push(screen.flush() ?? Buffer.alloc(0));
    return Buffer.concat(out);
  }

  /** Splits `bytes` at the given cut points. */
  const split = (bytes: Buffer, cuts: number[]): Buffer[] => {
    const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
    const parts: Buffer[] = [];
    let from = 0;
    for (const point of [...points, bytes.length]) {
      if (point > from) parts.push(bytes.subarray(from, point));
      from = Math.max(from, point);
    }
    return parts;
  };

  it('passes any bytes that do not start with a signature through unchanged, however chunked', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.array(fc.nat(70), { maxLength: 6 }), (bytes, cuts) => {
        const data = Buffer.from(bytes);
        fc.pre(!signatures.some((signature) => data.length >= signature.length && data.subarray(0, signature.length).equals(signature)));
        expect(run(split(data, cuts))).toEqual(data);
      }),
      { seed: 42, numRuns: 2000 },
    );
  });

  it('passes prefixes of the signatures (a client that sent "PRO" and its FIN)', () => {
    for (const signature of signatures) for (let n = 1; n < signature.length; n++) expect(run([signature.subarray(0, n)])).toEqual(signature.subarray(0, n));
  });

  it('refuses every v1 and v2 header, however chunked', () => {
    const headers = [
      encodeForConnection('v1', { source: { address: '10.0.0.1', port: 1 }, destination: { address: '10.0.0.2', port: 2 } }),
      encodeForConnection('v2', { source: { address: '10.0.0.1', port: 1 }, destination: { address: '10.0.0.2', port: 2 } }),
    ];
    fc.assert(
      fc.property(fc.constantFrom(...headers), fc.array(fc.nat(40), { maxLength: 8 }), (header, cuts) => {
        expect(run(split(Buffer.from(header), cuts))).toBe('refused');
      }),
      { seed: 42, numRuns: 500 },
    );
  });
});
