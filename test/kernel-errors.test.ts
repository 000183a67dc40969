/**
 * What `l4lb run` does when it cannot program the kernel (kernel-spec "Errors"): nft not on PATH,
 * a table of l4lb's name that l4lb did not make (the name clash), and not root (run as nobody).
 * A table carrying l4lb's marker set is l4lb's and is replaced whole, so a clash inside it is not
 * refused; the refused cause is covered by the writer's unit tests (an injected nft runner). Each: exit code 1, one clear line on stderr, and nothing
 * half-applied (the table absent, or the one there before intact, byte for byte).
 * With CI=true, a missing capability fails the suite instead of skipping it.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCapable, CLI, KernelLab, kernelLabRequirement, type RunResult } from './helpers/kernel-lab.js';
import { assertBuilt, natConfig, natLocal, type NatLab } from './helpers/kernel-topology.js';

const STEP_TIMEOUT = 120_000;
const { requirement: lab, missing } = await kernelLabRequirement('kernel errors: l4lb run fails cleanly and applies nothing');

/** Exit 1 and exactly one non-empty stderr line, matching `pattern`. */
function expectOneLineFailure(result: RunResult, pattern: RegExp): void {
  const lines = result.stderr.split('\n').filter((line) => line.trim() !== '');
  expect(result.status, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(1);
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
}

describe.skipIf(lab.skip)(lab.title, () => {
  let kernel!: KernelLab;
  let nat: NatLab;
  let config: string;

  beforeAll(async () => {
    assertCapable(missing);
    assertBuilt();
    kernel = new KernelLab('errors');
    // `nobody` must read the config: the lab's directory is private by default.
    chmodSync(kernel.dir, 0o755);
    nat = await natLocal(kernel, 2);
    config = kernel.file('errors.yaml', natConfig(nat));
    chmodSync(config, 0o644);
  }, STEP_TIMEOUT);

  afterAll(async () => {
    await kernel?.dispose();
  }, STEP_TIMEOUT);

  it('nft not on PATH: exit 1, one line naming nft, no table', async () => {
    const empty = join(kernel.dir, 'empty-bin');
    mkdirSync(empty);
    const result = await kernel.exec(nat.director, process.execPath, [CLI, 'run', '-c', config], { env: { ...process.env, PATH: empty } });
    expectOneLineFailure(result, /nft/);
    expect(await kernel.tableText(nat.director, 'inet', 'l4lb_nat')).toBeUndefined();
  }, STEP_TIMEOUT);

  it('not root (nobody, via setpriv): exit 1, one line saying so, no table', async () => {
    const result = await kernel.exec(nat.director, 'setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'run', '-c', config]);
    expectOneLineFailure(result, /root|permitted|privilege/i);
    expect(await kernel.tableText(nat.director, 'inet', 'l4lb_nat')).toBeUndefined();
  }, STEP_TIMEOUT);

  it('a foreign table named inet l4lb_nat: exit 1, one line, the foreign table intact', async () => {
    await kernel.nftLoad(nat.director, 'table inet l4lb_nat {\n\tset mine { type ipv4_addr; }\n}\n');
    const before = await kernel.tableText(nat.director, 'inet', 'l4lb_nat');
    const result = await kernel.cli(nat.director, ['run', '-c', config]);
    expectOneLineFailure(result, /l4lb_nat/);
    expect(await kernel.tableText(nat.director, 'inet', 'l4lb_nat')).toBe(before);
    await kernel.mustExec(nat.director, 'nft', ['delete', 'table', 'inet', 'l4lb_nat']);
  }, STEP_TIMEOUT);
});
