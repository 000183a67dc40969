/**
 * l4lb's own shortages (EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL) are not a backend's
 * failure: the classification, the burst log and the pause of accepting on a manual clock, and a
 * balancer whose backend connects are made to fail (an injected dial) with each code: the backend
 * stays up, the client's line says `local-error`, the service counts the code. The same balancer
 * with ECONNREFUSED injected marks the backend down: the control. The real thing, under a low
 * descriptor limit, is test/local-errors-real.test.ts.
 */
import { connect, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { LOCAL_ERRNOS, localErrnoOf, pausesAccept } from '../src/errors.js';
import { createHealthScheduler, type CheckResult, type HealthChecker } from '../src/health/index.js';
import { startBalancer, type Balancer, type Dial } from '../src/proxy/index.js';
import { LocalErrors } from '../src/proxy/local-errors.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog, type CapturedLog } from './helpers/log.js';
import { peerClosed, readLine, startNamedServer } from './helpers/net.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const SHORTAGE = 'local resource shortage: not counted against backends; accepting paused while it lasts';
const PORTS_SHORTAGE = 'local resource shortage: not counted against backends';
const ENDED = 'local resource shortage ended';

describe('classification', () => {
  it('names exactly the five local codes; a peer’s refusal, reset or timeout is not one', () => {
    expect(LOCAL_ERRNOS.map((code) => localErrnoOf(code))).toEqual(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EADDRNOTAVAIL']);
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'emfile', '', undefined]) expect(localErrnoOf(code)).toBeUndefined();
    expect(LOCAL_ERRNOS.filter(pausesAccept)).toEqual(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);
  });
});

describe('LocalErrors on a manual clock', () => {
  it('logs one line when a burst starts and one when it has been quiet for quietMs; pauses for pauseMs after each descriptor error', () => {
    const clock = new ManualClock();
    const log = captureLog();
    const local = new LocalErrors({ logger: log.logger, clock, pauseMs: 100, quietMs: 1000 });
    expect(local.paused).toBe(false);
    local.record('EMFILE', 'connect', 'svc', 'b1');
    expect(local.paused).toBe(true);
    for (let i = 0; i < 50; i++) local.record('EMFILE', 'connect', 'svc', 'b1');
    local.record('ENFILE', 'accept', 'svc');
    local.refusedWhilePaused();
    clock.advance(99);
    expect(local.paused).toBe(true);
    clock.advance(1);
    expect(local.paused).toBe(false);
    // EADDRNOTAVAIL is counted in the burst but does not pause accepting.
    local.record('EADDRNOTAVAIL', 'connect', 'svc', 'b2');
    expect(local.paused).toBe(false);
    expect(log.records.map((record) => record.msg)).toEqual([SHORTAGE]);
    expect(log.records[0]).toMatchObject({ level: 40, code: 'EMFILE', site: 'connect', service: 'svc', backend: 'b1', pauseMs: 100 });
    clock.advance(999); // the last error was at t=100: quiet until 1100
    expect(log.records).toHaveLength(1);
    clock.advance(1);
    expect(log.records).toHaveLength(2);
    expect(log.records[1]).toMatchObject({ msg: ENDED, errors: { EMFILE: 51, ENFILE: 1, EADDRNOTAVAIL: 1 }, refusedWhilePaused: 1, durationMs: 100 });
    expect(local.inBurst).toBe(false);
    expect(clock.pending).toBe(0);
    // A later error is a new burst, logged again.
    local.record('EADDRNOTAVAIL', 'connect', 'svc', 'b2');
    expect(log.records[2]).toMatchObject({ msg: PORTS_SHORTAGE, code: 'EADDRNOTAVAIL' });
    local.close();
    expect(log.records[3]).toMatchObject({ msg: ENDED, errors: { EADDRNOTAVAIL: 1 } });
    expect(clock.pending).toBe(0);
  });
});

/** A dial whose first calls fail with `codes` (as net.connect reports them: an 'error' after the call), then real connects. */
function failingDial(codes: string[]): Dial & { calls: number } {
  const dial = Object.assign(
    (options: Parameters<Dial>[0]): Socket => {
      dial.calls++;
      const code = codes.shift();
      if (code === undefined) return connect(options);
      const socket = new Socket();
      const error = Object.assign(new Error(`connect ${code} ${options.host}:${options.port}`), { code, syscall: 'connect' });
      process.nextTick(() => socket.destroy(error));
      return socket;
    },
    { calls: 0 },
  );
  return dial;
}

const CHECK = { type: 'tcp' as const, interval: 3_600_000, timeout: 1000, rise: 1, fall: 1, initial: 'fully-up' as const };

async function balancerWith(dial: Dial, clock: ManualClock): Promise<{ balancer: Balancer; log: CapturedLog; port: number }> {
  const b1 = await startNamedServer('b1');
  cleanups.push(() => b1.close());
  const log = captureLog();
  const service = proxyService([backend('b1', b1.port)], { healthCheck: CHECK, retries: 2 });
  const balancer = await startBalancer(configOf(service), { logger: log.logger, clock, dial });
  cleanups.push(() => balancer.close(0));
  return { balancer, log, port: balancer.address('svc').port };
}

/** A client whose end (FIN: undefined, or the error) is watched from before it connects, so a reset at accept is never missed. */
function client(port: number): { socket: Socket; end: Promise<NodeJS.ErrnoException | undefined> } {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  cleanups.push(async () => socket.destroy());
  return { socket, end: peerClosed(socket) };
}

describe('a balancer whose backend connects fail locally', () => {
  it.each(LOCAL_ERRNOS)('%s: the backend stays up and is not retried, the client’s line says local-error, the code is counted', async (code) => {
    const clock = new ManualClock();
    const dial = failingDial([code]);
    const { balancer, log, port } = await balancerWith(dial, clock);
    const first = client(port);
    await first.end;
    const [record] = await log.waitForAccess(1);
    expect(record).toMatchObject({ level: 40, backend: 'b1', end: 'local-error', error: code, retries: 0, connectMs: -1 });
    expect(dial.calls).toBe(1); // no retry: another backend would need the same descriptor
    const [stats] = balancer.stats();
    expect(stats.backends[0]).toMatchObject({ health: 'up', failures: 0 });
    expect(stats.localErrors[code]).toBe(1);
    expect(log.records.filter((line) => line.msg === SHORTAGE || line.msg === PORTS_SHORTAGE)).toHaveLength(1);
    clock.advance(100); // past any pause
    const second = client(port);
    expect(await readLine(second.socket)).toBe('b1');
  });

  it('ECONNREFUSED is the backend’s: passive health marks it down (the control)', async () => {
    const clock = new ManualClock();
    const { balancer, log, port } = await balancerWith(failingDial(['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED']), clock);
    await client(port).end;
    expect((await log.waitForAccess(1))[0]).toMatchObject({ end: 'connect-failed', error: 'ECONNREFUSED' });
    expect(balancer.stats()[0].backends[0]).toMatchObject({ health: 'down', failures: 1 });
    expect(balancer.stats()[0].localErrors.EMFILE).toBe(0);
  });

  it('EMFILE pauses accepting: a client accepted meanwhile is reset and counted, not logged; after the pause clients are served; one line per burst', async () => {
    const clock = new ManualClock();
    const { balancer, log, port } = await balancerWith(failingDial(['EMFILE', 'EMFILE', 'EMFILE']), clock);
    await client(port).end;
    await log.waitForAccess(1);
    const paused = client(port);
    expect(await paused.end).toMatchObject({ code: 'ECONNRESET' });
    expect(balancer.stats()[0].rejected['refused-paused']).toBe(1);
    // Each EMFILE pauses again; the two others come in the same burst.
    for (const count of [2, 3]) {
      clock.advance(100);
      await client(port).end;
      await log.waitForAccess(count);
    }
    clock.advance(100);
    const served = client(port);
    expect(await readLine(served.socket)).toBe('b1');
    served.socket.end();
    await served.end;
    const lines = await log.waitForAccess(4);
    expect(lines.map((line) => line.end)).toEqual(['local-error', 'local-error', 'local-error', 'client-close']);
    expect(log.records.filter((line) => line.msg === SHORTAGE)).toHaveLength(1);
    expect(balancer.stats()[0]).toMatchObject({ localErrors: { EMFILE: 3 }, total: 5 });
    expect(balancer.stats()[0].backends[0].health).toBe('up');
    clock.advance(1000);
    expect(await log.waitFor((line) => line.msg === ENDED)).toMatchObject({ errors: { EMFILE: 3 }, refusedWhilePaused: 1 });
  });
});

describe('active probes', () => {
  it('a probe that fails locally is reported but not fed to the reducer; a refused one is', async () => {
    const results: CheckResult[] = [];
    let next: CheckResult = { ok: false, durationMs: 0, kind: 'local', reason: 'EMFILE: too many open files' };
    const checker: HealthChecker = { type: 'tcp', check: async () => next };
    const scheduler = createHealthScheduler({ checker, intervalMs: 1, firstCheckDelayMs: 0, jitter: 0, rise: 1, fall: 1, initial: 'fully-up' }, [{ id: 'a', target: { host: '127.0.0.1', port: 1 } }]);
    cleanups.push(() => scheduler.stop());
    const healths: string[] = [];
    await new Promise<void>((resolve) => {
      const onResult = (event: { result: CheckResult; state: { health: string } }): void => {
        results.push(event.result);
        healths.push(event.state.health);
        if (results.length < 5) return;
        scheduler.off('result', onResult);
        resolve();
      };
      scheduler.on('result', onResult);
    });
    expect(healths).toEqual(['up', 'up', 'up', 'up', 'up']);
    expect(results.every((result) => !result.ok && result.kind === 'local')).toBe(true);
    next = { ok: false, durationMs: 0, kind: 'connect', reason: 'ECONNREFUSED' };
    const change = await new Promise<string>((resolve) => scheduler.once('change', (event) => resolve(event.health)));
    expect(change).toBe('down');
  });
});
