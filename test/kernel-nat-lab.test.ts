/**
 * `mode: nat` in the kernel (the contract: kernel-spec "Kernel objects", "Commands and behaviour"),
 * as root in namespaces of its own (test/helpers/kernel-lab.ts):
 * - forwarded clients (client ns → director ns running `l4lb run` → 3 backend namespaces) and
 *   local clients (one namespace, backends on 127.0.0.1, VIP 127.0.0.1:PORT): 600 flows from
 *   chosen source ports each land on the backend `l4lb route` predicts, with 0 errors, and the
 *   kernel's slot map holds, slot by slot, the backend the gated Maglev table names;
 * - a drain through the CLI (`l4lb drain SERVICE BACKEND` with the admin address): established
 *   flows to the drained backend survive, new ones avoid it, the slots that moved are exactly the
 *   predicted ones, and `l4lb enable` brings the table back byte for byte.
 * With CI=true, a missing capability (root, ip netns, nft) fails the suite instead of skipping it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCapable, changedSlots, KernelLab, kernelLabRequirement, nftId, type LabProcess, waitUntil } from './helpers/kernel-lab.js';
import {
  ADMIN, assertBuilt, natConfig, natForwarded, natLocal, natValue, predictedSlots, SEED, SERVICE, slotNames, slotOf, startKernelL4lb,
  TABLE_SIZE, type NatLab,
} from './helpers/kernel-topology.js';

const FLOWS = 600;
const STEP_TIMEOUT = 180_000;
const MAP = `slots_${nftId(SERVICE)}`;
const { requirement: lab, missing } = await kernelLabRequirement('kernel NAT: flows land where l4lb route predicts');

/** The packets each backend's named counter holds now (`be_SERVICE_BACKEND`, client → backend). */
async function counterPackets(kernel: KernelLab, nat: NatLab): Promise<Map<string, number>> {
  const listed = await kernel.mustExec(nat.director, 'nft', ['-j', 'list', 'counters', 'table', 'inet', 'l4lb_nat']);
  const objects = (JSON.parse(listed.stdout) as { nftables: Array<{ counter?: { name: string; packets: number } }> }).nftables;
  const packets = new Map<string, number>();
  for (const backend of nat.backends) {
    const counter = objects.find((object) => object.counter?.name === `be_${nftId(SERVICE)}_${nftId(backend.name)}`)?.counter;
    expect(counter, `counter of ${backend.name}`).toBeDefined();
    packets.set(backend.name, counter!.packets);
  }
  return packets;
}

/**
 * Runs FLOWS flows from firstPort… and compares each backend with `l4lb route`'s answer; each
 * backend's counter rose by that backend's client packets only (a flow is at least SYN, ACK and
 * FIN from the client, 4 measured here; at most 6, so counting the replies as well, about 8, fails).
 */
async function flowsAgreeWithRoute(kernel: KernelLab, nat: NatLab, config: string, firstPort: number): Promise<void> {
  const countedBefore = await counterPackets(kernel, nat);
  const flows = await kernel.flows(nat.client, `${nat.vip}:${nat.vipPort}`, firstPort, FLOWS, { source: nat.clientIp });
  const keys = flows.map((flow) => `${nat.clientIp}:${flow.sport}`);
  const predicted = await kernel.route(nat.director, config, SERVICE, keys);
  const errors = flows.filter((flow) => flow.error !== undefined);
  expect(errors, `flows with errors: ${JSON.stringify(errors.slice(0, 5))}`).toEqual([]);
  const wrong = flows.filter((flow) => flow.backend !== predicted.get(`${nat.clientIp}:${flow.sport}`));
  expect(wrong.length, `first misplaced: ${JSON.stringify(wrong.slice(0, 5))}`).toBe(0);
  const perBackend = new Map<string, number>();
  for (const flow of flows) perBackend.set(flow.backend!, (perBackend.get(flow.backend!) ?? 0) + 1);
  expect([...perBackend.keys()].sort()).toEqual(nat.backends.map((b) => b.name).sort());
  const countedAfter = await counterPackets(kernel, nat);
  for (const [backend, count] of perBackend) {
    const packets = (countedAfter.get(backend) ?? 0) - (countedBefore.get(backend) ?? 0);
    expect(packets, `${backend}: ${count} flows, ${packets} packets counted`).toBeGreaterThanOrEqual(3 * count);
    expect(packets, `${backend}: ${count} flows, ${packets} packets counted`).toBeLessThanOrEqual(6 * count);
  }
  const slots = new Set(flows.map((flow) => slotOf(nat.clientIp, flow.sport, TABLE_SIZE, SEED)));
  expect(slots.size).toBe(TABLE_SIZE);
  process.stdout.write(`[kernel nat] ${FLOWS} flows from ${nat.clientIp}:${firstPort}…: ${[...perBackend].map(([b, n]) => `${b} ${n}`).join(', ')}; all on the predicted backend; counted packets ${[...perBackend.keys()].map((b) => `${b} ${(countedAfter.get(b) ?? 0) - (countedBefore.get(b) ?? 0)}`).join(', ')}\n`);
}

/** The kernel's slot map, in backend names, equals the per-slot prediction of the config. */
async function mapMatchesPrediction(kernel: KernelLab, nat: NatLab, config: string): Promise<void> {
  const map = await kernel.slotMap(nat.director, 'inet', 'l4lb_nat', MAP);
  expect(map, `map inet l4lb_nat ${MAP} is listed`).toBeDefined();
  const names = nat.backends.map((b) => b.name);
  expect(slotNames(map!, (name) => natValue(nat, name), names)).toEqual(await predictedSlots(kernel, nat.director, config, nat));
}

describe.skipIf(lab.skip)(lab.title, () => {
  let kernel!: KernelLab;

  beforeAll(() => {
    assertCapable(missing);
    assertBuilt();
    kernel = new KernelLab('nat');
  });

  afterAll(async () => {
    await kernel?.dispose();
  }, STEP_TIMEOUT);

  describe.sequential('forwarded clients: client ns → director ns → 3 backend ns', () => {
    let nat: NatLab;
    let config: string;
    let l4lb: LabProcess;

    it(`${FLOWS} flows land on the predicted backend, 0 errors; the slot map is the gated Maglev table`, async () => {
      nat = await natForwarded(kernel);
      config = kernel.file('forwarded.yaml', natConfig(nat));
      l4lb = await startKernelL4lb(kernel, nat.director, config);
      await mapMatchesPrediction(kernel, nat, config);
      await flowsAgreeWithRoute(kernel, nat, config, 20000);
    }, STEP_TIMEOUT);

    it('the backends see the SNAT address, not the client (full NAT)', async () => {
      const conntrack = await kernel.mustExec(nat.director, 'cat', ['/proc/net/nf_conntrack']);
      const natted = conntrack.stdout.split('\n').filter((line) => line.includes(`dst=${nat.vip}`) && line.includes('dport=80'));
      expect(natted.length).toBeGreaterThan(0);
      for (const line of natted.slice(0, 50)) expect(line).toContain(`dst=${nat.snat}`);
    }, STEP_TIMEOUT);

    it('drain through the CLI: established flows to the backend survive, new flows avoid it, moved slots as predicted', async () => {
      const held = await kernel.hold(nat.client, `${nat.vip}:${nat.vipPort}`, 22000, 60, nat.clientIp);
      expect(held.opened.filter((flow) => flow.error)).toEqual([]);
      const drained = 'b1';
      expect(held.opened.some((flow) => flow.backend === drained)).toBe(true);
      const before = (await kernel.slotMap(nat.director, 'inet', 'l4lb_nat', MAP))!;
      const drainedConfig = kernel.file('forwarded-drained.yaml', natConfig(nat, { states: { [drained]: 'draining' } }));
      const predictedBefore = await predictedSlots(kernel, nat.director, config, nat);
      const predictedAfter = await predictedSlots(kernel, nat.director, drainedConfig, nat);
      const predictedMoved = [...predictedBefore.keys()].filter((slot) => predictedBefore.get(slot) !== predictedAfter.get(slot)).sort((a, b) => a - b);

      const drain = await kernel.cli(nat.director, ['drain', SERVICE, drained, '--admin', ADMIN]);
      expect(drain.status, drain.stderr).toBe(0);
      const after = await waitUntil('the slot map to change after the drain', async () => {
        const map = await kernel.slotMap(nat.director, 'inet', 'l4lb_nat', MAP);
        return map && changedSlots(before, map).length > 0 ? map : undefined;
      });
      expect(changedSlots(before, after)).toEqual(predictedMoved);
      expect(slotNames(after, (name) => natValue(nat, name), nat.backends.map((b) => b.name))).toEqual(predictedAfter);

      const checked = await held.check();
      const opened = new Map(held.opened.map((flow) => [flow.sport, flow.backend]));
      expect(checked.filter((flow) => flow.error !== undefined)).toEqual([]);
      expect(checked.filter((flow) => flow.backend !== opened.get(flow.sport))).toEqual([]);

      const fresh = await kernel.flows(nat.client, `${nat.vip}:${nat.vipPort}`, 23000, 300, { source: nat.clientIp });
      expect(fresh.filter((flow) => flow.error !== undefined)).toEqual([]);
      expect(fresh.filter((flow) => flow.backend === drained)).toEqual([]);
      const keyOf = (sport: number): string => `${nat.clientIp}:${sport}`;
      const predictedFresh = await kernel.route(nat.director, drainedConfig, SERVICE, fresh.map((flow) => keyOf(flow.sport)));
      expect(fresh.filter((flow) => flow.backend !== predictedFresh.get(keyOf(flow.sport)))).toEqual([]);

      const enable = await kernel.cli(nat.director, ['enable', SERVICE, drained, '--admin', ADMIN]);
      expect(enable.status, enable.stderr).toBe(0);
      await waitUntil('the slot map to return after enable', async () => {
        const map = await kernel.slotMap(nat.director, 'inet', 'l4lb_nat', MAP);
        return map && changedSlots(before, map).length === 0 ? true : undefined;
      });
      await held.close();
      process.stdout.write(`[kernel nat] drain ${drained}: ${predictedMoved.length}/${TABLE_SIZE} slots moved as predicted, ${checked.length} held flows kept their backend\n`);
    }, STEP_TIMEOUT);

    it('l4lb run stops on SIGTERM with exit code 0', async () => {
      const { code } = await l4lb.stop('SIGTERM');
      expect(code).toBe(0);
    }, STEP_TIMEOUT);
  });

  describe.sequential('local clients: one namespace, backends on 127.0.0.1, VIP 127.0.0.1:8000', () => {
    it(`${FLOWS} flows land on the predicted backend, 0 errors; the slot map is the gated Maglev table`, async () => {
      const nat = await natLocal(kernel);
      const config = kernel.file('local.yaml', natConfig(nat));
      const l4lb = await startKernelL4lb(kernel, nat.director, config);
      await mapMatchesPrediction(kernel, nat, config);
      await flowsAgreeWithRoute(kernel, nat, config, 24000);
      expect((await l4lb.stop('SIGTERM')).code).toBe(0);
    }, STEP_TIMEOUT);
  });
});
