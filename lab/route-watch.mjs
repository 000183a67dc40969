#!/usr/bin/env node
// Watches the router's route to the VIP (run it inside the router's namespace) and prints, with
// T = Date.now() in ms, "T DEV[,DEV...]" — the devices of its nexthops, sorted — first for the route
// as it is, then on every change ("T none" when there is no route). Reads `ip -o monitor route`, in
// which every change of a (multipath) route is one line holding the whole new route.
//   route-watch.mjs VIP
import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const [vip] = process.argv.slice(2);
if (!vip) {
  process.stderr.write('usage: route-watch.mjs VIP\n');
  process.exit(2);
}
const devices = (text) => [...text.matchAll(/\bdev (\S+)/g)].map((m) => m[1]).sort().join(',') || 'none';
let current = '';
const report = (state) => {
  if (state === current) return;
  current = state;
  process.stdout.write(`${Date.now()} ${state}\n`);
};

const monitor = spawn('ip', ['-o', 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'inherit'] });
// Stopped by PID (SIGTERM): take the monitor along, which would otherwise outlive us.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    monitor.kill();
    process.exit(0);
  });
}
// Read the route as it is only once the monitor listens, so no change falls in between.
await new Promise((resolve) => setTimeout(resolve, 100));
report(devices(execFileSync('ip', ['route', 'show', `${vip}/32`], { encoding: 'utf8' })));
const route = new RegExp(`^(Deleted )?${vip.replaceAll('.', '\\.')}(/32)? `);
for await (const line of createInterface({ input: monitor.stdout })) {
  const match = route.exec(line);
  if (!match) continue;
  report(match[1] ? 'none' : devices(line));
}
