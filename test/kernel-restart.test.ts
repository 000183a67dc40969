/**
 * Restarting `l4lb run` with a kernel NAT table in force (kernel-spec "Commands and behaviour"):
 * SIGTERM leaves the table; a new `l4lb run` reads it and applies only the difference, so with 60
 * long-lived flows open nothing breaks, nothing moves and the slot map is byte-identical.
 * The same for the DSR director table `ip l4lb_dsr`, which holds flows by their pins in flows_ID:
 * the restart adopts the table, so the pins stay (every held flow's pin, before = after), and
 * /stats (`l4lb status --json`) shows the pins per backend.
 * `--cleanup-on-exit` removes the table at exit, and `l4lb kernel flush -c FILE` removes it too.
 * With CI=true, a missing capability fails the suite instead of skipping it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCapable, KernelLab, kernelLabRequirement, nftId } from './helpers/kernel-lab.js';
import type { DsrKernelStats } from '../src/kernel/index.js';
import { ADMIN, assertBuilt, DSR_SERVICE, dsrConfig, dsrLab, natConfig, natForwarded, SERVICE, startDsrBackends, startKernelL4lb } from './helpers/kernel-topology.js';

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

  it('dsr: SIGTERM, start again, with 60 long-lived flows open: 0 broken, 0 moved, slot map and pins unchanged', async () => {
    const dsr = await dsrLab(kernel);
    const config = kernel.file('restart-dsr.yaml', dsrConfig(dsr));
    await startDsrBackends(kernel, dsr, config);
    const first = await startKernelL4lb(kernel, dsr.director, config, 'ip', 'l4lb_dsr');
    const flowsMap = `flows_${nftId(DSR_SERVICE)}`;
    const mapText = async (): Promise<string> => (await kernel.mustExec(dsr.director, 'nft', ['list', 'map', 'ip', 'l4lb_dsr', `slots_${nftId(DSR_SERVICE)}`])).stdout;
    const pinsNow = async (): Promise<Map<string, string>> => (await kernel.nftMap(dsr.director, 'ip', 'l4lb_dsr', flowsMap)) ?? new Map<string, string>();
    const before = await mapText();
    const held = await kernel.hold(dsr.client, `${dsr.vip}:${dsr.vipPort}`, 23000, 60, dsr.clientIp);
    expect(held.opened.filter((flow) => flow.error !== undefined)).toEqual([]);
    const opened = new Map(held.opened.map((flow) => [flow.sport, flow.backend]));
    const addressOf = new Map(dsr.backends.map((backend) => [backend.name, backend.address]));
    // Every held flow is pinned to the backend that answers it.
    const expectedPins = new Map(held.opened.map((flow) => [`${dsr.clientIp} . ${flow.sport}`, addressOf.get(flow.backend ?? '') ?? '?']));
    const pinsBefore = await pinsNow();
    expect(new Map([...pinsBefore].filter(([key]) => expectedPins.has(key)))).toEqual(expectedPins);

    // /stats: the pins per backend are the held flows per backend.
    const status = await kernel.cli(dsr.director, ['status', '--admin', ADMIN, '--json']);
    expect(status.status, status.stderr).toBe(0);
    const row = (JSON.parse(status.stdout) as { kernel?: DsrKernelStats[] }).kernel?.find((entry) => entry.service === DSR_SERVICE);
    expect(row).toMatchObject({ mode: 'dsr', table: 'ip l4lb_dsr', vip: `${dsr.vip}:${dsr.vipPort}`, slots: 31, pins: pinsBefore.size });
    for (const backend of dsr.backends) {
      const heldOn = held.opened.filter((flow) => flow.backend === backend.name).length;
      expect(row?.backends.find((entry) => entry.name === backend.name)?.pins, backend.name).toBe(heldOn);
    }
    expect(row?.backends.reduce((sum, backend) => sum + backend.slots, 0)).toBe(31);

    expect((await first.stop('SIGTERM')).code).toBe(0);
    expect(await mapText()).toBe(before);
    const between = await held.check();

    const second = kernel.l4lb(dsr.director, config);
    const adopted = await second.waitForRecord('kernel table adopted', (record) => record.table === 'ip l4lb_dsr', 60_000);
    expect(adopted).toMatchObject({ moved: 0 });
    expect(Number(adopted.pins)).toBeGreaterThanOrEqual(held.opened.length);
    await second.waitForRecord('admin API listening');
    expect(second.records().filter((record) => record.msg === 'kernel table loaded')).toEqual([]);
    expect(await mapText()).toBe(before);
    const pinsAfter = await pinsNow();
    const afterRestart = await held.check();
    for (const checked of [between, afterRestart]) {
      expect(checked.filter((flow) => flow.error !== undefined), 'broken flows').toEqual([]);
      expect(checked.filter((flow) => flow.backend !== opened.get(flow.sport)), 'moved flows').toEqual([]);
    }
    expect(new Map([...pinsAfter].filter(([key]) => expectedPins.has(key)))).toEqual(expectedPins);
    expect(pinsAfter.size).toBe(pinsBefore.size);
    await held.close();
    expect((await second.stop('SIGTERM')).code).toBe(0);
    expect(await mapText()).toBe(before);
    process.stdout.write(`[kernel restart dsr] ${held.opened.length} long-lived flows across a restart: 0 broken, 0 moved, slot map identical, pins in ${flowsMap} ${pinsBefore.size} before, ${pinsAfter.size} after (adopted: ${String(adopted.pins)} pins, ${String(adopted.moved)} slots rewritten)\n`);
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
