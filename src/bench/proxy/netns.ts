/**
 * The network namespace a proxy benchmark run measures in: created with a name unique to this
 * process, loopback up, and removed at the end (also on error, Ctrl-C and process exit). Backends,
 * proxies and load generators all run in it through `ip netns exec`, which setns(2)es and then
 * execs the command (no fork), so the PID a caller holds is the program's own.
 *
 * Conntrack is per namespace: once any table that uses it (the kernel NAT table, the direct +
 * conntrack table) is loaded here, every flow in the namespace is tracked, whichever path it takes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { BenchError } from './procs.js';

/** Runs a command inside a namespace: the argv to exec instead. */
export type CommandWrapper = (command: string, args: readonly string[]) => { command: string; args: string[] };

export class BenchNamespace {
  readonly name: string;
  private removed = false;
  private readonly onExit = (): void => this.remove();

  private constructor(name: string) {
    this.name = name;
  }

  /**
   * Creates the namespace and brings up `lo`. TIME_WAIT conntrack entries are kept 10 s (not 120 s)
   * so tens of thousands of new connections a second do not fill the table over a run.
   */
  static create(): BenchNamespace {
    const namespace = new BenchNamespace(`l4lb-bench-${process.pid}`);
    ipOrThrow(['netns', 'add', namespace.name]);
    process.on('exit', namespace.onExit);
    try {
      ipOrThrow(['-n', namespace.name, 'link', 'set', 'lo', 'up']);
      namespace.sysctl('net.ipv4.ip_local_port_range', '1024 65000');
      // Exists once nf_conntrack is loaded (it is wherever nft NAT has been used); without it the
      // kernel default (120 s) stays, which only matters for runs much longer than the default.
      namespace.trySysctl('net.netfilter.nf_conntrack_tcp_timeout_time_wait', '10');
    } catch (error) {
      namespace.remove();
      throw error;
    }
    return namespace;
  }

  readonly wrap: CommandWrapper = (command, args) => ({ command: 'ip', args: ['netns', 'exec', this.name, command, ...args] });

  /** Sets a sysctl inside the namespace (fails with the tool's message). */
  sysctl(key: string, value: string): void {
    const result = this.exec(['sysctl', '-q', '-w', `${key}=${value}`]);
    if (result.status !== 0) throw new BenchError(`sysctl ${key}=${value} in ${this.name}: ${result.stderr.trim()}`);
  }

  /** Sets a sysctl inside the namespace if the kernel has it; says whether it did. */
  trySysctl(key: string, value: string): boolean {
    return this.exec(['sysctl', '-q', '-w', `${key}=${value}`]).status === 0;
  }

  /** Loads an nft ruleset in one transaction inside the namespace. */
  nft(ruleset: string): void {
    const result = this.exec(['nft', '-f', '-'], ruleset);
    if (result.status !== 0) throw new BenchError(`nft in ${this.name}: ${result.stderr.trim()}`);
  }

  /** Runs a command inside the namespace to its end: exit status and stderr. */
  private exec([program, ...rest]: readonly [string, ...string[]], input?: string): { status: number | null; stderr: string } {
    const { command, args } = this.wrap(program, rest);
    const result = spawnSync(command, args, { input, encoding: 'utf8' });
    return { status: result.status, stderr: result.stderr ?? '' };
  }

  /** Whether 127.0.0.1:port in the namespace accepts a TCP connection (bash's /dev/tcp, one try). */
  probe(port: number): Promise<boolean> {
    return new Promise((resolve) => {
      const child = spawn('ip', ['netns', 'exec', this.name, 'bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`], { stdio: 'ignore' });
      child.once('error', () => resolve(false));
      child.once('exit', (code) => resolve(code === 0));
    });
  }

  /** Deletes the namespace (idempotent). Stop the processes in it first: they keep it alive. */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    process.off('exit', this.onExit);
    spawnSync('ip', ['netns', 'delete', this.name], { stdio: 'ignore' });
  }
}

function ipOrThrow(args: readonly string[]): void {
  const result = spawnSync('ip', args, { encoding: 'utf8' });
  if (result.status !== 0) throw new BenchError(`ip ${args.join(' ')}: ${(result.stderr ?? '').trim() || `exit ${result.status}`} (needs root or CAP_SYS_ADMIN)`);
}
