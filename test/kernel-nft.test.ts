/**
 * The system nft runner (src/kernel/nft.ts) against the real nft 1.0.6, as root in a namespace of
 * its own: what the DSR pin deletion relies on. `listMap` reads one map of a dynamic timeout map
 * (keys wrapped with their expiry) as `ADDR . PORT` → value, an absent map is undefined, and a
 * `delete element` of a missing key is refused whole with cause not-found (the writer lists again on
 * that cause), while the keys the script named are all still there.
 * With CI=true, a missing capability fails the suite instead of skipping it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCapable, KernelLab, kernelLabRequirement, REPO } from './helpers/kernel-lab.js';
import { assertBuilt } from './helpers/kernel-topology.js';

const { requirement: lab, missing } = await kernelLabRequirement('kernel nft runner: listMap and not-found against the real nft');

/** Runs inside the namespace: systemNft from dist/, one JSON line of what it saw. */
const PROBE = `
import { systemNft, mapEntries } from '${REPO}dist/kernel/index.js';
const table = 'ip l4lb_dsr';
await systemNft.apply([
  'table ip l4lb_dsr {',
  '\\tmap flows_web { type ipv4_addr . inet_service : ipv4_addr; size 1024; flags dynamic, timeout; timeout 1h; }',
  '}',
  'add element ip l4lb_dsr flows_web { 198.51.100.10 . 30000 : 203.0.113.12, 198.51.100.10 . 80 : 203.0.113.11 }',
  '',
].join('\\n'), table);
const listed = [...mapEntries(await systemNft.listMap('ip', 'l4lb_dsr', 'flows_web'))].sort();
const absent = (await systemNft.listMap('ip', 'l4lb_dsr', 'flows_nope')) === undefined;
let cause = 'none';
try {
  await systemNft.apply('delete element ip l4lb_dsr flows_web { 198.51.100.10 . 30000, 198.51.100.10 . 1 }\\n', table);
} catch (error) {
  cause = error.cause;
}
const after = [...mapEntries(await systemNft.listMap('ip', 'l4lb_dsr', 'flows_web'))].sort();
await systemNft.apply('delete element ip l4lb_dsr flows_web { 198.51.100.10 . 30000 }\\n', table);
const deleted = [...mapEntries(await systemNft.listMap('ip', 'l4lb_dsr', 'flows_web'))].sort();
process.stdout.write(JSON.stringify({ listed, absent, cause, after, deleted }) + '\\n');
`;

describe.skipIf(lab.skip)(lab.title, () => {
  let kernel!: KernelLab;

  beforeAll(() => {
    assertCapable(missing);
    assertBuilt();
    kernel = new KernelLab('nft');
  });

  afterAll(async () => {
    await kernel?.dispose();
  }, 60_000);

  it('lists a timeout map by key, and a missing key makes the whole delete not-found', async () => {
    const ns = await kernel.namespace('nft runner');
    const result = await kernel.mustExec(ns, process.execPath, ['--input-type=module', '-e', PROBE]);
    const seen = JSON.parse(result.stdout.trim()) as Record<string, unknown>;
    const both = [['198.51.100.10 . 30000', '203.0.113.12'], ['198.51.100.10 . 80', '203.0.113.11']];
    expect(seen).toEqual({
      listed: both,
      absent: true,
      cause: 'not-found',
      after: both,
      deleted: [['198.51.100.10 . 80', '203.0.113.11']],
    });
  }, 60_000);
});
