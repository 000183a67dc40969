/**
 * A vitest reporter that ends a run with every skipped test and why. The default reporter only
 * counts skips, and l4lb's skips carry their reason in the block's title (test/helpers/skip.ts)
 * or in `ctx.skip(note)`. A block skipped as a whole is one line with its test count. Tests that
 * did not run because their block failed (a beforeAll threw) are failures, reported as such, not
 * listed here. It prints nothing when a name filter (`-t`) is active: then most skips are the
 * filter's, not a missing capability's.
 */
import type { Reporter, TestCase, TestModule, TestSuite, Vitest } from 'vitest/node';

/** The outermost block around `test` whose tests were all skipped (or `test` itself). */
function skippedBlock(test: TestCase): TestCase | TestSuite {
  let block: TestCase | TestSuite = test;
  while (block.parent.type === 'suite' && [...block.parent.children.allTests()].every((t) => t.result().state === 'skipped')) {
    block = block.parent;
  }
  return block;
}

/** Whether a block around `test` failed (a beforeAll threw): vitest then marks its tests skipped. */
function notRunAfterFailure(test: TestCase): boolean {
  for (let block: TestSuite | TestModule = test.parent; ; block = block.parent) {
    if (block.errors().length > 0) return true;
    if (block.type === 'module') return false;
  }
}

export default class SkipReasons implements Reporter {
  private vitest: Vitest | undefined;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    if (this.vitest === undefined || this.vitest.config.testNamePattern !== undefined) return;
    const lines: string[] = [];
    for (const module of modules) {
      const blocks = new Map<TestCase | TestSuite, number>();
      for (const test of module.children.allTests('skipped')) {
        if (notRunAfterFailure(test)) continue;
        const block = skippedBlock(test);
        blocks.set(block, (blocks.get(block) ?? 0) + 1);
      }
      for (const [block, count] of blocks) {
        const result = block.type === 'test' ? block.result() : undefined;
        const note = result?.state === 'skipped' && result.note ? ` (skipped: ${result.note})` : '';
        const todo = block.type === 'test' && block.options.mode === 'todo' ? ' (todo)' : '';
        const unexplained = note === '' && todo === '' && !block.fullName.includes('skipped: ') ? ' (no reason given)' : '';
        const tests = block.type === 'suite' ? `: ${count} test${count === 1 ? '' : 's'}` : '';
        lines.push(`  ${module.relativeModuleId} > ${block.fullName}${note}${todo}${unexplained}${tests}`);
      }
    }
    if (lines.length === 0) return;
    this.vitest.logger.log(['', ' Skipped, and why:', ...lines, ''].join('\n'));
  }
}
