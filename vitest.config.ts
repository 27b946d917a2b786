import { defineConfig } from 'vitest/config';

// e2e files bring up real lab hosts (namespaces, sshd, keepalived, Redis builds): they run one
// file at a time on a 2-core machine and get generous timeouts. Unit tests are fast either way.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A cache folder of the suite's own; the keeper its CLI runs start is stopped at the end.
    globalSetup: ['test/support/global-setup.ts'],
    fileParallelism: false,
    testTimeout: 10 * 60_000,
    hookTimeout: 15 * 60_000,
    teardownTimeout: 5 * 60_000,
  },
});
