import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // Every answer a test receives from a broker it started is checked against the OpenAPI document.
    setupFiles: ['test/support/conformance-setup.ts'],
    pool: 'forks',
    // Two cores: integration and end-to-end files start real processes.
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
