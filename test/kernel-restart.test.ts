/**
 * Restarting `l4lb run` with a kernel NAT table in force (kernel-spec "Commands and behaviour"):
 * SIGTERM leaves the table; a new `l4lb run` reads it and applies only the difference, so with 60
 * long-lived flows open nothing breaks, nothing moves and the slot map is byte-identical.
 * `--cleanup-on-exit` removes the table at exit, and `l4lb kernel flush -c FILE` removes it too.
 * With CI=true, a missing capability fails the suite instead of skipping it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCapable, KernelLab, kernelLabRequirement, nftId } from './helpers/kernel-lab.js';
import { assertBuilt, natConfig, natForwarded, SERVICE, startKernelL4lb } from './helpers/kernel-topology.js';

const STEP_TIMEOUT = 180_000;
const MAP = `slots_${nftId(SERVICE)}`;
const { requirement: lab, missing } = await kernelLabRequirement('kernel restart: l4lb run stops and starts without moving a flow');

describe.skipIf(lab.skip)(lab.title, () => {
  let kernel!: KernelLab;

  beforeAll(() => {
    assertCapable(missing);
    assertBuilt();
    kernel = new KernelLab('restart');
  });

  afterAll(async () => {
    await kernel?.dispose();
  }, STEP_TIMEOUT);

  it('SIGTERM, start again, with 60 long-lived flows open: 0 broken, 0 moved, the slot map byte-identical', async () => {
    const nat = await natForwarded(kernel);
    const config = kernel.file('restart.yaml', natConfig(nat));
    const first = await startKernelL4lb(kernel, nat.director, config);
    const mapText = async (): Promise<string> => (await kernel.mustExec(nat.director, 'nft', ['list', 'map', 'inet', 'l4lb_nat', MAP])).stdout;
    const before = await mapText();
    const held = await kernel.hold(nat.client, `${nat.vip}:${nat.vipPort}`, 21000, 60, nat.clientIp);
    expect(held.opened.filter((flow) => flow.error !== undefined)).toEqual([]);
    const opened = new Map(held.opened.map((flow) => [flow.sport, flow.backend]));

    expect((await first.stop('SIGTERM')).code).toBe(0);
    expect(await mapText()).toBe(before);
    const between = await held.check();

    const second = await startKernelL4lb(kernel, nat.director, config);
    expect(await mapText()).toBe(before);
    const afterRestart = await held.check();
    for (const checked of [between, afterRestart]) {
      expect(checked.filter((flow) => flow.error !== undefined), 'broken flows').toEqual([]);
      expect(checked.filter((flow) => flow.backend !== opened.get(flow.sport)), 'moved flows').toEqual([]);
    }
    await held.close();
    expect((await second.stop('SIGTERM')).code).toBe(0);
    expect(await mapText()).toBe(before);
    process.stdout.write(`[kernel restart] ${held.opened.length} long-lived flows across a restart: 0 broken, 0 moved, map identical\n`);
  }, STEP_TIMEOUT);

  it('--cleanup-on-exit removes the table at exit; l4lb kernel flush removes a table left behind', async () => {
    const nat = await natForwarded(kernel, 2);
    const config = kernel.file('cleanup.yaml', natConfig(nat));
    const l4lb = await startKernelL4lb(kernel, nat.director, config, 'inet', 'l4lb_nat', ['--cleanup-on-exit']);
    expect((await l4lb.stop('SIGTERM')).code).toBe(0);
    expect(await kernel.tableText(nat.director, 'inet', 'l4lb_nat')).toBeUndefined();

    const again = await startKernelL4lb(kernel, nat.director, config);
    expect((await again.stop('SIGTERM')).code).toBe(0);
    expect(await kernel.tableText(nat.director, 'inet', 'l4lb_nat')).toBeDefined();
    const flush = await kernel.cli(nat.director, ['kernel', 'flush', '-c', config]);
    expect(flush.status, flush.stderr).toBe(0);
    expect(await kernel.tableText(nat.director, 'inet', 'l4lb_nat')).toBeUndefined();
  }, STEP_TIMEOUT);
});
