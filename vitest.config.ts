import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // A test's timeout bounds a hang; it is not a speed check. Many tests start l4lb or nft as
    // processes, and on a loaded 2-core machine (CI, or two copies of the suite side by side) a
    // Node start alone took over 5 s, vitest's default, so the default failed healthy tests.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // The default reporter counts skipped tests; skip-reasons lists them with their reasons.
    reporters: ['default', './test/reporters/skip-reasons.ts'],
    // Removes the port claims of freePort's exited workers once the run ends.
    globalSetup: ['./test/helpers/port-claims.ts'],
  },
});
