/**
 * The lifecycle driver (src/runtime/lifecycle.ts) over a runtime whose reloads and drains the test
 * settles by hand, with signals emitted by the test: reload coalescing, refused files, the stop
 * sequence and its log lines, a second stop signal. No process signal and no timer is involved.
 */
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { loadConfig, readConfig, type Config } from '../src/config/index.js';
import { LbError, UnknownServiceError, UpgradeError } from '../src/errors.js';
import type { ServiceStatusStats } from '../src/proxy/index.js';
import { DRAIN_PROGRESS_MS, runLifecycle } from '../src/runtime/lifecycle.js';
import type { HandoverSockets, StartSuccessor, Successor, SuccessorOptions } from '../src/runtime/handover.js';
import type { Listening, ReloadOutcome, Runtime, StopReason } from '../src/runtime/runtime.js';
import type { ServiceStateEvents } from '../src/services/index.js';
import { captureLog, type CapturedLog } from './helpers/log.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function configText(port: number, drain = '2s', admin = false): string {
  return [...(admin ? ['admin: { listen: "127.0.0.1:0" }'] : []), 'services:', '  - name: svc', `    listen: 127.0.0.1:${port}`, `    timeouts: { drain: ${drain} }`, '    backends:', '      - { name: b1, address: 127.0.0.1:1 }', ''].join('\n');
}

/** A promise with its settle functions, for steps the test releases. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A runtime whose every reload and stop waits for the test to settle it; emits 'reload' when asked for one. */
class ManualRuntime extends EventEmitter implements Runtime {
  readonly workers = 1;
  readonly logFields = {};
  readonly reloads: { next: Config; done: ReturnType<typeof deferred<ReloadOutcome>> }[] = [];
  readonly stops: number[] = [];
  readonly stopReasons: (StopReason | undefined)[] = [];
  /** How many times the sockets handed over were released. */
  released = 0;
  readonly drained = deferred<void>();
  /** Open connections /stats reports, per service. */
  open = 0;
  readonly admin = {
    stats: (): ServiceStatusStats[] => [{ name: 'svc', current: this.open } as ServiceStatusStats],
    setState: (service: string): never => {
      throw new UnknownServiceError({ service, known: [] });
    },
    changeBackends: (service: string): Promise<never> => Promise.reject(new UnknownServiceError({ service, known: [] })),
    events: new EventEmitter<ServiceStateEvents>(),
  };

  listening(): Listening[] {
    return [{ service: 'svc', listen: { host: '127.0.0.1', port: 1 }, backends: 1 }];
  }

  reload(next: Config): Promise<ReloadOutcome> {
    const done = deferred<ReloadOutcome>();
    this.reloads.push({ next, done });
    this.emit('reload');
    return done.promise;
  }

  async stop(drainMs: number, reason?: StopReason): Promise<void> {
    this.stops.push(drainMs);
    this.stopReasons.push(reason);
  }

  handoverSockets(): Promise<HandoverSockets> {
    return Promise.resolve({ sockets: [{ name: '127.0.0.1:7001', fd: 99 }], release: () => void this.released++ });
  }

  stopped(): Promise<void> {
    return this.drained.promise;
  }
}

async function start(
  admin = false,
  startSuccessor?: StartSuccessor,
): Promise<{ runtime: ManualRuntime; signals: EventEmitter; log: CapturedLog; file: string; exited: Promise<number>; clock: ManualClock }> {
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-lifecycle-'));
  dirs.push(dir);
  const file = join(dir, 'l4lb.yaml');
  writeFileSync(file, configText(7001, '2s', admin));
  const runtime = new ManualRuntime();
  const signals = new EventEmitter();
  const log = captureLog();
  const exit = deferred<number>();
  const clock = new ManualClock();
  await runLifecycle({
    file,
    config: await loadConfig(file),
    hash: 'start',
    clock,
    // In this thread: a worker thread cannot load the TypeScript sources vitest runs (the worker
    // path is covered through dist/ by test/reload-limits.test.ts).
    read: (path) => readConfig(path),
    runtime,
    logger: log.logger,
    signals,
    startSuccessor,
    exit: (code) => exit.resolve(code),
    fail: (error) => {
      throw error;
    },
  });
  return { runtime, signals, log, file, exited: exit.promise, clock };
}

/** Waits until `runtime` has been asked for `count` reloads (each one reads the file first). */
async function reloadsAsked(runtime: ManualRuntime, count: number): Promise<void> {
  while (runtime.reloads.length < count) await once(runtime, 'reload');
}

describe('the lifecycle driver', () => {
  it('says what listens once the signals are handled', async () => {
    const { log } = await start();
    expect(log.records.find((record) => record.msg === 'listening')).toMatchObject({ service: 'svc', listen: '127.0.0.1:1', backends: 1 });
  });

  it('coalesces SIGHUPs that arrive during a reload into one more reload, of the file as it is then', async () => {
    const { runtime, signals, log, file } = await start();
    writeFileSync(file, configText(7002));
    signals.emit('SIGHUP', 'SIGHUP');
    await reloadsAsked(runtime, 1);
    writeFileSync(file, configText(7003));
    signals.emit('SIGHUP', 'SIGHUP');
    writeFileSync(file, configText(7004));
    signals.emit('SIGHUP', 'SIGHUP');
    expect(log.records.filter((record) => record.msg === 'SIGHUP: a reload is in progress; the file is read again when it ends')).toHaveLength(2);
    runtime.reloads[0].done.resolve('applied');
    await log.waitFor((record) => record.msg === 'reloaded');
    await reloadsAsked(runtime, 2);
    runtime.reloads[1].done.resolve('applied');
    await log.waitFor((record) => record.msg === 'reloaded' && log.records.filter((each) => each.msg === 'reloaded').length === 2);
    expect(runtime.reloads.map(({ next }) => next.services.map((service) => (service.mode === 'proxy' ? service.listen[0]?.port : 0)))).toEqual([[7002], [7004]]);
  });

  it('refuses a bad file without asking the runtime, and a runtime refusal keeps the previous configuration', async () => {
    const { runtime, signals, log, file } = await start();
    writeFileSync(file, 'services: [ { name: svc } ]\n');
    signals.emit('SIGHUP', 'SIGHUP');
    const refused = await log.waitFor((record) => record.msg === 'reload refused: still running the previous configuration');
    expect((refused.problems as string[]).length).toBeGreaterThan(0);
    expect(runtime.reloads).toHaveLength(0);

    writeFileSync(file, configText(7005));
    signals.emit('SIGHUP', 'SIGHUP');
    await reloadsAsked(runtime, 1);
    runtime.reloads[0].done.reject(new LbError('LB_ERR_LISTEN', 'cannot listen on 127.0.0.1:7005: address already in use'));
    const second = await log.waitFor((record) => record.msg === 'reload refused: still running the previous configuration' && record !== refused);
    expect(second).toMatchObject({ code: 'LB_ERR_LISTEN', problems: ['cannot listen on 127.0.0.1:7005: address already in use'] });
    expect(log.records.some((record) => record.msg === 'reloaded')).toBe(false);
  });

  it('writes no "reloaded" line when some workers refused the file', async () => {
    const { runtime, signals, log, file } = await start();
    writeFileSync(file, configText(7006));
    signals.emit('SIGHUP', 'SIGHUP');
    await reloadsAsked(runtime, 1);
    runtime.reloads[0].done.resolve('partial');
    // The next reload compares against the file the workers that accepted it run.
    signals.emit('SIGHUP', 'SIGHUP');
    await reloadsAsked(runtime, 2);
    runtime.reloads[1].done.resolve('applied');
    await log.waitFor((record) => record.msg === 'reloaded');
    expect(log.records.filter((record) => record.msg === 'reloaded')).toHaveLength(1);
  });

  it('stops: drains for the largest drain timeout, logs stopping then stopped, exits 0; a second signal ends connections now', async () => {
    const { runtime, signals, log, exited } = await start();
    signals.emit('SIGTERM', 'SIGTERM');
    const stopping = await log.waitFor((record) => record.msg === 'stopping: no new connections, draining open ones');
    expect(stopping).toMatchObject({ signal: 'SIGTERM', drainMs: 2000 });
    expect(runtime.stops).toEqual([2000]);
    signals.emit('SIGHUP', 'SIGHUP');
    signals.emit('SIGINT', 'SIGINT');
    await log.waitFor((record) => record.msg === 'second stop signal: closing open connections now');
    expect(runtime.stops).toEqual([2000, 0]);
    expect(log.records.some((record) => record.msg === 'stopped')).toBe(false);
    runtime.drained.resolve();
    expect(await exited).toBe(0);
    expect(log.records.filter((record) => record.msg === 'stopped')).toHaveLength(1);
    expect(runtime.reloads).toHaveLength(0);
  });

  it('logs the connections left every few seconds while it drains, and stops logging when drained', async () => {
    const { runtime, signals, log, exited, clock } = await start();
    runtime.open = 3;
    signals.emit('SIGTERM', 'SIGTERM');
    await log.waitFor((record) => record.msg === 'stopping: no new connections, draining open ones');
    clock.advance(DRAIN_PROGRESS_MS);
    expect(await log.waitFor((record) => record.msg === 'draining: connections left')).toMatchObject({ connections: 3 });
    runtime.open = 1;
    clock.advance(DRAIN_PROGRESS_MS);
    await log.waitFor((record) => record.msg === 'draining: connections left' && record.connections === 1);
    runtime.drained.resolve();
    expect(await exited).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('answers POST /reload with the outcome of the first reload that reads the file after it, coalesced with SIGHUP; refuses it while draining', async () => {
    const { runtime, signals, log, file, exited } = await start(true);
    const admin = String((await log.waitFor((record) => record.msg === 'admin API listening')).admin);
    writeFileSync(file, configText(7010, '2s', true));
    signals.emit('SIGHUP', 'SIGHUP');
    await reloadsAsked(runtime, 1);
    // Asked during the SIGHUP's reload: answered by the next one, which reads the file as it is then.
    writeFileSync(file, configText(7011, '2s', true));
    const answer = fetch(`http://${admin}/reload`, { method: 'POST' });
    await log.waitFor((record) => record.msg === 'reload requested through the admin API: a reload is in progress; the file is read again when it ends');
    runtime.reloads[0].done.resolve('applied');
    await reloadsAsked(runtime, 2);
    expect(runtime.reloads[1].next.services.map((service) => (service.mode === 'proxy' ? service.listen[0]?.port : 0))).toEqual([7011]);
    runtime.reloads[1].done.reject(new LbError('LB_ERR_LISTEN', 'cannot listen on 127.0.0.1:7011: address already in use'));
    const response = await answer;
    expect(response.status).toBe(422);
    expect(await response.json()).toMatchObject({
      error: { code: 'reload-refused', problems: ['cannot listen on 127.0.0.1:7011: address already in use'] },
      reload: { result: 'failure', trigger: 'admin API', code: 'LB_ERR_LISTEN' },
    });

    signals.emit('SIGTERM', 'SIGTERM');
    await log.waitFor((record) => record.msg === 'stopping: no new connections, draining open ones');
    const refused = await fetch(`http://${admin}/reload`, { method: 'POST' });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ error: { code: 'stopping' } });
    const stats = (await (await fetch(`http://${admin}/stats`)).json()) as { drain: { signal: string; connections: number } };
    expect(stats.drain).toMatchObject({ signal: 'SIGTERM', connections: 0 });
    runtime.drained.resolve();
    expect(await exited).toBe(0);
    expect(runtime.reloads).toHaveLength(2);
  });

  it('abandons a reload that is still reading when a stop begins', async () => {
    const { runtime, signals, log, exited } = await start();
    signals.emit('SIGHUP', 'SIGHUP');
    signals.emit('SIGTERM', 'SIGTERM');
    await log.waitFor((record) => record.msg === 'reload abandoned: stopping');
    runtime.drained.resolve();
    expect(await exited).toBe(0);
    expect(runtime.reloads).toHaveLength(0);
  });

  describe('upgrade (SIGUSR2, POST /upgrade)', () => {
    /** A successor start the test settles, recording what it was handed. */
    function manualSuccessor(): { start: StartSuccessor; asked: SuccessorOptions[]; called: Promise<void>; outcome: ReturnType<typeof deferred<Successor>> } {
      const asked: SuccessorOptions[] = [];
      const outcome = deferred<Successor>();
      const called = deferred<void>();
      return {
        asked,
        outcome,
        called: called.promise,
        start: (options) => {
          asked.push(options);
          called.resolve();
          return outcome.promise;
        },
      };
    }

    it('hands the runtime\'s sockets and the admin socket to the new l4lb, then stops accepting and drains with no cleanup outside the process', async () => {
      const successor = manualSuccessor();
      const { runtime, signals, log, exited } = await start(true, successor.start);
      const admin = String((await log.waitFor((record) => record.msg === 'admin API listening')).admin);
      signals.emit('SIGUSR2', 'SIGUSR2');
      signals.emit('SIGUSR2', 'SIGUSR2');
      await log.waitFor((record) => record.msg === 'upgrade requested: one is in progress; answered with its outcome');
      await successor.called;
      expect(successor.asked).toHaveLength(1);
      expect(successor.asked[0].sockets.map(({ name }) => name)).toEqual(['127.0.0.1:7001', 'admin']);
      expect(runtime.stops).toEqual([]);
      successor.outcome.resolve({ pid: 4242, readyMs: 12 });
      const ready = await log.waitFor((record) => record.msg === 'upgrade: the new l4lb is ready; this one stops accepting and drains');
      expect(ready).toMatchObject({ pid: 4242 });
      expect(await log.waitFor((record) => record.msg === 'stopping: no new connections, draining open ones')).toMatchObject({ signal: 'SIGUSR2', drainMs: 2000 });
      expect(runtime.stopReasons).toEqual(['handover']);
      expect(runtime.released).toBe(1);
      // The new l4lb answers on the admin socket: this one no longer accepts there.
      await expect(fetch(`http://${admin}/stats`)).rejects.toThrow();
      runtime.drained.resolve();
      expect(await exited).toBe(0);
    });

    it('serves on when the new l4lb fails, logs why, and answers POST /upgrade with the problems', async () => {
      const { runtime, signals, log } = await start(true, () =>
        Promise.reject(new UpgradeError({ failure: 'exited', pid: 77 }, ['upgrade: the new l4lb (PID 77) exited before it was ready (exit code 1)', 'l4lb.yaml: services[0].listen: expected an address'])),
      );
      const admin = String((await log.waitFor((record) => record.msg === 'admin API listening')).admin);
      signals.emit('SIGUSR2', 'SIGUSR2');
      const failed = await log.waitFor((record) => record.msg === 'upgrade failed: still serving with this process');
      expect(failed).toMatchObject({ code: 'LB_ERR_UPGRADE', failure: 'exited', pid: 77 });
      expect(failed.problems).toContain('l4lb.yaml: services[0].listen: expected an address');
      const response = await fetch(`http://${admin}/upgrade`, { method: 'POST' });
      expect(response.status).toBe(422);
      expect(await response.json()).toMatchObject({ error: { code: 'upgrade-failed', failure: 'exited', pid: 77, problems: ['upgrade: the new l4lb (PID 77) exited before it was ready (exit code 1)', 'l4lb.yaml: services[0].listen: expected an address'] } });
      expect(runtime.stops).toEqual([]);
      expect(runtime.released).toBe(2);
      expect((await fetch(`http://${admin}/stats`)).status).toBe(200);
    });

    it('answers POST /upgrade with the new PID once it is ready, and refuses an upgrade while stopping', async () => {
      const successor = manualSuccessor();
      const { runtime, log, exited } = await start(true, successor.start);
      const admin = String((await log.waitFor((record) => record.msg === 'admin API listening')).admin);
      const answer = fetch(`http://${admin}/upgrade`, { method: 'POST' });
      await log.waitFor((record) => record.msg === 'upgrade requested through the admin API: starting a new l4lb from the files on disk');
      successor.outcome.resolve({ pid: 4343, readyMs: 5 });
      const response = await answer;
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ upgrade: { result: 'success', pid: 4343, previous: process.pid } });
      expect(runtime.stopReasons).toEqual(['handover']);
      runtime.drained.resolve();
      expect(await exited).toBe(0);
    });
  });
});
