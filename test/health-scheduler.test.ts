/**
 * The scheduler with fake checkers and short intervals: rise/fall transitions as events, no
 * overlapping probes per backend, passive observations, remove/stop leaving nothing behind, and
 * one end-to-end run with the real tcp checker against a server that stops and comes back.
 * Waits are on events; nothing asserts on time.
 */
import { once } from 'node:events';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort } from './helpers/net.js';
import {
  checkDelay,
  createChecker,
  createHealthScheduler,
  replay,
  initialState,
  seededRandom,
  type CheckResult,
  type HealthChangeEvent,
  type HealthChecker,
  type HealthResultEvent,
  type HealthScheduler,
  type HealthTarget,
} from '../src/health/index.js';

const pass = (): CheckResult => ({ ok: true, durationMs: 1, detail: 'fake pass' });
const fail = (): CheckResult => ({ ok: false, durationMs: 1, kind: 'status', reason: 'fake failure' });

/** Resolves when the signal aborts, with an aborted result (what real checkers do). */
function untilAborted(signal: AbortSignal | undefined): Promise<CheckResult> {
  return new Promise((resolve) => {
    const done = (): void => resolve({ ok: false, durationMs: 0, kind: 'aborted', reason: 'aborted' });
    if (signal?.aborted) done();
    else signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * A checker that answers each backend (by port) from a script of results; once a script is used
 * up it hangs until aborted and reports that through `exhausted`.
 */
function scripted(scripts: Record<number, boolean[]>): HealthChecker & { exhausted: Promise<void>; calls: Map<number, number> } {
  const calls = new Map<number, number>();
  let remaining = Object.keys(scripts).length;
  let markExhausted!: () => void;
  const exhausted = new Promise<void>((resolve) => (markExhausted = resolve));
  return {
    type: 'tcp',
    calls,
    exhausted,
    check: async (target: HealthTarget, _timeout: number, signal?: AbortSignal) => {
      const n = calls.get(target.port) ?? 0;
      calls.set(target.port, n + 1);
      const script = scripts[target.port];
      if (n < script.length) return script[n] ? pass() : fail();
      if (n === script.length && --remaining === 0) markExhausted();
      return untilAborted(signal);
    },
  };
}

function record(scheduler: HealthScheduler): { results: HealthResultEvent[]; changes: HealthChangeEvent[] } {
  const results: HealthResultEvent[] = [];
  const changes: HealthChangeEvent[] = [];
  scheduler.on('result', (e) => results.push(e));
  scheduler.on('change', (e) => changes.push(e));
  return { results, changes };
}

const fast = { intervalMs: 2, firstCheckDelayMs: 0, jitter: 0 } as const;
const target = (port: number): HealthTarget => ({ host: '127.0.0.1', port });

describe('scheduler transitions', () => {
  it('feeds each probe to the reducer and emits up/down changes (rise 2, fall 3)', async () => {
    const script = [true, false, false, false, true, false, true, true, false];
    const checker = scripted({ 1: script });
    const scheduler = createHealthScheduler({ checker, ...fast, rise: 2, fall: 3, initial: 'fully-up' }, [{ id: 'a', target: target(1) }]);
    const { results, changes } = record(scheduler);
    await checker.exhausted;
    await scheduler.stop();

    expect(results.map((r) => r.passed)).toEqual(script);
    expect(results.every((r) => r.source === 'active' && r.backend === 'a')).toBe(true);
    expect(results.map((r) => r.state)).toEqual(replay(initialState('fully-up', 2, 3), script, 2, 3));
    expect(changes).toEqual([
      { backend: 'a', health: 'down', previous: 'up', reason: 'status: fake failure' },
      { backend: 'a', health: 'up', previous: 'down', reason: 'fake pass' },
    ]);
  });

  it('starts backends in the configured initial state (HAProxy default: up, down at first failure)', async () => {
    const checker = scripted({ 1: [false], 2: [true] });
    const scheduler = createHealthScheduler({ checker, ...fast }, [{ id: 'up-default', target: target(1) }]);
    scheduler.add({ id: 'also', target: target(2) });
    expect(scheduler.health('up-default')).toBe('up');
    const { changes } = record(scheduler);
    await checker.exhausted;
    await scheduler.stop();
    expect(changes).toEqual([{ backend: 'up-default', health: 'down', previous: 'up', reason: 'status: fake failure' }]);
  });

  it('keeps backends apart', async () => {
    const checker = scripted({ 1: [false, false], 2: [true, true], 3: [false, true] });
    const scheduler = createHealthScheduler({ checker, ...fast, rise: 1, fall: 2, initial: 'fully-up' }, [
      { id: 'a', target: target(1) },
      { id: 'b', target: target(2) },
      { id: 'c', target: target(3) },
    ]);
    const { changes } = record(scheduler);
    await checker.exhausted;
    expect(scheduler.states()).toEqual(
      new Map([
        ['a', { health: 'down', streak: 0 }],
        ['b', { health: 'up', streak: 0 }],
        ['c', { health: 'up', streak: 0 }],
      ]),
    );
    await scheduler.stop();
    expect(changes.map((c) => `${c.backend}:${c.health}`)).toEqual(['a:down']);
  });
});

describe('scheduler timing guarantees', () => {
  it('never runs two probes of one backend at once, even when probes outlast the interval', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let probes = 0;
    let enough!: () => void;
    const done = new Promise<void>((resolve) => (enough = resolve));
    const slow: HealthChecker = {
      type: 'tcp',
      check: async (_t, _timeout, signal) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        // The fake server answers after 20 ms; the interval is 1 ms.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 20);
          signal?.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
        });
        inFlight--;
        if (++probes === 5) enough();
        return pass();
      },
    };
    const scheduler = createHealthScheduler({ checker: slow, intervalMs: 1, firstCheckDelayMs: 0 }, [{ id: 'a', target: target(1) }]);
    // Passive observations never start probes either.
    for (let i = 0; i < 50; i++) scheduler.observe('a', true);
    await done;
    await scheduler.stop();
    expect(maxInFlight).toBe(1);
  });

  it('jitters delays within interval x (1 +/- jitter), reproducibly per seed', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const delays = Array.from({ length: 1000 }, () => checkDelay(2000, 0.1, a));
    expect(Array.from({ length: 1000 }, () => checkDelay(2000, 0.1, b))).toEqual(delays);
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(1800);
    expect(Math.max(...delays)).toBeLessThan(2200);
    expect(Math.max(...delays) - Math.min(...delays)).toBeGreaterThan(300); // it does spread
    expect(checkDelay(2000, 0, seededRandom(1))).toBe(2000);
    expect(seededRandom(7)()).not.toBe(seededRandom(8)());
  });
});

describe('scheduler passive observations (observe layer4)', () => {
  /** A scheduler whose active probes never run during the test (first probe in an hour). */
  function passiveOnly(passiveErrorLimit?: number): HealthScheduler {
    const checker: HealthChecker = { type: 'tcp', check: async () => pass() };
    return createHealthScheduler({ checker, intervalMs: 3_600_000, firstCheckDelayMs: 3_600_000, rise: 2, fall: 3, initial: 'fully-up', passiveErrorLimit }, [
      { id: 'a', target: target(1) },
    ]);
  }

  it('counts each connect failure as a failed check by default', async () => {
    const scheduler = passiveOnly();
    const { results, changes } = record(scheduler);
    expect(scheduler.observe('a', false)).toBe(true);
    expect(scheduler.observe('a', false)).toBe(true);
    expect(scheduler.health('a')).toBe('up');
    scheduler.observe('a', false);
    expect(scheduler.health('a')).toBe('down');
    expect(results.map((r) => r.source)).toEqual(['passive', 'passive', 'passive']);
    expect(changes).toEqual([{ backend: 'a', health: 'down', previous: 'up', reason: 'connect: passive: 1 consecutive connection failure from live traffic' }]);
    await scheduler.stop();
  });

  it('with an error limit, needs that many consecutive failures per failed check; a success resets the count', async () => {
    const scheduler = passiveOnly(2);
    const { results } = record(scheduler);
    scheduler.observe('a', false);
    scheduler.observe('a', true); // reset
    scheduler.observe('a', false);
    expect(results).toHaveLength(0);
    scheduler.observe('a', false);
    expect(results.map((r) => r.state)).toEqual([{ health: 'up', streak: 1 }]);
    // Successes never count as passed checks: they cannot bring a backend back.
    for (let i = 0; i < 10; i++) scheduler.observe('a', true);
    expect(results).toHaveLength(1);
    await scheduler.stop();
  });

  it('ignores unknown backends and anything after stop', async () => {
    const scheduler = passiveOnly();
    expect(scheduler.observe('nope', false)).toBe(false);
    await scheduler.stop();
    expect(scheduler.observe('a', false)).toBe(false);
  });

  it('goes down passively, then active probes bring it back after rise passes', async () => {
    const checker = scripted({ 1: [true, true] });
    const scheduler = createHealthScheduler({ checker, intervalMs: 2, firstCheckDelayMs: 0, jitter: 0, rise: 2, fall: 1, initial: 'fully-up' }, [
      { id: 'a', target: target(1) },
    ]);
    const { changes } = record(scheduler);
    scheduler.observe('a', false);
    expect(scheduler.health('a')).toBe('down');
    await checker.exhausted;
    await scheduler.stop();
    expect(changes.map((c) => c.health)).toEqual(['down', 'up']);
  });
});

describe('scheduler lifecycle', () => {
  it('stop() aborts in-flight probes, clears timers and emits nothing afterwards', async () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    let started!: () => void;
    const probing = new Promise<void>((resolve) => (started = resolve));
    const aborted: boolean[] = [];
    const hanging: HealthChecker = {
      type: 'tcp',
      check: async (t, _timeout, signal) => {
        if (t.port === 1) started();
        const result = await untilAborted(signal);
        aborted.push(signal?.aborted ?? false);
        return result;
      },
    };
    const scheduler = createHealthScheduler({ checker: hanging, intervalMs: 50, firstCheckDelayMs: 0 }, [{ id: 'probing', target: target(1) }]);
    scheduler.add({ id: 'waiting', target: target(2) });
    const { results } = record(scheduler);
    await probing;
    await scheduler.stop();
    expect(aborted.length).toBeGreaterThanOrEqual(1);
    expect(aborted.every(Boolean)).toBe(true);
    expect(results).toHaveLength(0); // aborted probes are not results
    expect(timers()).toBeLessThanOrEqual(before);
    expect(() => scheduler.add({ id: 'late', target: target(3) })).toThrow(expect.objectContaining({ code: 'LB_ERR_CLOSED', component: 'health-scheduler' }));
  });

  it('remove() stops one backend and ignores its in-flight result', async () => {
    const checker = scripted({ 1: [false, false, false, false], 2: [true, true] });
    const scheduler = createHealthScheduler({ checker, ...fast, fall: 1, initial: 'fully-up' }, [{ id: 'gone', target: target(1) }]);
    const { results } = record(scheduler);
    expect(scheduler.remove('gone')).toBe(true);
    expect(scheduler.remove('gone')).toBe(false);
    scheduler.add({ id: 'kept', target: target(2) });
    await once(scheduler, 'result');
    await once(scheduler, 'result');
    await scheduler.stop();
    expect(results.map((r) => r.backend)).toEqual(['kept', 'kept']);
    expect(scheduler.health('gone')).toBeUndefined();
  });

  it('rejects duplicate backends and bad options with typed errors', () => {
    const checker: HealthChecker = { type: 'tcp', check: async () => pass() };
    const scheduler = createHealthScheduler({ checker, firstCheckDelayMs: 3_600_000 }, [{ id: 'a', target: target(1) }]);
    expect(() => scheduler.add({ id: 'a', target: target(2) })).toThrow(expect.objectContaining({ code: 'LB_ERR_DUPLICATE_BACKEND' }));
    void scheduler.stop();
    for (const bad of [{ intervalMs: 0 }, { timeoutMs: -1 }, { rise: 0 }, { fall: 1.5 }, { jitter: 2 }, { passiveErrorLimit: 0 }, { initial: 'sideways' }, { firstCheckDelayMs: -5 }]) {
      expect(() => createHealthScheduler({ checker, ...(bad as object) })).toThrow(expect.objectContaining({ code: 'LB_ERR_INVALID_ARGUMENT' }));
    }
  });

  it('applies HAProxy defaults: inter 2s, timeout = inter, rise 2, fall 3, init-state up', async () => {
    const checker: HealthChecker = { type: 'tcp', check: async () => pass() };
    const scheduler = createHealthScheduler({ checker });
    expect([scheduler.intervalMs, scheduler.timeoutMs, scheduler.rise, scheduler.fall, scheduler.initial]).toEqual([2000, 2000, 2, 3, 'up']);
    await scheduler.stop();
  });

  it('turns a throwing checker into a failed probe instead of dying', async () => {
    const broken: HealthChecker = {
      type: 'tcp',
      check: async () => {
        throw new Error('boom');
      },
    };
    const scheduler = createHealthScheduler({ checker: broken, ...fast, initial: 'fully-up', fall: 1 }, [{ id: 'a', target: target(1) }]);
    const [change] = (await once(scheduler, 'change')) as [HealthChangeEvent];
    await scheduler.stop();
    expect(change.reason).toBe('invalid: checker error: boom');
  });
});

describe('scheduler with the real tcp checker', () => {
  it('marks a backend down when its server stops and up when it returns on the same port', async () => {
    const listen = async (port: number): Promise<net.Server> => {
      const server = net.createServer((socket) => socket.destroy());
      server.listen(port, '127.0.0.1');
      await once(server, 'listening');
      return server;
    };
    // A claimed port, not listen(0): between the close and the listen again below, the kernel
    // could give an ephemeral port to any other test's socket.
    const port = await freePort();
    let server = await listen(port);
    const scheduler = createHealthScheduler(
      { checker: createChecker({ type: 'tcp' }), intervalMs: 10, timeoutMs: 1000, rise: 2, fall: 2, initial: 'fully-down', firstCheckDelayMs: 0, random: seededRandom(42) },
      [{ id: 'db', target: target(port) }],
    );
    try {
      const [up] = (await once(scheduler, 'change')) as [HealthChangeEvent];
      expect(up).toEqual({ backend: 'db', health: 'up', previous: 'down', reason: 'connected' });

      await new Promise((resolve) => server.close(resolve));
      const [down] = (await once(scheduler, 'change')) as [HealthChangeEvent];
      expect(down.health).toBe('down');
      expect(down.reason).toMatch(/^connect: ECONNREFUSED/);

      server = await listen(port);
      const [back] = (await once(scheduler, 'change')) as [HealthChangeEvent];
      expect(back.health).toBe('up');
    } finally {
      await scheduler.stop();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
