/**
 * What `npm run build` compiles into dist/ (and so what the package ships, `bench/` and the
 * demo run from): no test, no test support. Shipped files never import test support
 * (import-graph.test.ts), so excluding it from the build's roots keeps it out entirely.
 */
import { join, relative, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './graph.js';
import { kindOf } from './walls.js';

function rootFiles(config: string): string[] {
  const parsed = ts.getParsedCommandLineOfConfigFile(join(REPO_ROOT, config), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    },
  });
  if (parsed === undefined) throw new Error(`cannot read ${config}`);
  return parsed.fileNames.map((f) => relative(REPO_ROOT, f).split(sep).join('/')).sort();
}

describe('the published build (tsconfig.build.json)', () => {
  const shipped = rootFiles('tsconfig.build.json');

  it('compiles src/ and bench/ without tests or test support', () => {
    expect(shipped).toContain('src/cli/agent.ts');
    expect(shipped).toContain('src/sdk/index.ts');
    expect(shipped).toContain('bench/index.ts');
    expect(shipped.filter((f) => kindOf(f) !== 'source')).toEqual([]);
  });

  it('the test build (test/build.global-setup.ts) adds only the fixtures tests run from dist/', () => {
    const added = rootFiles('tsconfig.test-build.json').filter((f) => !shipped.includes(f));
    expect(added.length).toBeGreaterThan(0);
    expect(added.filter((f) => !/\/testdata\/[^/]+\.fixture\.ts$/.test(f))).toEqual([]);
  });
});
