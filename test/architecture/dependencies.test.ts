/**
 * package.json tells the truth: `dependencies` are exactly the packages shipped code loads
 * at run time (a production install, `npm ci --omit=dev`, runs everything `npm run build`
 * emits); packages only tests use, or only types name (erased at compile time), are
 * `devDependencies`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPackageImports, REPO_ROOT } from './graph.js';
import { kindOf } from './walls.js';

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const imports = readPackageImports();
const shipped = [...imports].filter(([f]) => f.startsWith('src/') && kindOf(f) === 'source');

/** Packages shipped code loads at run time, with one place that does. */
function runtimePackages(): Map<string, string> {
  const out = new Map<string, string>();
  for (const [file, list] of shipped) for (const i of list) if (!i.typeOnly && !out.has(i.pkg)) out.set(i.pkg, `${file}:${i.line}`);
  // ec-native.ts loads koffi lazily with createRequire (no import statement to read).
  if (readFileSync(join(REPO_ROOT, 'src/spiffe/x509/ec-native.ts'), 'utf8').includes("createRequire(import.meta.url)('koffi')") && !out.has('koffi')) out.set('koffi', 'src/spiffe/x509/ec-native.ts');
  // asn1-lazy.ts loads @peculiar's schemas on first use with createRequire.
  for (const m of readFileSync(join(REPO_ROOT, 'src/spiffe/x509/asn1-lazy.ts'), 'utf8').matchAll(/require\('(@peculiar\/[a-z0-9-]+)'\)/g)) {
    if (!out.has(m[1] as string)) out.set(m[1] as string, 'src/spiffe/x509/asn1-lazy.ts');
  }
  return out;
}

describe('package.json', () => {
  it('lists every package shipped code loads under dependencies', () => {
    const missing = [...runtimePackages()].filter(([p]) => pkg.dependencies[p] === undefined).map(([p, where]) => `${p} (${where})`);
    expect(missing).toEqual([]);
  });

  it('lists nothing under dependencies that shipped code does not load', () => {
    const loaded = runtimePackages();
    expect(Object.keys(pkg.dependencies).filter((p) => !loaded.has(p))).toEqual([]);
  });

  it('every package any file imports is declared', () => {
    const declared = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.devDependencies)]);
    // vitest's own entry points are declared through the vitest package.
    const undeclared = [...imports].flatMap(([f, list]) => list.filter((i) => !declared.has(i.pkg)).map((i) => `${i.pkg} (${f}:${i.line})`));
    expect(undeclared).toEqual([]);
  });
});
