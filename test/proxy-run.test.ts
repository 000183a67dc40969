/**
 * `l4lb run` and `l4lb demo` as child processes (the built dist/cli.js): SIGTERM drains and exits 0,
 * SIGHUP with an invalid file keeps serving and logs every problem, SIGHUP with a valid file
 * reloads, start-up failures are one line on stderr and exit 1; the demo serves what it prints.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startCli, type CliChild } from './helpers/child.js';
import { connectClient, freePort, peerClosed, readLine, startNamedServer, startServer, type TestServer } from './helpers/net.js';

const dir = mkdtempSync(join(tmpdir(), 'l4lb-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function cli(args: string[]): CliChild {
  const child = startCli(args);
  cleanups.push(() => child.kill());
  return child;
}

async function named(name: string): Promise<TestServer> {
  const server = await startNamedServer(name);
  cleanups.push(() => server.close());
  return server;
}

let files = 0;
function configFile(listenPort: number, backends: { name: string; port: number }[], timeouts: Record<string, string> = {}): string {
  const file = join(dir, `config-${++files}.json`);
  const config = {
    services: [
      {
        name: 'svc',
        listen: `127.0.0.1:${listenPort}`,
        timeouts: { drain: '10s', ...timeouts },
        backends: backends.map(({ name, port }) => ({ name, address: `127.0.0.1:${port}` })),
      },
    ],
  };
  writeFileSync(file, JSON.stringify(config));
  return file;
}

async function greeting(port: number): Promise<string> {
  const socket = await connectClient(port);
  const name = await readLine(socket);
  socket.destroy();
  return name;
}

describe('l4lb run', () => {
  it('SIGTERM: stops accepting, lets the open connection finish, exits 0', async () => {
    const b1 = await named('b1');
    const port = await freePort();
    const run = cli(['run', '-c', configFile(port, [{ name: 'b1', port: b1.port }])]);
    await run.waitForRecord('listening');
    const open = await connectClient(port);
    expect(await readLine(open)).toBe('b1');
    run.child.kill('SIGTERM');
    await run.waitForRecord('stopping: no new connections, draining open ones');
    await expect(connectClient(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    open.write('served while draining\n');
    expect(await readLine(open)).toBe('served while draining');
    open.end();
    expect(await run.exited).toBe(0);
    expect(await run.waitForRecord('connection')).toMatchObject({ service: 'svc', backend: 'b1', end: 'client-close' });
    await run.waitForRecord('stopped');
    expect(run.stderr()).toBe('');
  });

  it('SIGTERM: a connection still open at the drain deadline is closed and logged as shutdown', async () => {
    const b1 = await named('b1');
    const port = await freePort();
    const run = cli(['run', '-c', configFile(port, [{ name: 'b1', port: b1.port }], { drain: '200ms' })]);
    await run.waitForRecord('listening');
    const open = await connectClient(port);
    expect(await readLine(open)).toBe('b1');
    const gone = peerClosed(open);
    run.child.kill('SIGTERM');
    await gone;
    expect(await run.exited).toBe(0);
    expect(await run.waitForRecord('connection')).toMatchObject({ end: 'shutdown' });
  });

  // Each reload starts a worker thread that loads the config modules: about 1.5 s apiece on a
  // host at load 12 on 2 cores, so two of them outgrow the default 5 s there.
  it('SIGHUP: an invalid file keeps the old configuration serving and logs every problem; a valid one reloads', { timeout: 30_000 }, async () => {
    const b1 = await named('b1');
    const b2 = await named('b2');
    const port = await freePort();
    const file = configFile(port, [{ name: 'b1', port: b1.port }]);
    const run = cli(['run', '-c', file]);
    await run.waitForRecord('listening');
    writeFileSync(file, JSON.stringify({ services: [{ name: 'svc', listen: `127.0.0.1:${port}`, tiemouts: {}, backends: [{ name: 'b1', address: '127.0.0.1' }] }] }));
    run.child.kill('SIGHUP');
    const refused = await run.waitForRecord('reload refused: still running the previous configuration');
    const problems = refused.problems as string[];
    expect(problems.length).toBeGreaterThanOrEqual(2);
    expect(problems.some((line) => line.includes('tiemouts'))).toBe(true);
    expect(problems.some((line) => line.includes('services[0].backends[0].address'))).toBe(true);
    expect(await greeting(port)).toBe('b1');

    writeFileSync(file, JSON.stringify({ services: [{ name: 'svc', listen: `127.0.0.1:${port}`, backends: [{ name: 'b2', address: `127.0.0.1:${b2.port}` }] }] }));
    run.child.kill('SIGHUP');
    await run.waitForRecord('reloaded');
    expect(await greeting(port)).toBe('b2');
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });

  it('a taken port: one line on stderr, exit 1, no stack', async () => {
    const taken = await startServer();
    cleanups.push(() => taken.close());
    const run = cli(['run', '-c', configFile(taken.port, [{ name: 'b1', port: taken.port }])]);
    expect(await run.exited).toBe(1);
    expect(run.stderr()).toBe(`l4lb: services[0] (svc).listen: cannot listen on 127.0.0.1:${taken.port}: address already in use\n`);
  });

  it('a missing file: one line on stderr, exit 1', async () => {
    const missing = join(dir, 'nope.yaml');
    const run = cli(['run', '-c', missing]);
    expect(await run.exited).toBe(1);
    expect(run.stderr()).toBe(`l4lb: ${missing}: cannot read the file: it does not exist\n`);
  });
});

describe('l4lb demo', () => {
  it('serves what it prints: each listed source reaches the backend shown; SIGINT exits 0', async () => {
    const port = await freePort();
    const demo = cli(['demo', '--port', String(port)]);
    await demo.waitForLine((line) => line.startsWith('Ctrl-C to stop.'));
    const predictions = demo.lines
      .map((line) => /nc -s (\S+) 127\.0\.0\.1 \d+\s+→ (\S+)/.exec(line))
      .filter((match): match is RegExpExecArray => match !== null);
    expect(predictions.length).toBeGreaterThanOrEqual(4);
    expect(new Set(predictions.map((match) => match[2])).size).toBeGreaterThan(1);
    for (const [, source, name] of predictions) {
      const socket = await connectClient(port, source);
      expect(await readLine(socket)).toBe(name);
      socket.write('echo me\n');
      expect(await readLine(socket)).toBe('echo me');
      socket.destroy();
    }
    demo.child.kill('SIGINT');
    expect(await demo.exited).toBe(0);
  });

  it('a taken port is said plainly, exit 1', async () => {
    const taken = await startServer();
    cleanups.push(() => taken.close());
    const demo = cli(['demo', '--port', String(taken.port)]);
    expect(await demo.exited).toBe(1);
    expect(demo.stderr()).toBe(`l4lb: cannot listen on 127.0.0.1:${taken.port}: the port is taken (is another demo running?); try --port ${taken.port + 1}\n`);
  });
});
