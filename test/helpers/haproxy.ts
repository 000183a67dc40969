/**
 * A real HAProxy for interop tests: started in the foreground in master-worker mode (`-W -db`) on
 * a config file, ready when the master prints "Loading success." (its listeners are up then; a
 * socket file or port can exist before listen()), its log lines (stdout) collected and awaitable,
 * stopped by PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

export const haproxyInstalled = spawnSync('haproxy', ['-v']).status === 0;

export interface Haproxy {
  /** Every log line so far. */
  readonly lines: readonly string[];
  /** The first log line containing `match`, now or when it arrives. */
  line(match: string): Promise<string>;
  /** SIGTERM to its PID; resolves once it exited. */
  stop(): Promise<void>;
}

export function startHaproxy(configFile: string): Promise<Haproxy> {
  if (!haproxyInstalled) return Promise.reject(new Error('haproxy is not installed (CI=true: .ci/run installs it)'));
  const lines: string[] = [];
  const waiters: { match: string; resolve: (line: string) => void }[] = [];
  const child: ChildProcess = spawn('haproxy', ['-W', '-db', '-f', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const handle: Haproxy = {
    lines,
    line(match) {
      const seen = lines.find((line) => line.includes(match));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
    async stop() {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(child.pid, 'SIGTERM');
      await exited;
    },
  };
  let pending = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const complete = pending.split('\n');
    pending = complete.pop() ?? '';
    for (const line of complete) {
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (!line.includes(waiter.match)) continue;
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  return new Promise<Haproxy>((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes('Loading success.')) resolve(handle);
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`haproxy exited (${code}) before it was ready: ${stderr}`)));
  });
}
