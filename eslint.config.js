// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The walls between the rooms of src/ (CONTRIBUTING.md, "Layout"): what each room's
 * non-test files may import of ours, by src/-relative folder. The same table, with the
 * rule engine, import cycles and the agent binary's closure, is test/architecture/walls.ts;
 * test/architecture/import-graph.test.ts checks that this config agrees with it.
 * Test files (*.test.ts, test/**) may reach across walls: they assemble real parts.
 */
const WALLS = {
  spiffe: [],
  wire: [],
  config: ['spiffe'],
  observability: ['config'],
  securefs: ['spiffe', 'wire/workload'],
  registration: ['spiffe'],
  ca: ['spiffe', 'securefs', 'config'],
  datastore: ['spiffe', 'registration', 'securefs', 'config'],
  attestors: ['spiffe', 'registration', 'config'],
  workloadapi: ['spiffe', 'wire/workload', 'wire/spire', 'securefs'],
  sdk: ['spiffe', 'wire/workload'],
  federation: ['spiffe', 'config', 'securefs'],
  oidc: ['spiffe', 'config'],
  audit: ['spiffe'],
  delegation: ['spiffe'],
  server: ['spiffe', 'registration', 'ca', 'datastore', 'attestors', 'federation', 'oidc', 'audit', 'delegation', 'wire/server', 'wire/spire', 'securefs', 'config', 'observability'],
  agent: ['spiffe', 'registration', 'attestors', 'workloadapi', 'wire', 'securefs', 'config', 'observability'],
  cli: '*',
};

/**
 * Known breaches (file → imports it may still make), each with its TODO in
 * test/architecture/walls.ts (ALLOWED_BREACHES).
 */
const ALLOWED = {};

const SUPPORT = ['**/*.test.ts', '**/testing.ts', '**/conformance.ts', '**/testdata/**'];
const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** no-restricted-imports patterns for a file `depth` folders below src/ in `room`. */
function wallPatterns(room, depth, { source, allowedFiles = {} }) {
  const up = `^(\\.\\./){${depth}}`; // the specifier prefix that reaches src/
  const may = WALLS[room];
  const patterns = [{ regex: `^(\\.\\./){${depth + 1}}test/`, message: 'shipped code may not depend on test/' }];
  if (source) {
    patterns.push({
      regex: '(^|/)(testing|conformance)\\.js$|(^|/)testdata/',
      message: 'test support (testing.ts, conformance.ts, testdata/) is for tests only and is not in the published build',
    });
  }
  if (may === '*') return patterns;
  const message = `src/${room} may import only ${may.length === 0 ? 'nothing of ours' : may.join(', ')} (CONTRIBUTING.md, "Layout")`;
  for (const target of Object.keys(WALLS)) {
    if (target === room || may.includes(target)) continue;
    const subs = may.filter((m) => m.startsWith(`${target}/`)).map((m) => esc(m.slice(target.length + 1)));
    const files = (allowedFiles[target] ?? []).map((f) => esc(f.replace(/\.ts$/, '.js')));
    const except = [...subs.map((s) => `${s}/`), ...files.map((f) => `${f}$`)];
    patterns.push({ regex: `${up}${target}/${except.length > 0 ? `(?!(${except.join('|')}))` : ''}`, message });
  }
  return patterns;
}

/** One block per room and depth (specifiers are relative, so depth decides what reaches src/). */
function wallBlocks() {
  const blocks = [];
  for (const room of Object.keys(WALLS)) {
    for (let depth = 1; depth <= 5; depth++) {
      const files = [`src/${room}/${'*/'.repeat(depth - 1)}*.ts`];
      // Test support may import test support; everything else of the room may not.
      blocks.push({ files, ignores: ['**/*.test.ts'], rules: { 'no-restricted-imports': ['error', { patterns: wallPatterns(room, depth, { source: false }) }] } });
      blocks.push({ files, ignores: SUPPORT, rules: { 'no-restricted-imports': ['error', { patterns: wallPatterns(room, depth, { source: true }) }] } });
    }
  }
  for (const [file, allowedFiles] of Object.entries(ALLOWED)) {
    const [, room, rest] = /^src\/([^/]+)\/(.*)$/.exec(file) ?? [];
    if (room === undefined || rest === undefined) throw new Error(`eslint.config.js: bad ALLOWED path ${file}`);
    const depth = rest.split('/').length;
    blocks.push({ files: [file], rules: { 'no-restricted-imports': ['error', { patterns: wallPatterns(room, depth, { source: true, allowedFiles }) }] } });
  }
  blocks.push({
    files: ['bench/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { regex: '^(\\.\\./)+test/', message: 'bench runs from dist/: it may not depend on test/' },
          { regex: '(^|/)(testing|conformance)\\.js$|(^|/)testdata/', message: 'bench runs from the published build, which holds no test support' },
        ],
      }],
    },
  });
  return blocks;
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test/interop/**/build/**', '**/*.js', '!eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      // Rooms register their error codes as `interface MayflyErrorCodes extends Record<Codes, 'room'> {}`
      // (see src/spiffe/errors.ts): an empty interface extending one type is the idiom for that.
      '@typescript-eslint/no-empty-object-type': ['error', { allowInterfaces: 'with-single-extends' }],
    },
  },
  ...wallBlocks(),
);
