/**
 * vitest global set-up: after the run, removes the port claims of freePort (test/helpers/net.ts)
 * whose process has exited. vitest ends its workers without an 'exit' event, so they cannot remove
 * their own, and may still be ending when this runs: a claim of one of this run's workers (a child
 * of this process) is waited for, up to a deadline. Claims of other live processes, such as another
 * run of the suite beside this one, stay.
 */
import { readFileSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { PORT_CLAIMS, alive } from './net.js';

const WORKER_EXIT_DEADLINE_MS = 10_000;

function parentOf(pid: number): number | undefined {
  try {
    // /proc/PID/stat: "pid (comm) state ppid …"; comm may hold spaces, so read after its last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function ownerOf(file: string): number {
  try {
    return Number(readFileSync(file, 'utf8'));
  } catch {
    return 0;
  }
}

export default function setup(): () => Promise<void> {
  return async () => {
    let names: string[];
    try {
      names = readdirSync(PORT_CLAIMS);
    } catch {
      return; // no test claimed a port
    }
    const deadline = Date.now() + WORKER_EXIT_DEADLINE_MS;
    for (const name of names) {
      const file = join(PORT_CLAIMS, name);
      const owner = ownerOf(file);
      // Polls the worker's exit: there is no event for another process's end short of being its parent's handle.
      while (owner > 0 && alive(owner) && parentOf(owner) === process.pid && Date.now() < deadline) await delay(50);
      if (!(owner > 0 && alive(owner))) rmSync(file, { force: true });
    }
    try {
      rmdirSync(PORT_CLAIMS); // only when empty: another run may still hold claims
    } catch {
      // not empty
    }
  };
}
