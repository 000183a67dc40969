import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The default reporter counts skipped tests; skip-reasons lists them with their reasons.
    reporters: ['default', './test/reporters/skip-reasons.ts'],
    // Removes the port claims of freePort's exited workers once the run ends.
    globalSetup: ['./test/helpers/port-claims.ts'],
  },
});
