import { defineConfig } from 'vitest/config';

/**
 * The fast tier (`npm run test:unit`): domain rules, policy and use cases
 * over in-memory fakes; no azurite, no emulator, no processes. `npm test`
 * runs these too, with everything else.
 */
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    pool: 'threads',
    testTimeout: 30_000,
    reporters: ['default'],
  },
});
