#!/usr/bin/env node
// Pin synchronisation between directors, run right after a table change has been applied to all of
// them (lab/failover.sh --backend-change --sync-pins):
//   pins.mjs sync -c CONFIG NAMESPACE...
// A director pins each flow to the backend it chose (map flows_SERVICE, ip saddr . tcp sport →
// backend). After a table change, a flow pinned to a backend the new table no longer gives it lives
// only in the pins of the director that carries it: if that director dies, the survivor that gets
// the flow looks it up in the new table and sends it elsewhere (a reset). This copies every pin that
// disagrees with the current table (CONFIG, as loaded in every director) to the directors that do
// not hold it, so any of them keeps the flow on its backend.
// Why this is enough: once every director holds the new table, every pin created afterwards agrees
// with it, wherever it is created; only the pins made before the change can disagree, and they all
// exist by the time this runs, so one pass after the change catches them all. A copy expires after
// the map's timeout unless the flow moves to that director; re-run it while disagreeing pins remain.
// A pin another director holds with a different value is left alone and counted (that flow has
// already moved). Prints PINS_DISAGREEING, PINS_COPIED, PINS_CONFLICTING.
import { execFileSync } from 'node:child_process';

const [command, flag, config, ...namespaces] = process.argv.slice(2);
if (command !== 'sync' || flag !== '-c' || !config || namespaces.length < 2) {
  process.stderr.write('usage: pins.mjs sync -c CONFIG NAMESPACE NAMESPACE...\n');
  process.exit(2);
}
const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const run = (file, args, input) => execFileSync(file, args, { encoding: 'utf8', input, maxBuffer: 256 * 1024 * 1024 });
const inNs = (ns, args, input) => run('ip', ['netns', 'exec', ns, ...args], input);
/** Addresses stay text; marks (numbers) become 0x-hex, as slots.mjs prints them. */
const value = (v) => (typeof v === 'number' ? `0x${v.toString(16).padStart(8, '0')}` : String(v));
const nftValue = (v) => (v.startsWith('0x') ? String(Number(v)) : v);

const rendered = run(process.execPath, [cli, 'dsr', 'render', '-c', config]);
const services = [...rendered.matchAll(/^\tmap slots_(\S+) \{/gm)].map((m) => m[1]);
let disagreeing = 0;
let copied = 0;
let conflicting = 0;
for (const service of services) {
  const slots = new Map(
    run(process.execPath, [new URL('slots.mjs', import.meta.url).pathname, 'rendered', `slots_${service}`], rendered)
      .trim()
      .split('\n')
      .map((line) => line.split(' ')),
  );
  // Every director's pins: key "ADDR PORT" → value.
  const pins = namespaces.map((ns) => {
    const map = JSON.parse(inNs(ns, ['nft', '-j', 'list', 'map', 'ip', 'l4lb_dsr', `flows_${service}`])).nftables.find((e) => e.map).map;
    return new Map((map.elem ?? []).map(([key, v]) => [key.elem.val.concat.join(' '), value(v)]));
  });
  const keys = [...new Set(pins.flatMap((p) => [...p.keys()]))];
  if (keys.length === 0) continue;
  // What the current table gives each pinned flow (the slot from `l4lb dsr lookup`).
  const lookup = run(process.execPath, [cli, 'dsr', 'lookup', '-c', config, '--service', service], keys.map((k) => k.replace(' ', ':')).join('\n') + '\n');
  const table = new Map(lookup.trim().split('\n').map((line, i) => [keys[i], slots.get(line.split('\t')[2])]));
  const additions = namespaces.map(() => []);
  for (const [from, held] of pins.entries()) {
    for (const [key, pinned] of held) {
      if (pinned === table.get(key)) continue;
      disagreeing++;
      for (const [to, target] of pins.entries()) {
        if (to === from) continue;
        if (!target.has(key)) {
          target.set(key, pinned);
          additions[to].push(`${key.replace(' ', ' . ')} : ${nftValue(pinned)}`);
        } else if (target.get(key) !== pinned) conflicting++;
      }
    }
  }
  for (const [to, elements] of additions.entries()) {
    if (elements.length === 0) continue;
    inNs(namespaces[to], ['nft', '-f', '-'], `add element ip l4lb_dsr flows_${service} { ${elements.join(', ')} }\n`);
    copied += elements.length;
  }
}
process.stdout.write(`PINS_DISAGREEING=${disagreeing}\nPINS_COPIED=${copied}\nPINS_CONFLICTING=${conflicting}\n`);
