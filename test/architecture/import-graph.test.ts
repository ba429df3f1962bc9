/**
 * The walls between rooms, held by the import graph of the tree (CONTRIBUTING.md, "Layout";
 * rules and engine in `walls.ts`, graph reading in `graph.ts`):
 * - every non-test file of a room imports only what its room may import; no shipped file
 *   depends on `test/` or on test support (`testing.ts`, `conformance.ts`, `testdata/`);
 * - no import cycle between rooms, none between files;
 * - the agent binary (what `bin/mayfly-agent.js` loads) reaches no server, CA or datastore
 *   module, and the SDK export (`mayfly/sdk`) reaches only sdk, spiffe and the workload wire;
 * - `eslint.config.js` forbids exactly what the rules forbid (the editor tells the same truth);
 * - `docs/architecture.md` and `CONTRIBUTING.md` state the same walls, and every path they
 *   name exists (so the two roads traced there stay true);
 * and, for each check, a synthetic breach that it must catch.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ESLint } from 'eslint';
import { afterAll, describe, expect, it } from 'vitest';
import { readModuleGraph, REPO_ROOT, type ImportEdge, type ModuleGraph } from './graph.js';
import {
  AGENT_BINARY_ALLOWED,
  AGENT_BINARY_FORBIDDEN,
  ALLOWED_BREACHES,
  closure,
  consoleViolations,
  fileCycles,
  pathTo,
  ROOMS,
  roomCycles,
  SDK_CLOSURE_ALLOWED,
  staleAllowances,
  wallViolations,
} from './walls.js';

const graph = readModuleGraph();

/** The source file a `dist/` path was compiled from (`../dist/src/cli/agent.js` → `src/cli/agent.ts`). */
function sourceOfDist(distPath: string): string {
  const m = /(?:^|\/)dist\/(.+)\.js$/.exec(distPath);
  if (m === undefined || m === null) throw new Error(`not a dist/ path: ${distPath}`);
  return `${m[1]}.ts`;
}

/** The module `bin/mayfly-agent.js` loads, as a source path. */
function agentBinaryEntry(): string {
  const bin = readFileSync(join(REPO_ROOT, 'bin/mayfly-agent.js'), 'utf8');
  const m = /import\s+['"]([^'"]+)['"]/.exec(bin);
  if (m === null) throw new Error('bin/mayfly-agent.js imports no module');
  return sourceOfDist(m[1]!);
}

/** Server/CA/datastore files in the closure of `entry` that are not allowed, with the path that reaches each. */
function agentBinaryBreaches(g: ModuleGraph, entry: string, allowed: readonly string[] = AGENT_BINARY_ALLOWED): string[] {
  return [...closure(g, entry)]
    .filter((f) => AGENT_BINARY_FORBIDDEN.some((d) => f.startsWith(d)) && !allowed.includes(f))
    .map((f) => `${f} (through ${pathTo(g, entry, f)?.join(' → ')})`);
}

function sdkClosureBreaches(g: ModuleGraph, entry: string): string[] {
  return [...closure(g, entry)].filter((f) => !SDK_CLOSURE_ALLOWED.some((d) => f.startsWith(d))).map((f) => `${f} (through ${pathTo(g, entry, f)?.join(' → ')})`);
}

const edge = (to: string, specifier = to, typeOnly = false): ImportEdge => ({ to, specifier, line: 1, typeOnly });
const fake = (entries: Record<string, string[]>): ModuleGraph =>
  new Map(Object.entries(entries).map(([f, tos]) => [f, tos.map((t) => edge(t))]));

describe('the tree', () => {
  it('was read completely (every relative import resolves to a file)', () => {
    expect(graph.size).toBeGreaterThan(200);
    expect(graph.has('src/spiffe/id.ts')).toBe(true);
    const unresolved = [...graph].flatMap(([f, es]) => es.filter((e) => e.to.startsWith('?')).map((e) => `${f}:${e.line} ${e.specifier}`));
    expect(unresolved).toEqual([]);
  });

  it('keeps every wall', () => {
    expect(wallViolations(graph).map((v) => v.message)).toEqual([]);
  });

  it('the web console reads through its own interfaces, not the server composition or API modules', () => {
    expect([...graph.keys()].some((f) => f.startsWith('src/server/console/'))).toBe(true);
    expect(consoleViolations(graph).map((v) => v.message)).toEqual([]);
  });

  it('needs every allow-list entry it has (fixed breaches leave the list)', () => {
    expect(staleAllowances(graph)).toEqual([]);
    for (const a of ALLOWED_BREACHES) expect(a.why.length).toBeGreaterThan(0);
  });

  it('has no import cycle between rooms', () => {
    expect(roomCycles(graph)).toEqual([]);
  });

  it('has no import cycle between files', () => {
    expect(fileCycles(graph)).toEqual([]);
  });

  it('the agent binary loads no server, CA or datastore module (but the allow-listed config parsing)', () => {
    const entry = agentBinaryEntry();
    expect(entry).toBe('src/cli/agent.ts');
    expect(graph.has(entry)).toBe(true);
    expect(agentBinaryBreaches(graph, entry)).toEqual([]);
    // Each allowance is still needed; remove it when its TODO is done.
    const reached = closure(graph, entry);
    expect(AGENT_BINARY_ALLOWED.filter((f) => !reached.has(f))).toEqual([]);
  });

  it('the SDK export loads only sdk, spiffe and the workload wire', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { default: string }> };
    const entry = sourceOfDist(pkg.exports['./sdk']!.default);
    expect(entry).toBe('src/sdk/index.ts');
    expect(sdkClosureBreaches(graph, entry)).toEqual([]);
  });
});

describe('the rule engine catches a breach', () => {
  it('of a room wall, including the old join_token → datastore one', () => {
    const g = fake({
      'src/spiffe/id.ts': ['src/ca/mint.ts'],
      'src/sdk/client.ts': ['src/agent/agent.ts', 'src/wire/server/proto.ts', 'src/wire/workload/proto.ts', 'src/spiffe/id.ts'],
      'src/attestors/node/join_token/join_token.ts': ['src/datastore/datastore.ts'],
      'src/agent/cache.ts': ['src/server/hcl.ts'],
      'src/wire/workload/proto.ts': ['src/wire/server/proto.ts', 'src/spiffe/errors.ts'],
      'src/cli/agent-run.ts': ['src/server/hcl.ts', 'src/ca/mint.ts'],
      'src/sdk/client.test.ts': ['src/agent/agent.ts'],
    });
    const found = wallViolations(g).map((v) => `${v.rule} ${v.from} → ${v.to}`);
    expect(found.sort()).toEqual(
      [
        'room src/spiffe/id.ts → src/ca/mint.ts',
        'room src/sdk/client.ts → src/agent/agent.ts',
        'room src/sdk/client.ts → src/wire/server/proto.ts',
        'room src/attestors/node/join_token/join_token.ts → src/datastore/datastore.ts',
        // Allowed for src/agent/config.ts only, not for the rest of the agent.
        'room src/agent/cache.ts → src/server/hcl.ts',
        'room src/wire/workload/proto.ts → src/spiffe/errors.ts',
      ].sort(),
    );
  });

  it('of the web console reaching into the server composition or its API', () => {
    const g = fake({
      'src/server/console/pages.ts': ['src/server/server.ts', 'src/server/api/entry.ts', 'src/server/inventory.ts'],
      'src/server/console/console.test.ts': ['src/server/runner.ts'],
      'src/server/console/testing.ts': ['src/server/runner.ts'],
    });
    expect(consoleViolations(g).map((v) => `${v.from} → ${v.to}`).sort()).toEqual(['src/server/console/pages.ts → src/server/api/entry.ts', 'src/server/console/pages.ts → src/server/server.ts']);
  });

  it('of test support or test/ reached from shipped code, and of an undeclared room', () => {
    const g = fake({
      'src/ca/server-ca.ts': ['src/ca/testing.ts', 'test/k8s/pki.ts'],
      'src/ca/testing.ts': ['src/spiffe/x509/testing.ts'],
      'src/datastore/level/level.ts': ['src/datastore/conformance.ts', 'src/datastore/testdata/kill-writer.ts'],
      'bench/x509.ts': ['src/spiffe/x509/testing.ts', 'src/ca/mint.ts'],
      'src/nowhere/fetch.ts': ['src/spiffe/id.ts'],
      'src/attestors/workload/k8s/k8s.test.ts': ['test/k8s/fixtures.ts', 'src/attestors/workload/testing.ts'],
    });
    const found = wallViolations(g).map((v) => `${v.rule} ${v.from} → ${v.to}`);
    expect(found.sort()).toEqual(
      [
        'test-support src/ca/server-ca.ts → src/ca/testing.ts',
        'test-dir src/ca/server-ca.ts → test/k8s/pki.ts',
        'test-support src/datastore/level/level.ts → src/datastore/conformance.ts',
        'test-support src/datastore/level/level.ts → src/datastore/testdata/kill-writer.ts',
        'test-support bench/x509.ts → src/spiffe/x509/testing.ts',
        'unknown-room src/nowhere/fetch.ts → ',
      ].sort(),
    );
  });

  it('of a cycle between files and between rooms', () => {
    const g = fake({
      'src/server/a.ts': ['src/server/b.ts'],
      'src/server/b.ts': ['src/server/c.ts'],
      'src/server/c.ts': ['src/server/a.ts'],
      'src/server/d.ts': ['src/server/d.ts'],
      'src/agent/x.ts': ['src/workloadapi/y.ts'],
      'src/workloadapi/y.ts': ['src/agent/z.ts'],
      'src/agent/z.ts': [],
      // A test file closing a loop does not make a room cycle.
      'src/registration/r.ts': ['src/spiffe/s.ts'],
      'src/spiffe/s.test.ts': ['src/registration/r.ts'],
    });
    expect(fileCycles(g).map((c) => [...c].sort())).toEqual(expect.arrayContaining([['src/server/a.ts', 'src/server/b.ts', 'src/server/c.ts'], ['src/server/d.ts']]));
    expect(roomCycles(g).map((c) => [...c].sort())).toEqual([['agent', 'workloadapi']]);
  });

  it('of a server, CA or datastore module in the agent binary, however deep', () => {
    const g = fake({
      'src/cli/agent.ts': ['src/cli/agent-run.ts'],
      'src/cli/agent-run.ts': ['src/agent/agent.ts', 'src/server/hcl.ts'],
      'src/agent/agent.ts': ['src/agent/cache.ts'],
      'src/agent/cache.ts': ['src/server/observability.ts'],
      'src/server/observability.ts': ['src/ca/server-ca.ts'],
      'src/ca/server-ca.ts': [],
      'src/server/hcl.ts': [],
    });
    expect(agentBinaryBreaches(g, 'src/cli/agent.ts').sort()).toEqual([
      'src/ca/server-ca.ts (through src/cli/agent.ts → src/cli/agent-run.ts → src/agent/agent.ts → src/agent/cache.ts → src/server/observability.ts → src/ca/server-ca.ts)',
      'src/server/hcl.ts (through src/cli/agent.ts → src/cli/agent-run.ts → src/server/hcl.ts)',
      'src/server/observability.ts (through src/cli/agent.ts → src/cli/agent-run.ts → src/agent/agent.ts → src/agent/cache.ts → src/server/observability.ts)',
    ]);
    // An allow-listed module is passed over, the rest still reported.
    expect(agentBinaryBreaches(g, 'src/cli/agent.ts', ['src/server/hcl.ts'])).not.toContain('src/server/hcl.ts (through src/cli/agent.ts → src/cli/agent-run.ts → src/server/hcl.ts)');
  });

  it('of agent code in the SDK', () => {
    const g = fake({ 'src/sdk/index.ts': ['src/sdk/client.ts'], 'src/sdk/client.ts': ['src/workloadapi/identities.ts'], 'src/workloadapi/identities.ts': [] });
    expect(sdkClosureBreaches(g, 'src/sdk/index.ts')).toEqual(['src/workloadapi/identities.ts (through src/sdk/index.ts → src/sdk/client.ts → src/workloadapi/identities.ts)']);
  });

  it('and of an allow-list entry that no longer matches an import', () => {
    const allowed = [
      { from: 'src/agent/config.ts', to: 'src/server/hcl.ts', why: 'synthetic' },
      { from: 'src/agent/config.ts', to: 'src/server/config.ts', why: 'synthetic' },
    ];
    expect(staleAllowances(fake({ 'src/agent/config.ts': ['src/server/hcl.ts'] }), allowed)).toEqual([{ from: 'src/agent/config.ts', to: 'src/server/config.ts', why: 'synthetic' }]);
  });
});

describe('the graph reader', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-graph-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const put = (path: string, text: string): void => {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  };

  it('sees every form of import in files on disk, and a breach written in one', () => {
    put('src/spiffe/id.ts', 'export const x = 1;\n');
    put('src/spiffe/errors.ts', 'export interface MayflyErrorCodes {}\n');
    put('src/ca/mint.ts', 'export const m = 1;\n');
    put('src/ca/types.ts', 'export type T = number;\n');
    put('src/ca/lazy.ts', 'export const l = 1;\n');
    put('src/ca/q.ts', 'export const q = 1;\n');
    put('src/ca/reexport.ts', 'export const r = 1;\n');
    put(
      'src/spiffe/breach.ts',
      [
        "import { x } from './id.js';",
        "import type { T } from '../ca/types.js';",
        "import { type T as U } from '../ca/types.js';",
        "export { r } from '../ca/reexport.js';",
        "export const later = () => import('../ca/lazy.js');",
        "export type Q = typeof import('../ca/q.js');",
        "import '../ca/mint.js';",
        "declare module './errors.js' { interface MayflyErrorCodes { X: 'x' } }",
        'export const y: T | U = x;',
        '',
      ].join('\n'),
    );
    const g = readModuleGraph(dir, ['src']);
    const edges = g.get('src/spiffe/breach.ts')!;
    expect(edges.map((e) => [e.to, e.typeOnly])).toEqual([
      ['src/spiffe/id.ts', false],
      ['src/ca/types.ts', true],
      ['src/ca/types.ts', true],
      ['src/ca/reexport.ts', false],
      ['src/ca/lazy.ts', false],
      ['src/ca/q.ts', true],
      ['src/ca/mint.ts', false],
      ['src/spiffe/errors.ts', true],
    ]);
    const breaches = wallViolations(g).filter((v) => v.from === 'src/spiffe/breach.ts');
    expect(breaches.map((v) => v.to)).toEqual(['src/ca/types.ts', 'src/ca/types.ts', 'src/ca/reexport.ts', 'src/ca/lazy.ts', 'src/ca/q.ts', 'src/ca/mint.ts']);
  });
});

describe('eslint.config.js', () => {
  const eslint = new ESLint({ cwd: REPO_ROOT });
  // Folders a probe imports: every room, and the wire's two halves on their own.
  const targets = [...ROOMS.map((r) => r.room), 'wire/workload', 'wire/server'];

  /** The targets ESLint refuses for a file at `path` (one probe import per target). */
  async function refusedByEslint(path: string): Promise<string[]> {
    const depth = path.split('/').length - 2;
    const up = '../'.repeat(depth);
    const text = targets.map((t) => `import '${up}${t}/probe.js';`).join('\n') + '\n';
    const [result] = await eslint.lintText(text, { filePath: join(REPO_ROOT, path) });
    return result!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => targets[m.line - 1]!);
  }

  /** The targets the rules refuse for the same file. */
  function refusedByRules(path: string): string[] {
    const g: ModuleGraph = new Map([[path, targets.map((t) => edge(`src/${t}/probe.ts`, t))]]);
    return wallViolations(g).filter((v) => v.rule === 'room').map((v) => v.to.replace(/^src\//, '').replace(/\/probe\.ts$/, ''));
  }

  it('forbids exactly what the walls forbid, for every room and depth', async () => {
    for (const room of ROOMS) {
      for (const path of [`src/${room.room}/probe.ts`, `src/${room.room}/sub/probe.ts`, `src/${room.room}/sub/deeper/probe.ts`]) {
        expect(await refusedByEslint(path), path).toEqual(refusedByRules(path));
      }
    }
    // Within the wire, the workload half may import the server half (one room).
    expect(await refusedByEslint('src/wire/workload/probe.ts')).toEqual(refusedByRules('src/wire/workload/probe.ts'));
  });

  it('forbids test/ and test support in shipped code, and allows the allow-listed breaches only where listed', async () => {
    const lint = async (path: string, text: string): Promise<number> =>
      (await eslint.lintText(text, { filePath: join(REPO_ROOT, path) }))[0]!.messages.filter((m) => m.ruleId === 'no-restricted-imports').length;
    expect(await lint('src/ca/probe.ts', "import '../../test/k8s/pki.js';\n")).toBe(1);
    expect(await lint('src/ca/probe.ts', "import '../spiffe/x509/testing.js';\n")).toBe(1);
    expect(await lint('src/datastore/probe.ts', "import './conformance.js';\nimport './testdata/kill-writer.js';\n")).toBe(2);
    expect(await lint('src/ca/testing.ts', "import '../spiffe/x509/testing.js';\n")).toBe(0);
    expect(await lint('src/ca/probe.test.ts', "import '../../test/k8s/pki.js';\nimport '../agent/agent.js';\n")).toBe(0);
    expect(await lint('bench/probe.ts', "import '../src/sdk/testing.js';\nimport '../test/k8s/pki.js';\n")).toBe(2);
    for (const a of ALLOWED_BREACHES) {
      const spec = `${'../'.repeat(a.from.split('/').length - 2)}${a.to.replace(/^src\//, '').replace(/\.ts$/, '.js')}`;
      expect(await lint(a.from, `import '${spec}';\n`), `${a.from} → ${a.to}`).toBe(0);
      expect(await lint(a.from.replace(/[^/]+$/, 'probe.ts'), `import '${spec}';\n`), `only ${a.from} may import ${a.to}`).toBe(1);
    }
  });
});

/** The room table of a Markdown page: rows `| \`src/<room>/\` | holds | may import |`. */
function roomTable(text: string): Record<string, readonly string[] | '*'> {
  const table: Record<string, readonly string[] | '*'> = {};
  for (const m of text.matchAll(/^\| `src\/([^/`]+)\/` \|[^|]*\| ([^|]*) \|$/gm)) {
    const may = m[2]!.trim();
    table[m[1]!] = may === 'everything' ? '*' : may === 'nothing of ours' ? [] : may.split(', ');
  }
  return table;
}

/** Repository paths a page names (`src/...`, `test/...`, `bench/`, `bin/`, `proto/`, `deploy/`, `docs/`). */
function pathsNamed(text: string): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(/(?<![\w./-])((?:src|test|bench|bin|proto|deploy|docs)\/[\w./-]*)/g)) found.add(m[1]!.replace(/[.]+$/, ''));
  return [...found].sort();
}

describe('the documents', () => {
  const walls = Object.fromEntries(ROOMS.map((r) => [r.room, r.mayImport]));

  for (const doc of ['docs/architecture.md', 'CONTRIBUTING.md']) {
    it(`${doc} states the walls the rules hold (its room table, room by room)`, () => {
      expect(roomTable(readFileSync(join(REPO_ROOT, doc), 'utf8'))).toEqual(walls);
    });

    it(`every file and folder ${doc} names exists`, () => {
      const named = pathsNamed(readFileSync(join(REPO_ROOT, doc), 'utf8'));
      expect(named.length).toBeGreaterThan(5);
      expect(named.filter((p) => !existsSync(join(REPO_ROOT, p)))).toEqual([]);
    });
  }

  it('the path check catches a path that does not exist', () => {
    const named = pathsNamed('see `src/agent/cache.ts`, src/agent/peercred/ and `src/workloadapi/proto.ts`.');
    expect(named).toEqual(['src/agent/cache.ts', 'src/agent/peercred/', 'src/workloadapi/proto.ts']);
    expect(named.filter((p) => !existsSync(join(REPO_ROOT, p)))).toEqual(['src/workloadapi/proto.ts']);
  });
});
