import { defineConfig } from 'vitest/config';

/**
 * The fast tier (`npm run test:unit`): domain rules, policy, the use cases
 * and the writer's randomized model over in-memory fakes; no azurite, no
 * emulator, no processes. `npm test`
 * runs these too, with everything else.
 */
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/model/**/*.test.ts'],
    pool: 'threads',
    setupFiles: ['test/support/conformance-setup.ts'],
    testTimeout: 30_000,
    reporters: ['default'],
  },
});
