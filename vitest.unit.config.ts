/**
 * `npm run test:unit`: the fast tier. Everything `npm test` runs except what needs tools
 * beyond Node and openssl (Go, Java with Maven, the py-spiffe and kubernetes-validate venvs,
 * a PostgreSQL cluster)
 * or takes real-process crash runs: the interop suites (test/interop), the PostgreSQL
 * suites (src/datastore/postgres/postgres.test.ts, *.postgres.test.ts), the manifest
 * schema check (test/k8s/schemas.test.ts) and the kill -9
 * runs (test/crash). So no go-spiffe judge is built (test/interop/global-setup.ts is not
 * run); the other global setups (the dist/ build for the process-spawning tests, the
 * /tmp cleanliness check) still are. `npm test` stays the full gate.
 */
import { configDefaults, defineConfig } from 'vitest/config';
import full from './vitest.config.js';

export const UNIT_EXCLUDE = [
  'test/interop/**',
  'test/crash/**',
  'src/datastore/postgres/postgres.test.ts',
  '**/*.postgres.test.ts',
  'test/k8s/schemas.test.ts',
];

const setups = full.test?.globalSetup ?? [];

export default defineConfig({
  test: {
    ...full.test,
    // The full suite's global setups but the interop one (it builds the Go, Java and SPIRE peers).
    globalSetup: (Array.isArray(setups) ? setups : [setups]).filter((s) => !s.includes('test/interop/')),
    exclude: [...configDefaults.exclude, ...UNIT_EXCLUDE],
  },
});
