/**
 * Real failures: backends are child processes killed by PID while clients connect continuously from
 * 48 loopback sources through a Maglev service with tcp health checks.
 *
 * Asserted in check results and events, not elapsed time (a loaded CI machine runs late timers):
 * no client connection started after the kill fails (connect failures retry on the next
 * candidate); the backend is marked down by at most `fall` failed checks after the kill (after the
 * last one that passed); from its down event on, no new connection attempt reaches it; the clients
 * of the other backends never move; after a restart it is marked up by at most `rise` passing
 * probes and its own clients return to it. The detection, failover (kill → last connection
 * attempt to the dead backend) and recovery times are measured and printed, not asserted.
 */
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckEvent, HealthChange } from '../src/services/index.js';
import { startBalancer, type Balancer } from '../src/proxy/index.js';
import { startBackendProcess, type BackendProcess } from './helpers/backend-process.js';
import { backend, configOf, proxyService } from './helpers/config.js';
import { captureLog } from './helpers/log.js';
import { connectClient, freePort, readAll } from './helpers/net.js';

const INTERVAL = 200;
const RISE = 2;
const FALL = 3;
const SOURCES = Array.from({ length: 48 }, (_, i) => `127.4.${Math.floor(i / 200)}.${(i % 200) + 1}`);
const NAMES = ['b1', 'b2', 'b3'];

let processes: BackendProcess[] = [];
let balancer: Balancer | undefined;
let port = 0;

beforeAll(async () => {
  const ports = await Promise.all(NAMES.map(() => freePort()));
  processes = await Promise.all(NAMES.map((name, i) => startBackendProcess(name, ports[i])));
  balancer = await startBalancer(
    configOf(
      proxyService(
        NAMES.map((name, i) => backend(name, ports[i])),
        {
          name: 'db',
          retries: 2,
          tableSize: 251,
          timeouts: { connect: 1000, idle: 60000, queue: 5000, drain: 1000 },
          healthCheck: { type: 'tcp', interval: INTERVAL, timeout: INTERVAL, rise: RISE, fall: FALL, initial: 'up' },
        },
      ),
    ),
    { logger: captureLog().logger },
  );
  port = balancer.address('db').port;
});

let stopTraffic: () => Promise<void> = async () => {};

afterAll(async () => {
  await stopTraffic();
  await balancer?.close(0);
  await Promise.all(processes.map((child) => child.kill()));
});

interface Outcome {
  source: string;
  backend: string;
  startedAt: number;
}

/** One connection from `source`: the name of the backend that answered, '' if it failed. */
async function once(source: string): Promise<Outcome> {
  const startedAt = performance.now();
  try {
    const socket = await connectClient(port, source);
    const reply = (await readAll(socket)).toString().trim();
    socket.end();
    return { source, backend: reply, startedAt };
  } catch {
    return { source, backend: '', startedAt };
  }
}

/** Clients connecting continuously (`workers` at a time, sources in turn) until stop() is called. */
function load(workers: number) {
  const outcomes: Outcome[] = [];
  let running = true;
  let next = 0;
  const listeners: (() => void)[] = [];
  const worker = async (): Promise<void> => {
    while (running) {
      outcomes.push(await once(SOURCES[next++ % SOURCES.length]));
      for (const listener of listeners.splice(0)) listener();
    }
  };
  const done = Promise.all(Array.from({ length: workers }, worker));
  return {
    outcomes,
    /** Resolves once `count` more connections have completed. */
    async more(count: number): Promise<void> {
      const target = outcomes.length + count;
      while (outcomes.length < target) await new Promise<void>((resolve) => listeners.push(resolve));
    },
    async stop(): Promise<void> {
      running = false;
      await done;
    },
  };
}

/** The health event, with the check results of that backend recorded since the call, up to it. */
function healthEvent(backendName: string, health: 'up' | 'down'): Promise<{ change: HealthChange; at: number; attempts: number; checks: CheckEvent[] }> {
  const checks: CheckEvent[] = [];
  const onCheck = (event: CheckEvent): void => {
    if (event.backend === backendName) checks.push(event);
  };
  balancer?.events.on('check', onCheck);
  return new Promise((resolve) => {
    const listener = (change: HealthChange): void => {
      if (change.backend !== backendName || change.health !== health) return;
      balancer?.events.off('health', listener);
      balancer?.events.off('check', onCheck);
      // Read synchronously, inside the event: no connection can start between the change and this.
      const attempts = (balancer as Balancer).stats()[0].backends.find((row) => row.name === backendName)?.total ?? -1;
      resolve({ change, at: performance.now(), attempts, checks });
    };
    balancer?.events.on('health', listener);
  });
}

/** Results with `ok` after the last result without it: the run that decided a rise or fall. */
function trailingRun(checks: readonly CheckEvent[], ok: boolean): CheckEvent[] {
  let start = checks.length;
  while (start > 0 && checks[start - 1].result.ok === ok) start--;
  return checks.slice(start);
}

describe('a backend process killed under continuous load, then restarted', () => {
  it('fails over without a failed connection, moves only its clients, and takes them back', async () => {
    const b = balancer as Balancer;
    // Where each source goes while everything is up.
    const baseline = new Map<string, string>();
    for (const source of SOURCES) baseline.set(source, (await once(source)).backend);
    expect([...baseline.values()].every((name) => NAMES.includes(name))).toBe(true);
    const counts = NAMES.map((name) => [...baseline.values()].filter((owner) => owner === name).length);
    const victimIndex = counts.indexOf(Math.max(...counts));
    const victim = processes[victimIndex];
    const victimSources = SOURCES.filter((source) => baseline.get(source) === victim.name);

    const traffic = load(6);
    stopTraffic = () => traffic.stop();
    await traffic.more(100);

    // Kill it; follow its attempt counter to find the last connection that tried it.
    const down = healthEvent(victim.name, 'down');
    const attemptsOf = (): number => b.stats()[0].backends[victimIndex].total;
    let attempts = attemptsOf();
    const killedAt = performance.now();
    let lastAttemptAt = killedAt;
    const watch = setInterval(() => {
      const now = attemptsOf();
      if (now !== attempts) {
        attempts = now;
        lastAttemptAt = performance.now();
      }
    }, 5);
    await victim.kill();
    // From here the kernel refuses its port: connections in flight at the kill were lost with it
    // (no proxy can save those); every connection that starts later must succeed.
    const exitedAt = performance.now();
    const { at: downAt, change, attempts: attemptsAtDown, checks: beforeDown } = await down;
    await traffic.more(300);
    clearInterval(watch);
    const failoverMs = lastAttemptAt - killedAt;
    const detectMs = downAt - killedAt;
    // Every check result of the victim up to its down event, from the kill on (active or passive).
    const fallRun = trailingRun(beforeDown, false);
    process.stderr.write(
      `[health-failover] kill → marked down ${detectMs.toFixed(0)} ms (${change.reason}) after ${fallRun.length} failed checks (${fallRun.map((event) => event.source).join(', ')}); kill → last connection attempt to it ${failoverMs.toFixed(0)} ms; (fall+1) × interval = ${(FALL + 1) * INTERVAL} ms\n`,
    );
    expect(fallRun.length).toBeGreaterThanOrEqual(1);
    expect(fallRun.length).toBeLessThanOrEqual(FALL);
    // From its down event on, no new connection attempt reached it (read before the restart).
    expect(attemptsOf()).toBe(attemptsAtDown);

    // Restart on the same port: it must come back, and its clients with it.
    const up = healthEvent(victim.name, 'up');
    const restartedAt = performance.now();
    processes[victimIndex] = await startBackendProcess(victim.name, victim.port);
    const listeningAt = performance.now();
    const { at: upAt, checks: beforeUp } = await up;
    const recoverMs = upAt - listeningAt;
    // Nothing but probes reach a down backend, so its passes before the up event are active ones.
    const riseRun = trailingRun(beforeUp, true);
    process.stderr.write(
      `[health-failover] restarted and listening → marked up ${recoverMs.toFixed(0)} ms after ${riseRun.length} passing probes; (rise+1) × interval = ${(RISE + 1) * INTERVAL} ms\n`,
    );
    expect(riseRun.length).toBeGreaterThanOrEqual(1);
    expect(riseRun.length).toBeLessThanOrEqual(RISE);
    expect(riseRun.every((event) => event.source === 'active')).toBe(true);
    await traffic.more(150);
    await traffic.stop();

    const outcomes = traffic.outcomes;
    const lost = outcomes.filter((outcome) => outcome.backend === '' && outcome.startedAt < exitedAt);
    process.stderr.write(`[health-failover] ${outcomes.length} connections; ${lost.length} in flight to it when it was killed were lost with it\n`);
    // No client connection that started after the kill failed.
    expect(outcomes.filter((outcome) => outcome.backend === '' && outcome.startedAt >= exitedAt)).toEqual([]);
    // Clients of the other backends never moved.
    const moved = outcomes.filter((outcome) => baseline.get(outcome.source) !== victim.name && outcome.backend !== baseline.get(outcome.source));
    expect(moved).toEqual([]);
    // Between down and up, nothing went to the dead backend; its clients went elsewhere.
    const whileDown = outcomes.filter((outcome) => outcome.startedAt > downAt && outcome.startedAt < restartedAt);
    expect(whileDown.length).toBeGreaterThan(0);
    expect(whileDown.filter((outcome) => outcome.backend === victim.name)).toEqual([]);
    expect(whileDown.some((outcome) => victimSources.includes(outcome.source))).toBe(true);
    // After it came back, its own clients return to it.
    const afterUp = outcomes.filter((outcome) => outcome.startedAt > upAt && victimSources.includes(outcome.source));
    expect(afterUp.length).toBeGreaterThan(0);
    expect(afterUp.filter((outcome) => outcome.backend !== victim.name)).toEqual([]);
    const status = b.stats()[0].backends[victimIndex];
    expect(status).toMatchObject({ name: victim.name, health: 'up', state: 'active' });
  }, 30_000);

  it('active checks alone (no client traffic) mark a killed backend down after `fall` failed probes', async () => {
    const index = 0;
    const victim = processes[index];
    const down = healthEvent(victim.name, 'down');
    const killedAt = performance.now();
    await victim.kill();
    const { at, change, checks } = await down;
    const fallRun = trailingRun(checks, false);
    process.stderr.write(`[health-failover] no traffic: kill → marked down ${(at - killedAt).toFixed(0)} ms (${change.reason}) after ${fallRun.length} failed probes\n`);
    expect(change.reason).toMatch(/^connect: /);
    expect(fallRun.length).toBeGreaterThanOrEqual(1);
    expect(fallRun.length).toBeLessThanOrEqual(FALL);
    expect(fallRun.every((event) => event.source === 'active')).toBe(true);
    expect((balancer as Balancer).stats()[0].backends[index].lastCheck).toMatchObject({ ok: false, source: 'active' });
    const up = healthEvent(victim.name, 'up');
    processes[index] = await startBackendProcess(victim.name, victim.port);
    await up;
  }, 30_000);
});
