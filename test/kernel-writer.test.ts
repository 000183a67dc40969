/**
 * The kernel writer (src/kernel writer.ts) over a fake nft: what it loads at start, that a health
 * change becomes one transaction of exactly the moved slots, that a refused transaction leaves the
 * previous state, and that a restart on an identical table moves nothing.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Config, NatServiceConfig } from '../src/config/index.js';
import { KernelError } from '../src/errors.js';
import { KernelWriter, gatedSlotNames, kernelSlots, movedSlots, planNat, type NftObject, type NftRunner } from '../src/kernel/index.js';
import { ServiceState, type VerdictSink, type VerdictSource } from '../src/services/index.js';

const service: NatServiceConfig = {
  mode: 'nat',
  name: 'web',
  vip: { host: '127.0.0.1', port: 8000 },
  hashKey: 'source-ip-port',
  hashSeed: 1,
  tableSize: 31,
  onDown: 'close',
  healthCheck: { type: 'tcp', interval: 1000, timeout: 1000, rise: 1, fall: 1, initial: 'up' },
  backends: [1, 2, 3].map((i) => ({ name: `b${i}`, address: { host: '127.0.0.1', port: 8000 + i }, weight: 1 })),
};
const config: Config = { services: [service] };

/** Verdicts a test decides: the sinks, by service, to call applyHealth on. */
function manualVerdicts(): { sinks: Map<string, VerdictSink>; sources: (sink: VerdictSink) => VerdictSource } {
  const sinks = new Map<string, VerdictSink>();
  return {
    sinks,
    sources: (sink) => {
      sinks.set(sink.service, sink);
      return { decides: true, configure: () => {}, observe: () => {}, stop: () => Promise.resolve() };
    },
  };
}

/** A fake nft: records scripts, refuses when told, lists what a test gives it. */
class FakeNft implements NftRunner {
  scripts: string[] = [];
  refuse = false;
  listing: NftObject[] | undefined;
  apply(script: string, table: string): Promise<void> {
    if (this.refuse) return Promise.reject(new KernelError({ cause: 'refused', table, detail: 'Error: No such file or directory' }));
    this.scripts.push(script);
    return Promise.resolve();
  }
  list(): Promise<NftObject[] | undefined> {
    return Promise.resolve(this.listing);
  }
}

function writerWith(nft: FakeNft): { writer: KernelWriter; sinks: Map<string, VerdictSink> } {
  const { sinks, sources } = manualVerdicts();
  return { writer: new KernelWriter({ nft, logger: pino({ level: 'silent' }), verdicts: sources }), sinks };
}

/** The slots the gate gives with `down` down. */
function expectedSlots(down: string[]): string[] {
  const [plan] = planNat([service]);
  if (plan === undefined) throw new Error('no plan');
  const state = new ServiceState('web', { verdicts: () => ({ decides: true, configure: () => {}, observe: () => {}, stop: () => Promise.resolve() }) });
  state.update(service, service.backends);
  for (const name of down) state.applyHealth(name, 'down', 'test');
  return gatedSlotNames(kernelSlots(plan.backends, plan.tableSize), state);
}

function slotKeys(script: string, verb: 'delete' | 'add'): number[] {
  const body = new RegExp(`${verb} element inet l4lb_nat slots_web \\{\\n([^}]*)\\n\\}`).exec(script)?.[1] ?? '';
  return verb === 'delete' ? body.split(/[,\s]+/).filter(Boolean).map(Number) : [...body.matchAll(/(\d+) :/g)].map((m) => Number(m[1]));
}

describe('KernelWriter', () => {
  it('loads the whole table at start when there is none', async () => {
    const nft = new FakeNft();
    const { writer } = writerWith(nft);
    await writer.apply(config);
    expect(nft.scripts).toHaveLength(1);
    expect(nft.scripts[0]).toContain('table inet l4lb_nat {\n\tset l4lb_owner {');
    await writer.stop();
  });

  it('a backend going down is one transaction of exactly its slots, plus the dead set', async () => {
    const nft = new FakeNft();
    const { writer, sinks } = writerWith(nft);
    await writer.apply(config);
    sinks.get('web')?.applyHealth('b2', 'down', 'refused');
    await writer.settled();
    expect(nft.scripts).toHaveLength(2);
    const moved = movedSlots(expectedSlots([]), expectedSlots(['b2']));
    expect(moved.length).toBeGreaterThan(0);
    expect(slotKeys(nft.scripts[1] ?? '', 'delete')).toEqual(moved);
    expect(slotKeys(nft.scripts[1] ?? '', 'add')).toEqual(moved);
    expect(nft.scripts[1]).toContain('add element inet l4lb_nat dead_web {\n\t127.0.0.1 . 8002\n}');
    expect((await writer.stats())[0]?.backends.find((backend) => backend.name === 'b2')).toMatchObject({ health: 'down', slots: 0 });
    await writer.stop();
  });

  it('a refused transaction leaves the previous state: the next change is computed from it', async () => {
    const nft = new FakeNft();
    const { writer, sinks } = writerWith(nft);
    await writer.apply(config);
    nft.refuse = true;
    sinks.get('web')?.applyHealth('b2', 'down', 'refused');
    await writer.settled();
    expect(writer.counters.refused).toBe(1);
    expect((await writer.stats())[0]?.backends.find((backend) => backend.name === 'b2')?.slots).toBe(expectedSlots([]).filter((name) => name === 'b2').length);
    nft.refuse = false;
    sinks.get('web')?.applyHealth('b3', 'down', 'refused');
    await writer.settled();
    // Written against what the kernel still holds: b2's and b3's slots both move now.
    const moved = movedSlots(expectedSlots([]), expectedSlots(['b2', 'b3']));
    expect(slotKeys(nft.scripts[1] ?? '', 'delete')).toEqual(moved);
    await writer.stop();
  });

  it('draining moves slots without resetting anyone', async () => {
    const nft = new FakeNft();
    const { writer } = writerWith(nft);
    await writer.apply(config);
    writer.setState('web', 'b1', 'draining');
    await writer.settled();
    expect(nft.scripts[1]).toContain('delete element inet l4lb_nat slots_web');
    expect(nft.scripts[1]).not.toContain('dead_web');
    await writer.stop();
  });

  it('adopts an identical table at start and moves nothing; refuses a table it did not make', async () => {
    const first = new FakeNft();
    const { writer } = writerWith(first);
    await writer.apply(config);
    await writer.stop();
    const slots = expectedSlots([]);
    const shape = /elements = \{ (0x[0-9a-f]+) \}/.exec(first.scripts[0] ?? '')?.[1];
    const adopted = new FakeNft();
    adopted.listing = [
      { set: { name: 'l4lb_owner', elem: [Number(shape)] } },
      { map: { name: 'slots_web', elem: slots.map((name, slot) => [slot, { concat: ['127.0.0.1', 8000 + Number(name.slice(1))] }]) } },
      { set: { name: 'dead_web' } },
    ];
    const second = writerWith(adopted).writer;
    await second.apply(config);
    expect(adopted.scripts).toEqual([]);
    await second.stop();
    const foreign = new FakeNft();
    foreign.listing = [{ table: { name: 'l4lb_nat' } }];
    const third = writerWith(foreign).writer;
    await expect(third.apply(config)).rejects.toMatchObject({ code: 'LB_ERR_KERNEL', cause: 'table-owned' });
    await third.stop();
  });

  it('drives a dsr service too: the director table at start, then only its moved slots', async () => {
    const nft = new FakeNft();
    const { writer, sinks } = writerWith(nft);
    const dsr: Config = {
      services: [
        {
          mode: 'dsr', name: 'web', vip: { host: '192.0.2.200', port: 80 }, dscp: 10, hashKey: 'source-ip-port', hashSeed: 1, tableSize: 31, onDown: 'close',
          healthCheck: { type: 'tcp', interval: 1000, timeout: 1000, rise: 1, fall: 1, initial: 'up' },
          backends: [1, 2, 3].map((i) => ({ name: `b${i}`, address: { host: `203.0.113.1${i}`, port: 80 }, weight: 1 })),
        },
      ],
    };
    await writer.apply(dsr);
    expect(nft.scripts).toHaveLength(1);
    expect(nft.scripts[0]).toContain('table ip l4lb_dsr {');
    sinks.get('web')?.applyHealth('b2', 'down', 'refused');
    await writer.settled();
    expect(nft.scripts).toHaveLength(2);
    const moved = movedSlots(expectedSlots([]), expectedSlots(['b2']));
    const deleted = /delete element ip l4lb_dsr slots_web \{\n([^}]*)\n\}/.exec(nft.scripts[1] ?? '')?.[1] ?? '';
    expect(deleted.split(/[,\s]+/).filter(Boolean).map(Number)).toEqual(moved);
    expect(nft.scripts[1]).not.toContain('203.0.113.12');
    await writer.stop();
  });
});
