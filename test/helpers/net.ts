/**
 * Shared network test utilities: servers on port 0, clients bound to chosen loopback sources,
 * and promise helpers that wait on events (never on time).
 */
import { once } from 'node:events';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestServer {
  readonly server: Server;
  readonly port: number;
  /** Sockets accepted so far, in order. */
  readonly accepted: Socket[];
  /** Resolves with the next accepted socket (or the first not yet taken). */
  nextConnection(): Promise<Socket>;
  /** Destroys open sockets and closes the listener. */
  close(): Promise<void>;
}

/** A TCP server on 127.0.0.1:0 (or `host`) calling `handler` for each socket (allowHalfOpen on). */
export async function startServer(handler: (socket: Socket) => void = () => {}, host = '127.0.0.1'): Promise<TestServer> {
  const accepted: Socket[] = [];
  const waiting: ((socket: Socket) => void)[] = [];
  let taken = 0;
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {}); // tests look at 'close'/'end'; resets are expected in several
    accepted.push(socket);
    handler(socket);
    const waiter = waiting.shift();
    if (waiter) {
      taken++;
      waiter(socket);
    }
  });
  server.listen(0, host);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    accepted,
    nextConnection: () =>
      taken < accepted.length ? Promise.resolve(accepted[taken++]) : new Promise<Socket>((resolve) => waiting.push(resolve)),
    close: async () => {
      for (const socket of accepted) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Echoes every byte back; ends its side when the client ends (half-close kept). */
export function startEchoServer(): Promise<TestServer> {
  return startServer((socket) => socket.pipe(socket));
}

/** Answers a new connection with `NAME\n`, then echoes (the demo's backends, and affinity tests). */
export function startNamedServer(name: string): Promise<TestServer> {
  return startServer((socket) => {
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
}

/**
 * Ports handed out by freePort: below the kernel's ephemeral range (net.ipv4.ip_local_port_range,
 * 32768–60999 by default), so no `listen(0)` and no outgoing connection of any test can be given
 * one of them after we checked it; a slice for each vitest worker (VITEST_POOL_ID), so test files
 * of one run rarely look at the same ports; and a claim file per port handed out, so that not even
 * a second run of the suite on the same machine (another checkout, CI beside a developer) can be
 * given it while this process lives. Without the claim, two runs have workers with the same pool
 * ids: a "dead" backend's port of one run was then bound by a server of the other, the dead
 * backend answered, and a test waiting for connect-failed hung until its timeout.
 */
const FREE_PORT_BASE = 10_000;
const FREE_PORT_SLICE = 1_000;
const FREE_PORT_SLICES = 22; // 10,000–31,999: below the ephemeral range
/**
 * Ports the Fetch standard calls bad (https://fetch.spec.whatwg.org/#port-blocking): Node's
 * `fetch` refuses them with "bad port" before connecting, so a test that fetches from an admin
 * listener on one fails. 10080 is the only one inside 10,000–31,999.
 */
const FETCH_BAD_PORTS = new Set([10080]);
/** Where claims live; test/helpers/port-claims.ts removes those of exited processes after a run. */
export const PORT_CLAIMS = join(tmpdir(), 'l4lb-test-ports');
/** Starts at a place of this process's own, so two runs side by side rarely meet in a slice. */
let freePortNext = process.pid % FREE_PORT_SLICE;

function poolSlice(): number {
  const pool = Number(process.env.VITEST_POOL_ID ?? process.env.VITEST_WORKER_ID ?? 1);
  return Number.isInteger(pool) && pool > 0 ? (pool - 1) % FREE_PORT_SLICES : 0;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Claims `port` for this process: a file named after it holding our PID, created exclusively. A
 * claim of a process that has exited is taken over; one of ours (an earlier test file in this
 * worker) or of a live process is not. Claims last as long as the process (no test returns ports).
 */
function claim(port: number): boolean {
  mkdirSync(PORT_CLAIMS, { recursive: true });
  const file = join(PORT_CLAIMS, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = Number(readFileSync(file, 'utf8'));
    if (Number.isInteger(owner) && owner > 0 && alive(owner)) return false;
    rmSync(file, { force: true }); // the owner exited: its ports are free to claim again
  }
  return false;
}

/** Whether 127.0.0.1:`port` can be bound now (nothing else holds it). */
async function bindable(port: number): Promise<boolean> {
  const server = createServer();
  try {
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * A port with nothing listening on 127.0.0.1 and that no other test, of this run or of another
 * on this machine, will be given: connecting to it is refused until the test listens on it.
 */
export async function freePort(): Promise<number> {
  const base = FREE_PORT_BASE + poolSlice() * FREE_PORT_SLICE;
  for (let tried = 0; tried < FREE_PORT_SLICE; tried++) {
    const port = base + (freePortNext++ % FREE_PORT_SLICE);
    if (FETCH_BAD_PORTS.has(port)) continue;
    if (claim(port) && (await bindable(port))) return port;
  }
  throw new Error(`freePort: no port of ${base}–${base + FREE_PORT_SLICE - 1} is both unclaimed and bindable`);
}

/** A connected client (allowHalfOpen), optionally from a chosen source address such as 127.3.4.5. */
export async function connectClient(port: number, localAddress?: string, host = '127.0.0.1'): Promise<Socket> {
  const socket = connect({ host, port, localAddress, allowHalfOpen: true });
  await once(socket, 'connect');
  return socket;
}

/** Everything `socket` sends until its FIN (rejects on error). */
export function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
    socket.resume();
  });
}

/** Resolves with the first `count` bytes `socket` sends (the rest stays in later chunks). */
export function readBytes(socket: Socket, count: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      have += chunk.length;
      if (have >= count) {
        socket.removeListener('data', onData);
        socket.removeListener('error', reject);
        socket.removeListener('end', onEnd);
        resolve(Buffer.concat(chunks).subarray(0, count));
      }
    };
    const onEnd = (): void => reject(new Error(`stream ended after ${have} of ${count} bytes`));
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('end', onEnd);
    socket.resume();
  });
}

/** The first line `socket` sends, without its newline; later bytes are put back for the next reader. */
export async function readLine(socket: Socket): Promise<string> {
  let buffered = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline < 0) return;
      socket.removeListener('data', onData);
      socket.removeListener('error', reject);
      socket.pause();
      if (newline + 1 < buffered.length) socket.unshift(buffered.subarray(newline + 1));
      resolve(buffered.subarray(0, newline).toString('utf8'));
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.resume();
  });
}

/** Resolves when `socket` has closed; with the error that closed it, if any. */
export function closed(socket: Socket): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    let failure: NodeJS.ErrnoException | undefined;
    socket.on('error', (error: NodeJS.ErrnoException) => {
      failure = error;
    });
    if (socket.closed) resolve(failure);
    else socket.once('close', () => resolve(failure));
  });
}

/**
 * Resolves when the peer has closed its side: a FIN (its 'end', the socket being read and
 * discarded from now on) or a reset (with the error). For clients that are refused or timed out.
 */
export function peerClosed(socket: Socket): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    let failure: NodeJS.ErrnoException | undefined;
    socket.on('error', (error: NodeJS.ErrnoException) => {
      failure = error;
    });
    socket.once('end', () => resolve(undefined));
    socket.once('close', () => resolve(failure));
    socket.resume();
  });
}

/** Writes `data` in pieces of the given sizes (cycled), awaiting 'drain' when asked to. */
export async function writeChunked(socket: Socket, data: Buffer, sizes: readonly number[]): Promise<void> {
  let offset = 0;
  for (let i = 0; offset < data.length; i++) {
    const size = Math.max(1, sizes[i % sizes.length]);
    const piece = data.subarray(offset, offset + size);
    offset += piece.length;
    if (!socket.write(piece)) await once(socket, 'drain');
  }
}

/**
 * Resolves once `condition()` holds, checking after each turn of the event loop's timers. For
 * states no event announces (a counter reaching a value); bounded by the test's timeout.
 */
export async function waitUntil(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 2));
}

export interface Blackhole {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A listener whose connects time out: a child process listens with a backlog of 1 and then blocks
 * its event loop, so it never accepts; two filler connections fill the accept queue and the kernel
 * drops every later SYN. Killed by its PID on close().
 */
export async function startBlackhole(): Promise<Blackhole> {
  const { spawn } = await import('node:child_process');
  const script = `
    const net = require('node:net');
    const server = net.createServer();
    server.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
      process.stdout.write(server.address().port + '\\n', () => {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // never accept
      });
    });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  const fillers: Socket[] = [];
  for (let i = 0; i < 2; i++) fillers.push(await connectClient(port));
  return {
    port,
    close: async () => {
      for (const filler of fillers) filler.destroy();
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
      await exited;
    },
  };
}
