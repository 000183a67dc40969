/**
 * Zero-downtime upgrade against the built CLI (`l4lb run -c FILE --pidfile PIDFILE`), under load:
 * 50 clients open short connections in a loop (connect, one line echoed, close) through l4lb to
 * an echo backend while an upgrade is triggered by SIGUSR2 or by `l4lb upgrade -c FILE`, with one
 * process and with `workers: 2`. Asserted: no connect refused and no connection failed; the
 * pidfile names the new process, which owns the listening socket (/proc/PID/fd); a flow opened
 * before the upgrade keeps working through the old process, which exits 0 once that flow ends
 * (its workers too). A file made invalid before the upgrade: the old process serves on, logs why,
 * keeps the pidfile, and `l4lb upgrade` exits 1 with the file's problems.
 *
 * The new l4lb is detached from the old one; its stdout is the old one's (this test's pipe), so
 * its log lines are read the same way. Every process is killed by PID at the end.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli, startCli, type CliChild } from './helpers/child.js';
import { freePort, readLine, startEchoServer, type TestServer } from './helpers/net.js';
import { requirement } from './helpers/skip.js';

const procfs = requirement('zero-downtime upgrade (SIGUSR2, l4lb upgrade)', existsSync('/proc/self/fd') ? undefined : 'no /proc (the test reads socket owners there)');
const CLIENTS = 50;
/** Connections that must complete after the new l4lb is ready before the load stops. */
const AFTER_READY = 500;

const dir = mkdtempSync(join(tmpdir(), 'l4lb-upgrade-'));
let backend: TestServer;
const children: CliChild[] = [];
/** Every l4lb process seen (started, forked, or started by an upgrade): killed by PID at the end. */
const pids = new Set<number>();

beforeAll(async () => {
  backend = await startEchoServer();
});

afterEach(async () => {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  pids.clear();
  for (const child of children.splice(0)) await child.kill();
});

afterAll(async () => {
  await backend.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Files {
  readonly config: string;
  readonly pidfile: string;
  readonly listen: number;
  readonly admin: number;
}

function configText(listen: number, admin: number, workers: number): string {
  return [
    `workers: ${workers}`,
    `admin: { listen: "127.0.0.1:${admin}" }`,
    'services:',
    '  - name: echo',
    `    listen: 127.0.0.1:${listen}`,
    '    balance: roundrobin',
    '    timeouts: { drain: 30s }',
    '    backends:',
    `      - { name: b1, address: "127.0.0.1:${backend.port}" }`,
    '',
  ].join('\n');
}

async function files(name: string, workers: number): Promise<Files> {
  const listen = await freePort();
  const admin = await freePort();
  const config = join(dir, `${name}.yaml`);
  writeFileSync(config, configText(listen, admin, workers));
  return { config, pidfile: join(dir, `${name}.pid`), listen, admin };
}

/** Starts `l4lb run`; resolves once it (and, with workers, every worker) listens. */
async function run(setup: Files): Promise<CliChild> {
  const child = startCli(['run', '-c', setup.config, '--pidfile', setup.pidfile]);
  children.push(child);
  if (child.child.pid !== undefined) pids.add(child.child.pid);
  await child.waitForRecord('admin API listening');
  return child;
}

/** PIDs named by the log lines `msg` (worker started, upgrade ready) seen so far. */
function pidsLogged(child: CliChild, msg: string): number[] {
  return child.lines.flatMap((line) => {
    try {
      const record = JSON.parse(line) as { msg?: string; pid?: number };
      return record.msg === msg && typeof record.pid === 'number' ? [record.pid] : [];
    } catch {
      return [];
    }
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Inodes of the sockets listening on 127.0.0.1:`port` (/proc/net/tcp, state 0A). */
function listeningInodes(port: number): string[] {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[1] === local && fields[3] === '0A')
    .map((fields) => fields[9]);
}

/** Whether process `pid` holds socket `inode` among its fds. */
function holds(pid: number, inode: string): boolean {
  const fds = `/proc/${pid}/fd`;
  return readdirSync(fds).some((fd) => {
    try {
      return readlinkSync(join(fds, fd)) === `socket:[${inode}]`;
    } catch {
      return false;
    }
  });
}

interface Load {
  ok: number;
  refused: number;
  failed: number;
  errors: string[];
  /** Resolves once every client has finished its current connection. */
  stop(): Promise<void>;
  /** Resolves once `count` more connections have completed. */
  completed(count: number): Promise<void>;
}

/** `CLIENTS` clients, each in a loop: connect, send a line, read it echoed, close. */
function startLoad(port: number): Load {
  let running = true;
  const waiters: { at: number; resolve: () => void }[] = [];
  const load: Load = {
    ok: 0,
    refused: 0,
    failed: 0,
    errors: [],
    stop: async () => {
      running = false;
      await Promise.all(clients);
    },
    completed: (count) => new Promise((resolve) => waiters.push({ at: load.ok + count, resolve })),
  };
  const once = (id: number, n: number): Promise<void> =>
    new Promise((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      const line = `client ${id} connection ${n}`;
      let got = '';
      let done = false;
      const finish = (error?: NodeJS.ErrnoException | string): void => {
        if (done) return;
        done = true;
        socket.destroy();
        if (error === undefined) {
          load.ok++;
          for (let i = waiters.length - 1; i >= 0; i--) if (load.ok >= waiters[i].at) waiters.splice(i, 1)[0].resolve();
        } else if (typeof error !== 'string' && error.code === 'ECONNREFUSED') load.refused++;
        else {
          load.failed++;
          if (load.errors.length < 10) load.errors.push(typeof error === 'string' ? error : `${error.code ?? ''} ${error.message}`);
        }
        resolve();
      };
      socket.setEncoding('utf8');
      socket.on('connect', () => socket.end(`${line}\n`));
      socket.on('data', (chunk: string) => (got += chunk));
      socket.on('end', () => finish(got === `${line}\n` ? undefined : `got ${JSON.stringify(got)} for ${JSON.stringify(line)}`));
      socket.on('error', (error) => finish(error));
    });
  const clients = Array.from({ length: CLIENTS }, async (_, id) => {
    for (let n = 0; running; n++) await once(id, n);
  });
  return load;
}

/** A flow held open across the upgrade: a line echoed before and after. */
async function longFlow(port: number): Promise<{ echo(text: string): Promise<string>; end(): void }> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return {
    echo: async (text) => {
      socket.write(`${text}\n`);
      return readLine(socket);
    },
    end: () => socket.end(),
  };
}

describe.skipIf(procfs.skip)(procfs.title, () => {
  describe.each([
    { workers: 1, trigger: 'SIGUSR2' },
    { workers: 1, trigger: 'l4lb upgrade' },
    { workers: 2, trigger: 'SIGUSR2' },
    { workers: 2, trigger: 'l4lb upgrade' },
  ])('workers: $workers, by $trigger', ({ workers, trigger }) => {
    it('refuses and fails no connection; the new process owns the listener; the old one exits after its last flow', { timeout: 60_000 }, async () => {
      const setup = await files(`up-${workers}-${trigger.replace(/\W/g, '')}`, workers);
      const old = await run(setup);
      const oldPid = Number(readFileSync(setup.pidfile, 'utf8'));
      expect(oldPid).toBe(old.child.pid);
      const oldWorkers = pidsLogged(old, 'worker started');
      expect(oldWorkers).toHaveLength(workers > 1 ? workers : 0);
      for (const pid of oldWorkers) pids.add(pid);

      const flow = await longFlow(setup.listen);
      expect(await flow.echo('before')).toBe('before');
      const load = startLoad(setup.listen);
      await load.completed(200);
      const before = load.ok;

      let cli: Promise<{ code: number; stdout: string; stderr: string }> | undefined;
      if (trigger === 'SIGUSR2') process.kill(oldPid, 'SIGUSR2');
      else cli = runCli(['upgrade', '-c', setup.config]);
      const ready = await old.waitForRecord('upgrade: the new l4lb is ready; this one stops accepting and drains');
      const newPid = Number(ready.pid);
      pids.add(newPid);
      if (cli !== undefined) {
        const answer = await cli;
        expect(answer.stderr).toBe('');
        expect(answer.code).toBe(0);
        expect(answer.stdout).toContain(`l4lb runs as PID ${newPid}`);
      }
      const newWorkers = pidsLogged(old, 'worker started').filter((pid) => !oldWorkers.includes(pid));
      for (const pid of newWorkers) pids.add(pid);
      await old.waitForRecord('upgrade: serving on the sockets of the previous l4lb, which now drains');
      await load.completed(AFTER_READY);
      await load.stop();

      console.log(`upgrade (workers: ${workers}, ${trigger}): ready in ${Number(ready.readyMs)} ms; ${load.ok} connections (${before} before), ${load.refused} refused, ${load.failed} failed`);
      expect(load.errors).toEqual([]);
      expect({ refused: load.refused, failed: load.failed }).toEqual({ refused: 0, failed: 0 });
      expect(load.ok).toBeGreaterThanOrEqual(before + AFTER_READY);

      // The pidfile names the new process, which holds the one listening socket; the old one does not any more.
      expect(Number(readFileSync(setup.pidfile, 'utf8'))).toBe(newPid);
      expect(newPid).not.toBe(oldPid);
      const [inode, ...others] = listeningInodes(setup.listen);
      expect(others).toEqual([]);
      expect(holds(newPid, inode)).toBe(true);
      expect(holds(oldPid, inode)).toBe(false);
      expect(newWorkers).toHaveLength(workers > 1 ? workers : 0);
      for (const pid of newWorkers) expect(holds(pid, inode)).toBe(true);
      // `l4lb status` reaches the new process on the admin socket it took over.
      const status = await runCli(['status', '-c', setup.config]);
      expect(status.code).toBe(0);
      expect(status.stdout).toContain('echo');

      // The flow opened before the upgrade still goes through the old process, which waits for it.
      expect(await flow.echo('after')).toBe('after');
      expect(alive(oldPid)).toBe(true);
      flow.end();
      expect(await old.exited).toBe(0);
      for (const pid of oldWorkers) expect(alive(pid)).toBe(false);
      expect(alive(newPid)).toBe(true);
      expect(Number(readFileSync(setup.pidfile, 'utf8'))).toBe(newPid);
    });
  });

  it('a file made invalid before the upgrade: the old process serves on, says why, and keeps the pidfile', { timeout: 60_000 }, async () => {
    const setup = await files('invalid', 1);
    const old = await run(setup);
    const oldPid = Number(readFileSync(setup.pidfile, 'utf8'));
    writeFileSync(setup.config, `${readFileSync(setup.config, 'utf8')}  - name: broken\n`);

    process.kill(oldPid, 'SIGUSR2');
    const failed = await old.waitForRecord('upgrade failed: still serving with this process');
    if (typeof failed.pid === 'number') pids.add(failed.pid);
    expect(failed).toMatchObject({ code: 'LB_ERR_UPGRADE', failure: 'exited' });
    expect((failed.problems as string[]).join('\n')).toContain('services[1].backends: missing');

    const answer = await runCli(['upgrade', '-c', setup.config]);
    expect(answer.code).toBe(1);
    expect(answer.stderr).toContain('services[1].backends: missing');
    expect(answer.stderr).toContain('the running l4lb serves on');

    expect(Number(readFileSync(setup.pidfile, 'utf8'))).toBe(oldPid);
    const flow = await longFlow(setup.listen);
    expect(await flow.echo('still served')).toBe('still served');
    flow.end();
    expect(alive(oldPid)).toBe(true);
  });

  it('systemd socket activation: listens on the LISTEN_FDS sockets named after their services and closes the ones no service uses', { timeout: 60_000 }, async () => {
    const setup = await files('activated', 1);
    // Two listening sockets as systemd would pass them: fd 3 named `echo` (the service), fd 4 `spare`.
    const sparePort = await freePort();
    const servers = [createServer(), createServer()];
    servers[0].listen(setup.listen, '127.0.0.1');
    servers[1].listen(sparePort, '127.0.0.1');
    await Promise.all(servers.map((server) => once(server, 'listening')));
    const fds = servers.map((server) => (server as unknown as { _handle: { fd: number } })._handle.fd);
    // `exec` keeps the shell's PID, which LISTEN_PID must name (sd_listen_fds(3)).
    const child = spawn('/bin/sh', ['-c', `LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=echo:spare exec "${process.execPath}" "${CLI}" run -c "${setup.config}"`], { stdio: ['ignore', 'pipe', 'pipe', ...fds] });
    if (child.pid !== undefined) pids.add(child.pid);
    // This process's copies: the child holds its own.
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    const { stdout, stderr } = child;
    if (stdout === null || stderr === null) throw new Error('spawn gave no stdout/stderr pipe');
    let out = '';
    let errors = '';
    stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    stderr.setEncoding('utf8').on('data', (chunk: string) => (errors += chunk));
    const exited = once(child, 'exit').then(() => {
      throw new Error(`l4lb exited before listening: ${errors}`);
    });
    exited.catch(() => undefined); // killed by PID at the end: that rejection is no failure
    while (!out.includes('"msg":"admin API listening"')) await Promise.race([once(stdout, 'data'), exited]);
    expect(out).toContain('"msg":"inherited listening sockets no service uses: closed"');
    expect(out).toContain('"sockets":["spare"]');

    const flow = await longFlow(setup.listen);
    expect(await flow.echo('activated')).toBe('activated');
    flow.end();
    const [inode] = listeningInodes(setup.listen);
    expect(child.pid !== undefined && holds(child.pid, inode)).toBe(true);
    // The spare socket is closed everywhere: its port refuses.
    expect(listeningInodes(sparePort)).toEqual([]);
  });
});
