/**
 * A pino logger whose JSON lines the test reads back, for access-log assertions.
 */
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

export interface LogRecord {
  msg?: string;
  service?: string;
  [field: string]: unknown;
}

export interface CapturedLog {
  readonly logger: Logger;
  readonly records: LogRecord[];
  /** Access-log records (msg "connection"). */
  access(): LogRecord[];
  /** Resolves with the first record (already written or still to come) that satisfies `match`. */
  waitFor(match: (record: LogRecord) => boolean): Promise<LogRecord>;
  /** Resolves once `count` access records have been written. */
  waitForAccess(count: number): Promise<LogRecord[]>;
}

export function captureLog(): CapturedLog {
  const records: LogRecord[] = [];
  const waiters: { match: (record: LogRecord) => boolean; resolve: (record: LogRecord) => void }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        const record = JSON.parse(line) as LogRecord;
        records.push(record);
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (waiters[i].match(record)) {
            waiters[i].resolve(record);
            waiters.splice(i, 1);
          }
        }
      }
      done();
    },
  });
  const logger = pino({ base: null }, sink);
  const waitFor = (match: (record: LogRecord) => boolean): Promise<LogRecord> => {
    const found = records.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => waiters.push({ match, resolve }));
  };
  const access = (): LogRecord[] => records.filter((record) => record.msg === 'connection');
  return {
    logger,
    records,
    access,
    waitFor,
    async waitForAccess(count: number): Promise<LogRecord[]> {
      await waitFor(() => access().length >= count);
      return access();
    },
  };
}
