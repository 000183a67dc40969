/**
 * Zero-downtime upgrade of `l4lb run`, as nginx does it on SIGUSR2 and HAProxy with `-x`/`-sf`:
 * the running l4lb (the predecessor) starts a new one (the successor) from the files now on disk,
 * with the same command line, and hands it its listening sockets; the successor re-reads the
 * configuration file, listens on the sockets it was given (the kernel's accept queue is never
 * closed, so no connect is refused), writes the pidfile and reports ready; only then does the
 * predecessor close its own copies and drain as on SIGTERM. If the successor cannot start (a file
 * it refuses, a crash, no answer within UPGRADE_TIMEOUT_MS), the predecessor logs why and serves on.
 *
 * How the sockets travel: as inherited file descriptors. The successor is spawned with each
 * listening socket as one of its fds from 3 on (spawn's `stdio`), their names in L4LB_LISTEN_FDS,
 * and an IPC channel for the one message back (ready, or failed with its error). It listens with
 * `server.listen({ fd })`, documented for net and for node:cluster (a worker's `listen({ fd })` is
 * opened in the primary and shared with every worker), so the same path serves one process and a
 * cluster. It is also systemd's socket activation protocol (sd_listen_fds(3): LISTEN_PID,
 * LISTEN_FDS, LISTEN_FDNAMES, fds from 3), which InheritedSockets reads too. `child.send(msg,
 * server)` was the other route: the receiving side is handed a `net.Server` that is already
 * accepting, before anything in it is ready to serve, and a cluster primary (which holds no server
 * of its own) would have to pass it on to its workers again.
 *
 * The successor is started detached (a session and process group of its own: a terminal's Ctrl-C
 * or a signal to the predecessor's group does not reach it) with stdin closed and stdout and stderr
 * the predecessor's own (the same journal, file or pipe), so it outlives the predecessor's exit.
 * Under systemd it stays in the service's cgroup; with `PIDFile=` systemd takes the PID the
 * successor wrote there as the new main PID when the predecessor exits (docs/operations.md).
 *
 * Names: every listening socket of the proxy, a service's own `listen` address (each address of a
 * list) or a TLS passthrough listener's, is named by its configured endpoint (proxy's `socketName`:
 * `127.0.0.1:8080`, `[::1]:5433`), the name earlier versions used, so an upgrade from one keeps its
 * sockets, and a service renamed, or an address moved between a service and a listener, keeps its
 * socket; the admin API's is `admin`. Under systemd (FileDescriptorName=, which may not hold ':')
 * a socket may be named by the service's name instead.
 */
import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import type { Server } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { fromWire, isLbError, LbError, UpgradeError, type LbErrorWire } from '../errors.js';
import type { InheritedName } from '../proxy/index.js';

/** The environment variable naming the inherited fds: JSON `[{ "name", "fd" }]`. */
export const LISTEN_FDS_ENV = 'L4LB_LISTEN_FDS';
/** The admin API's socket's name. */
export const ADMIN_SOCKET = 'admin';
/** How long the predecessor waits for its successor to be ready before it kills it and serves on. */
export const UPGRADE_TIMEOUT_MS = 60_000;
/** sd_listen_fds(3): the first inherited fd. */
const FIRST_FD = 3;

/** A listening socket as one process holds it: its name and its fd there. */
export interface HandedSocket {
  readonly name: string;
  readonly fd: number;
}

/** The sockets a runtime hands over; `release()` closes whatever was opened in this process to get them. */
export interface HandoverSockets {
  readonly sockets: readonly HandedSocket[];
  release(): void;
}

/** A libuv handle as Node holds it in `server._handle`: a TCP or pipe wrap. */
interface NativeHandle {
  readonly fd?: number;
  close(): void;
}

function isNativeHandle(value: unknown): value is NativeHandle {
  return typeof value === 'object' && value !== null && typeof (value as { close?: unknown }).close === 'function';
}

/**
 * The listening handle of `server` (undefined when it is not listening). This and handleFd are the
 * only places that read Node's `server._handle`, which node:cluster and child_process use to pass
 * listeners between processes; no public API gives a listening socket's fd.
 */
export function listeningHandle(server: Server): NativeHandle | undefined {
  const handle: unknown = (server as unknown as { _handle?: unknown })._handle;
  return isNativeHandle(handle) ? handle : undefined;
}

/** The fd of a handle in this process (undefined for a closed one, or off Unix). */
export function handleFd(handle: unknown): number | undefined {
  if (!isNativeHandle(handle)) return undefined;
  return typeof handle.fd === 'number' && handle.fd >= 0 ? handle.fd : undefined;
}

/** Closes a handle received over IPC (`net.Native`), which this process never listened on. */
export function closeHandle(handle: unknown): void {
  if (isNativeHandle(handle)) handle.close();
}

/** The fd of `server`'s listening socket in this process. */
export function listeningFd(server: Server): number | undefined {
  return handleFd(listeningHandle(server));
}

function parseHanded(text: string): HandedSocket[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(value)) return [];
  return (value as unknown[]).filter(isHandedSocket);
}

function isHandedSocket(value: unknown): value is HandedSocket {
  if (typeof value !== 'object' || value === null) return false;
  const { name, fd } = value as { name?: unknown; fd?: unknown };
  return typeof name === 'string' && typeof fd === 'number' && Number.isInteger(fd) && fd >= FIRST_FD;
}

/**
 * The listening sockets this process was started with: from a predecessor (L4LB_LISTEN_FDS), or
 * from systemd (LISTEN_FDS for this PID, named by LISTEN_FDNAMES). Each is used at most once, by
 * the first listener that asks for its name at start-up; closeUnused() closes the rest, so a
 * service no longer configured does not keep its port bound. A reload never uses them: by then an
 * fd number may have been reused for something else.
 */
export class InheritedSockets {
  private readonly unused: Map<string, number>;

  constructor(
    sockets: readonly HandedSocket[],
    /** Whether a predecessor started this process and waits on the IPC channel for its answer. */
    readonly fromPredecessor = false,
  ) {
    this.unused = new Map(sockets.map(({ name, fd }) => [name, fd]));
  }

  static none(): InheritedSockets {
    return new InheritedSockets([]);
  }

  /**
   * Reads the sockets this process inherited, and removes the variables from `env` so that
   * nothing this process starts (cluster workers, a later successor) takes them for its own.
   */
  static fromEnvironment(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): InheritedSockets {
    const handed = env[LISTEN_FDS_ENV];
    const systemd = { pid: env.LISTEN_PID, count: env.LISTEN_FDS, names: env.LISTEN_FDNAMES };
    delete env[LISTEN_FDS_ENV];
    if (handed !== undefined) return new InheritedSockets(parseHanded(handed), true);
    if (systemd.pid === undefined || Number(systemd.pid) !== pid) return InheritedSockets.none();
    delete env.LISTEN_PID;
    delete env.LISTEN_FDS;
    delete env.LISTEN_FDNAMES;
    const count = Number(systemd.count);
    if (!Number.isInteger(count) || count <= 0) return InheritedSockets.none();
    const names = systemd.names?.split(':') ?? [];
    return new InheritedSockets(Array.from({ length: count }, (_, i) => ({ name: names[i] ?? `fd${FIRST_FD + i}`, fd: FIRST_FD + i })));
  }

  get size(): number {
    return this.unused.size;
  }

  /** The sockets not yet taken, for a cluster primary to pass to its workers. */
  list(): HandedSocket[] {
    return [...this.unused].map(([name, fd]) => ({ name, fd }));
  }

  /** The fd named `name`, taken (a second call answers undefined). */
  take(name: string): number | undefined {
    const fd = this.unused.get(name);
    this.unused.delete(name);
    return fd;
  }

  /** The fd for a listening socket: by its name (socketName), or (systemd) by its owner's, a service's name. */
  forSocket(socket: InheritedName): number | undefined {
    return this.take(socket.name) ?? this.take(socket.owner);
  }

  /** Closes every socket no listener took; returns their names. */
  closeUnused(): string[] {
    const names = [...this.unused.keys()];
    for (const fd of this.unused.values()) {
      try {
        closeSync(fd);
      } catch {
        // Already closed: nothing to release.
      }
    }
    this.unused.clear();
    return names;
  }
}

/** Successor → predecessor, over the IPC channel the predecessor opened. */
type SuccessorMessage = { readonly type: 'ready'; readonly pid: number } | { readonly type: 'failed'; readonly error: LbErrorWire };

function isSuccessorMessage(value: unknown): value is SuccessorMessage {
  const type = typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
  return type === 'ready' || type === 'failed';
}

/** Sends `message` to the predecessor, if one waits, then closes the channel (the successor then owes it nothing). */
function tellPredecessor(message: SuccessorMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined || !process.connected) {
      resolve();
      return;
    }
    process.send(message, undefined, {}, () => {
      if (process.connected) process.disconnect();
      resolve();
    });
  });
}

/** Successor side: everything is listening, the pidfile names this process. */
export function reportReady(inherited: InheritedSockets): Promise<void> {
  return inherited.fromPredecessor ? tellPredecessor({ type: 'ready', pid: process.pid }) : Promise.resolve();
}

/** Successor side: it cannot start; the predecessor logs `error` and serves on. */
export function reportFailure(inherited: InheritedSockets, error: unknown): Promise<void> {
  if (!inherited.fromPredecessor) return Promise.resolve();
  const wire = isLbError(error) ? error.toWire() : new LbError('LB_ERR_INTERNAL', `internal error: ${error instanceof Error ? error.message : String(error)}`).toWire();
  return tellPredecessor({ type: 'failed', error: wire });
}

export interface SuccessorOptions {
  readonly sockets: readonly HandedSocket[];
  readonly logger: Logger;
  /** Default UPGRADE_TIMEOUT_MS. */
  readonly timeoutMs?: number;
  /** The command that starts l4lb (default: this process's own: node, its flags, the script and its arguments). */
  readonly command?: readonly [string, ...string[]];
  /** Default: this process's environment. */
  readonly env?: NodeJS.ProcessEnv;
}

/** A successor that reported ready. */
export interface Successor {
  readonly pid: number;
  /** From the spawn to its ready message. */
  readonly readyMs: number;
}

/** What starts a successor; injected into the lifecycle so its tests need no process. */
export type StartSuccessor = (options: SuccessorOptions) => Promise<Successor>;

/**
 * Starts the successor with `sockets` as its fds from 3 on and resolves once it reports ready.
 * Rejects with UpgradeError (`spawn`, `exited` with its own problems if it sent them, `timeout`:
 * then its process group is killed) and leaves nothing running. Post (resolved): the successor is
 * detached from this process (no channel, not waited for), so this process may exit.
 */
export const startSuccessor: StartSuccessor = (options) => {
  const [file, ...args] = options.command ?? [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
  const timeoutMs = options.timeoutMs ?? UPGRADE_TIMEOUT_MS;
  const names = options.sockets.map(({ name }, i) => ({ name, fd: FIRST_FD + i }));
  const started = performance.now();
  return new Promise((resolve, reject) => {
    let reported: LbError | undefined;
    let settled = false;
    const child = spawn(file, args, {
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit', ...options.sockets.map(({ fd }) => fd), 'ipc'],
      env: { ...(options.env ?? process.env), [LISTEN_FDS_ENV]: JSON.stringify(names) },
    });
    const pid = child.pid ?? null;
    const settle = (outcome: { successor: Successor } | { error: UpgradeError }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.removeAllListeners();
      if (child.connected) child.disconnect();
      if ('error' in outcome) reject(outcome.error);
      else {
        child.unref();
        resolve(outcome.successor);
      }
    };
    const timer = setTimeout(() => {
      if (pid !== null) {
        try {
          process.kill(-pid, 'SIGKILL'); // its process group: a cluster's workers too
        } catch {
          // Gone meanwhile.
        }
      }
      settle({ error: new UpgradeError({ failure: 'timeout', pid }, [`upgrade: the new l4lb (PID ${pid ?? '?'}) was not ready within ${timeoutMs} ms: killed it`]) });
    }, timeoutMs);
    child.on('error', (error: NodeJS.ErrnoException) => {
      settle({ error: new UpgradeError({ failure: 'spawn', pid }, [`upgrade: cannot start ${file}: ${error.code ?? error.message}`]) });
    });
    child.on('message', (message: unknown) => {
      if (!isSuccessorMessage(message)) return;
      if (message.type === 'failed') reported = fromWire(message.error);
      else settle({ successor: { pid: message.pid, readyMs: performance.now() - started } });
    });
    child.on('exit', (code, signal) => {
      const how = signal === null ? `exit code ${code}` : signal;
      const own = reported?.lines() ?? ['(it reported no reason: see its lines on stderr)'];
      settle({ error: new UpgradeError({ failure: 'exited', pid }, [`upgrade: the new l4lb (PID ${pid ?? '?'}) exited before it was ready (${how})`, ...own]) });
    });
    options.logger.info({ pid, sockets: options.sockets.map(({ name }) => name) }, 'upgrade: started a new l4lb with the listening sockets');
  });
};
