/**
 * A backend as a real child process, for the failover tests: a Node TCP server on a chosen loopback
 * port that answers each connection with `NAME\n` and closes. It is killed by its PID (SIGKILL: the
 * kernel refuses new connects and resets open ones, as when a server dies) and can be started again
 * on the same port.
 */
import { spawn, type ChildProcess } from 'node:child_process';

const SCRIPT = `
const net = require('node:net');
const [name, port] = process.argv.slice(1);
const server = net.createServer((socket) => { socket.on('error', () => {}); socket.end(name + '\\n'); });
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\\n'));
`;

export interface BackendProcess {
  readonly name: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** SIGKILL by PID; resolves once it has exited. */
  kill(): Promise<void>;
}

/** Resolves once the child listens (it prints "ready"); rejects if it exits first. */
export async function startBackendProcess(name: string, port: number): Promise<BackendProcess> {
  const child = spawn(process.execPath, ['-e', SCRIPT, name, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let errors = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    errors += chunk.toString();
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`backend ${name} exited (${String(code)}) before listening: ${errors}`)));
  });
  return {
    name,
    port,
    child,
    kill: async () => {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
      await exited;
    },
  };
}
