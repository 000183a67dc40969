/**
 * Blocks that need something a developer's machine may lack: root and network namespaces, ruby,
 * HAProxy, a real PostgreSQL or Redis. Outside CI such a block is skipped and its title says why;
 * test/reporters/skip-reasons.ts lists skipped titles at the end of the run. With CI=true (.ci/run
 * installs and starts everything) a missing capability is a failure, never a skip.
 */

/** CI=true: every capability must be there (see .ci/run). */
export const IN_CI = process.env.CI === 'true';

export interface Requirement {
  /** Skip the block: something is missing and this is not CI. */
  readonly skip: boolean;
  /** The block's title, with "(skipped: why)" when it is skipped. */
  readonly title: string;
}

/**
 * For `describe.skipIf(r.skip)(r.title, …)`: `missing` says what this machine lacks, undefined
 * when nothing. Outside CI a missing capability skips the block. With CI=true the block runs, and
 * must fail on what is missing (a beforeAll that throws naming it, or a test that does).
 */
export function requirement(title: string, missing: string | undefined): Requirement {
  const skip = missing !== undefined && !IN_CI;
  return { skip, title: skip ? `${title} (skipped: ${missing})` : title };
}
