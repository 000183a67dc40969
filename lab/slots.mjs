#!/usr/bin/env node
// Prints a slot map as "SLOT VALUE" lines sorted by slot, so two maps can be compared line by line.
//   slots.mjs kernel           stdin: `nft -j list map ip l4lb_dsr slots_ID` (what the kernel holds)
//   slots.mjs rendered MAP     stdin: a ruleset from `l4lb dsr render`; MAP: e.g. slots_web
const [source, mapName] = process.argv.slice(2);
let text = '';
for await (const chunk of process.stdin) text += chunk;

const hex = (value) => `0x${value.toString(16).padStart(8, '0')}`;
let rows;
if (source === 'kernel') {
  const map = JSON.parse(text).nftables.find((entry) => entry.map !== undefined)?.map;
  if (!map) throw new Error('no map in the input');
  rows = (map.elem ?? []).map(([key, value]) => [Number(key), typeof value === 'number' ? hex(value) : String(value)]);
} else if (source === 'rendered' && mapName) {
  const start = text.indexOf(`map ${mapName} {`);
  if (start < 0) throw new Error(`no map ${mapName} in the input`);
  const body = text.slice(text.indexOf('elements = {', start), text.indexOf('}', text.indexOf('elements = {', start) + 12));
  rows = [...body.matchAll(/(\d+) : (0x[0-9a-f]+|[0-9.]+)/g)].map((m) => [Number(m[1]), m[2].startsWith('0x') ? hex(Number(m[2])) : m[2]]);
} else {
  process.stderr.write('usage: slots.mjs kernel | slots.mjs rendered MAP\n');
  process.exit(2);
}
rows.sort((a, b) => a[0] - b[0]);
process.stdout.write(rows.map(([slot, value]) => `${slot} ${value}`).join('\n') + '\n');
