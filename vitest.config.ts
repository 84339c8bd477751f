import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    environment: 'node',
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Fail loudly rather than pass on nothing.
    passWithNoTests: false,
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
