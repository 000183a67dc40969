/**
 * A `mode: nat` service whose backends come from a real DNS server, as root in a namespace of its
 * own (test/helpers/kernel-lab.ts): dnsmasq on the namespace's 127.0.0.1:5353 answers web.test
 * from a hosts file (re-read on SIGHUP, sent by PID), `l4lb run` serves VIP 127.0.0.1:8000 with a
 * named backend and a `dns:` entry, and the kernel's slot map is compared slot by slot with the
 * Maglev table of the named and discovered backends:
 * - at start the map holds both kinds;
 * - an added A record becomes one transaction that rewrites exactly the slots Maglev moves, and
 *   flows then land where the table says;
 * - with dnsmasq stopped the last good set stays and nothing is written.
 * With CI=true, a missing capability (root, ip netns, nft) or dnsmasq fails the suite.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kernelSlots, movedSlots, tableSlotNames } from '../src/kernel/index.js';
import { assertCapable, changedSlots, KernelLab, kernelLabRequirement, type LabProcess, type SlotMap, waitUntil } from './helpers/kernel-lab.js';
import { assertBuilt, SEED, slotOf, startKernelL4lb } from './helpers/kernel-topology.js';

const STEP_TIMEOUT = 120_000;
const SERVICE = 'web-dns';
const MAP = 'slots_web_dns';
const TABLE_SIZE = 31;
const DNS_PORT = 5353;
const DISCOVERED_PORT = 8010;
const dnsmasqMissing = spawnSync('dnsmasq', ['--version']).error === undefined ? undefined : 'dnsmasq is not installed';
const { requirement: lab, missing } = await kernelLabRequirement('kernel NAT with dns: backends against dnsmasq');

/** The map values of a set of backends: b1 is named, the others are discovered `ADDR:PORT`. */
function predicted(discovered: readonly string[]): string[] {
  const backends = [
    { name: 'b1', weight: 1, address: { host: '127.0.0.1', port: 8001 } },
    ...discovered.map((host) => ({ name: `${host}:${DISCOVERED_PORT}`, weight: 1, address: { host, port: DISCOVERED_PORT } })),
  ];
  return tableSlotNames(kernelSlots(backends, TABLE_SIZE).table).map((name) => {
    const backend = backends.find((candidate) => candidate.name === name);
    return `${backend?.address.host ?? '?'} . ${backend?.address.port ?? '?'}`;
  });
}

const asList = (map: SlotMap): string[] => Array.from({ length: TABLE_SIZE }, (_, slot) => map.get(slot) ?? '');

describe.skipIf(lab.skip)(lab.title, () => {
  let kernel!: KernelLab;
  let ns = '';
  let dnsmasq!: LabProcess;
  let l4lb!: LabProcess;
  let hosts = '';

  /** Rewrites the hosts file and has dnsmasq re-read it; resolves once it has. */
  async function answer(lines: readonly string[]): Promise<void> {
    const reads = dnsmasq.stderr().split(`read ${hosts}`).length;
    writeFileSync(hosts, `${lines.join('\n')}\n`);
    process.kill(dnsmasq.pid, 'SIGHUP');
    await waitUntil('dnsmasq to re-read its hosts file', () => (dnsmasq.stderr().split(`read ${hosts}`).length > reads ? true : undefined));
  }

  const slotMap = async (): Promise<SlotMap | undefined> => kernel.slotMap(ns, 'inet', 'l4lb_nat', MAP);
  const count = (msg: string): number => l4lb.records().filter((record) => record.msg === msg).length;

  beforeAll(async () => {
    assertCapable(missing);
    if (dnsmasqMissing !== undefined) throw new Error(dnsmasqMissing);
    assertBuilt();
    kernel = new KernelLab('natdns');
    ns = await kernel.namespace('local');
    hosts = kernel.file('hosts', '127.0.0.2 web.test\n');
    const conf = kernel.file('dnsmasq.conf', '');
    dnsmasq = kernel.start(ns, 'dnsmasq', 'dnsmasq', [
      '--keep-in-foreground', `--port=${DNS_PORT}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts',
      '--local=/test/', `--addn-hosts=${hosts}`, `--conf-file=${conf}`, '--pid-file=', '--user=root', '--log-facility=-',
    ]);
    await waitUntil('dnsmasq to read its hosts file', () => {
      if (!dnsmasq.running) throw new Error(`dnsmasq exited:\n${dnsmasq.transcript()}`);
      return dnsmasq.stderr().includes(`read ${hosts}`) ? true : undefined;
    });
    await kernel.serve(ns, 'b1', 8001, '127.0.0.1');
    for (const host of ['127.0.0.2', '127.0.0.3']) await kernel.serve(ns, `${host}:${DISCOVERED_PORT}`, DISCOVERED_PORT, host);
  }, STEP_TIMEOUT);

  afterAll(async () => {
    await kernel?.dispose();
  }, STEP_TIMEOUT);

  describe.sequential('one nat service: a named backend and a dns: entry', () => {
    it('at start the slot map is the Maglev table of the named and the discovered backends', async () => {
      const config = kernel.file('dns.yaml', [
        'admin: { listen: 127.0.0.1:9900 }',
        `resolvers: ["127.0.0.1:${DNS_PORT}"]`,
        'services:',
        `  - name: ${SERVICE}`,
        '    mode: nat',
        '    vip: 127.0.0.1:8000',
        '    hashKey: source-ip-port',
        `    hashSeed: ${SEED}`,
        `    tableSize: ${TABLE_SIZE}`,
        '    healthCheck: { type: tcp, interval: 500ms, fall: 2, rise: 2 }',
        '    backends:',
        '      - { name: b1, address: 127.0.0.1:8001 }',
        `      - { dns: web.test, port: ${DISCOVERED_PORT}, refresh: 1s }`,
        '',
      ].join('\n'));
      l4lb = await startKernelL4lb(kernel, ns, config);
      expect(asList((await slotMap())!)).toEqual(predicted(['127.0.0.2']));
      expect(count('kernel table loaded')).toBe(1);
    }, STEP_TIMEOUT);

    it('an added A record is one transaction of exactly the slots Maglev moves; flows land where the map says', async () => {
      const before = (await slotMap())!;
      const rewrites = count('kernel slots rewritten');
      await answer(['127.0.0.2 web.test', '127.0.0.3 web.test']);
      await l4lb.waitForRecord('dns: backends applied', (record) => record.backends === 3);
      const after = (await slotMap())!;
      expect(asList(after)).toEqual(predicted(['127.0.0.2', '127.0.0.3']));
      expect(changedSlots(before, after)).toEqual(movedSlots(predicted(['127.0.0.2']), predicted(['127.0.0.2', '127.0.0.3'])));
      expect(count('kernel slots rewritten')).toBe(rewrites + 1);
      expect(count('kernel table loaded')).toBe(1);

      const flows = await kernel.flows(ns, '127.0.0.1:8000', 21000, 200, { source: '127.0.0.1' });
      expect(flows.filter((flow) => flow.error !== undefined)).toEqual([]);
      const names = new Map([['127.0.0.1 . 8001', 'b1'], ['127.0.0.2 . 8010', '127.0.0.2:8010'], ['127.0.0.3 . 8010', '127.0.0.3:8010']]);
      const misplaced = flows.filter((flow) => flow.backend !== names.get(after.get(slotOf('127.0.0.1', flow.sport, TABLE_SIZE, SEED)) ?? ''));
      expect(misplaced.slice(0, 5)).toEqual([]);
      expect(new Set(flows.map((flow) => flow.backend))).toEqual(new Set(names.values()));
      process.stdout.write(`[kernel nat dns] an added A record moved ${changedSlots(before, after).length} of ${TABLE_SIZE} slots in one transaction; ${flows.length} flows, 0 errors, all on the slot's backend\n`);
    }, STEP_TIMEOUT);

    it('with the DNS server gone the last good set stays: nothing is written', async () => {
      const before = asList((await slotMap())!);
      const rewrites = count('kernel slots rewritten');
      await dnsmasq.stop();
      await l4lb.waitForRecord(/^dns: no answer: keeping the last good backends$/);
      expect(asList((await slotMap())!)).toEqual(before);
      expect(count('kernel slots rewritten')).toBe(rewrites);
    }, STEP_TIMEOUT);
  });
});
