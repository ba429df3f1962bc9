import { defineConfig } from 'vitest/config';

// In CI the log is read from its beginning: one line per failure as it happens and a short
// summary (test/reporters/watchdog.ts, compact), no output from passing tests. Everywhere,
// the watchdog names a stalled test and ends a run that passes its budget.
const ci = process.env.CI === 'true';
const watchdog = './test/reporters/watchdog.ts';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    setupFiles: ['./test/setup.ts'],
    globalSetup: ['./test/cleanliness.global-setup.ts', './test/build.global-setup.ts', './test/interop/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
    pool: 'forks',
    reporters: ci ? [[watchdog, { compact: true, stallSeconds: 240, budgetSeconds: 40 * 60 }]] : ['default', [watchdog, { stallSeconds: 300 }]],
    silent: ci ? 'passed-only' : false,
  },
});
