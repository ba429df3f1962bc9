/**
 * @module test/architecture/walls
 *
 * The rooms of `src/` and the walls between them (CONTRIBUTING.md, docs/architecture.md),
 * as data, and the rule engine that judges a module graph against them. The engine is
 * pure: `import-graph.test.ts` runs it on the real tree and on synthetic breaches.
 * `eslint.config.js` states the same walls as `no-restricted-imports` for the editor;
 * `import-graph.test.ts` checks that the two agree.
 */
import type { ImportEdge, ModuleGraph } from './graph.js';

/** A folder of `src/`: what it may import of ours, by `src/`-relative folder. */
export interface Room {
  readonly room: string;
  /** Folders (relative to `src/`, no trailing slash) this room's non-test files may import; `'*'`: any. */
  readonly mayImport: readonly string[] | '*';
  readonly holds: string;
}

export const ROOMS: readonly Room[] = [
  { room: 'spiffe', mayImport: [], holds: 'the standard: SPIFFE ID, keys, X.509-SVID, JWT-SVID, bundles' },
  { room: 'wire', mayImport: [], holds: 'Workload API (wire/workload), server API (wire/server) and SPIRE server API (wire/spire) proto loading and message shapes' },
  { room: 'config', mayImport: ['spiffe'], holds: 'config files both binaries read: HCL subset, typed accessors, problems, durations, plugin registrations' },
  { room: 'observability', mayImport: ['config'], holds: 'the process logger, metrics plumbing and /metrics /live /ready listener both binaries use' },
  { room: 'securefs', mayImport: ['spiffe', 'wire/workload'], holds: 'private dirs, key/state files, socket dirs and default socket paths' },
  { room: 'registration', mayImport: ['spiffe'], holds: 'registration entries and selectors: the model and its validation' },
  { room: 'ca', mayImport: ['spiffe', 'securefs', 'config'], holds: 'key managers, X.509 and JWT authorities, rotation slots, the fast mint path' },
  { room: 'datastore', mayImport: ['spiffe', 'registration', 'securefs', 'config'], holds: 'entries, agents, join tokens, bundles; level and postgres' },
  { room: 'attestors', mayImport: ['spiffe', 'registration', 'config'], holds: 'node attestors (join_token, k8s_psat) and workload attestors (unix, k8s)' },
  { room: 'workloadapi', mayImport: ['spiffe', 'wire/workload', 'wire/spire', 'securefs'], holds: 'the Workload API endpoint (agent side)' },
  { room: 'sdk', mayImport: ['spiffe', 'wire/workload'], holds: 'Workload API client, X509/JWT/bundle sources, mTLS helpers' },
  { room: 'federation', mayImport: ['spiffe', 'config', 'securefs'], holds: 'the bundle endpoint, federation relationships and the peer bundle fetcher (https_web, https_spiffe)' },
  { room: 'audit', mayImport: ['spiffe'], holds: 'the hash-chained audit ledger: records, group-committed appends, signed checkpoints, verification' },
  { room: 'oidc', mayImport: ['spiffe', 'config'], holds: 'the OIDC discovery document and JWKS listener for JWT-SVIDs' },
  { room: 'delegation', mayImport: ['spiffe'], holds: 'delegated tokens for AI agents (RFC 8693 token exchange): policy, claims, exchange' },
  {
    room: 'server',
    mayImport: ['spiffe', 'registration', 'ca', 'datastore', 'attestors', 'federation', 'oidc', 'audit', 'delegation', 'wire/server', 'wire/spire', 'securefs', 'config', 'observability'],
    holds: 'server APIs, node attestation, authorised-entry push streams, admin auth',
  },
  {
    room: 'agent',
    mayImport: ['spiffe', 'registration', 'attestors', 'workloadapi', 'wire', 'securefs', 'config', 'observability'],
    holds: 'node attestation client, entry sync, SVID cache and rotation, peer credentials',
  },
  { room: 'cli', mayImport: '*', holds: 'the mayfly-server and mayfly-agent commands and the demo' },
];

/**
 * Known breaches, each to be fixed by work under way elsewhere; an entry that no longer
 * matches an import fails the test, so the list only shrinks.
 */
export const ALLOWED_BREACHES: ReadonlyArray<{ from: string; to: string; why: string }> = [];

/** Server-side modules the agent binary may still load: none. */
export const AGENT_BINARY_ALLOWED: readonly string[] = [];

/** Folders the agent binary must never load. */
export const AGENT_BINARY_FORBIDDEN: readonly string[] = ['src/server/', 'src/ca/', 'src/datastore/'];

/** Folders the SDK (the published `mayfly/sdk` export) may load. */
export const SDK_CLOSURE_ALLOWED: readonly string[] = ['src/sdk/', 'src/spiffe/', 'src/wire/workload/'];

export type FileKind = 'test' | 'support' | 'source';

/** `test`: a test file; `support`: test support (`testing.ts`, `conformance.ts`, `testdata/`); else `source`. */
export function kindOf(file: string): FileKind {
  if (file.startsWith('test/') || file.endsWith('.test.ts')) return 'test';
  if (/(^|\/)(testing|conformance)\.ts$/.test(file) || file.includes('/testdata/')) return 'support';
  return 'source';
}

/** The room of a `src/` file (its first folder), or undefined outside `src/`. */
export function roomOf(file: string): string | undefined {
  const m = /^src\/([^/]+)\//.exec(file);
  return m?.[1];
}

export interface Violation {
  readonly rule: 'room' | 'unknown-room' | 'test-dir' | 'test-support' | 'unresolved';
  readonly from: string;
  readonly to: string;
  readonly line: number;
  readonly message: string;
}

function mayImport(room: Room, to: string): boolean {
  if (room.mayImport === '*') return true;
  if (to.startsWith(`src/${room.room}/`)) return true;
  return room.mayImport.some((dir) => to.startsWith(`src/${dir}/`));
}

/**
 * Every import in `graph` that breaks a wall:
 * - a non-test file of a room imports a `src/` folder its room may not import;
 * - a `src/` file sits in a folder that is no declared room;
 * - a non-test file of `src/` or `bench/` imports from `test/`;
 * - a non-test, non-support file (what `npm run build` ships; `bench/` runs from it too)
 *   imports test support (`testing.ts`, `conformance.ts`, `testdata/`);
 * - a relative import names no file.
 * Test files (`*.test.ts`, `test/**`) may import across walls: they assemble real parts.
 */
export function wallViolations(
  graph: ModuleGraph,
  rooms: readonly Room[] = ROOMS,
  allowed: ReadonlyArray<{ from: string; to: string }> = ALLOWED_BREACHES,
): Violation[] {
  const byName = new Map(rooms.map((r) => [r.room, r]));
  const out: Violation[] = [];
  const isAllowed = (from: string, to: string): boolean => allowed.some((a) => a.from === from && a.to === to);
  for (const [from, edges] of graph) {
    const kind = kindOf(from);
    const roomName = roomOf(from);
    if (from.startsWith('src/') && (roomName === undefined || !byName.has(roomName))) {
      out.push({ rule: 'unknown-room', from, to: '', line: 0, message: `${from} is in no declared room: add its folder to ROOMS (test/architecture/walls.ts), eslint.config.js and CONTRIBUTING.md with the walls it keeps` });
    }
    for (const e of edges) {
      const v = (rule: Violation['rule'], message: string): void => void out.push({ rule, from, to: e.to, line: e.line, message: `${from}:${e.line} imports ${e.specifier}: ${message}` });
      if (e.to.startsWith('?')) {
        v('unresolved', 'no such file');
        continue;
      }
      if (kind === 'test') continue;
      if ((from.startsWith('src/') || from.startsWith('bench/')) && e.to.startsWith('test/')) {
        v('test-dir', 'shipped code may not depend on test/');
        continue;
      }
      if (kind === 'source' && kindOf(e.to) === 'support') {
        v('test-support', 'test support (testing.ts, conformance.ts, testdata/) is for tests only and is not in the published build');
        continue;
      }
      const room = roomName === undefined ? undefined : byName.get(roomName);
      if (room !== undefined && e.to.startsWith('src/') && !mayImport(room, e.to) && !isAllowed(from, e.to)) {
        const may = room.mayImport === '*' ? 'anything' : room.mayImport.length === 0 ? 'nothing of ours' : room.mayImport.join(', ');
        v('room', `src/${room.room} may import only ${may}`);
      }
    }
  }
  return out;
}

/** Allow-list entries no import matches any more (to be removed). */
export function staleAllowances(graph: ModuleGraph, allowed: ReadonlyArray<{ from: string; to: string }> = ALLOWED_BREACHES): Array<{ from: string; to: string }> {
  return allowed.filter((a) => !(graph.get(a.from) ?? []).some((e) => e.to === a.to));
}

/** Strongly connected components with more than one node (or a self-loop): the cycles of `edges`. */
export function cycles<N>(nodes: Iterable<N>, next: (n: N) => Iterable<N>): N[][] {
  // Tarjan's algorithm, iterative so a deep graph cannot overflow the stack.
  const index = new Map<N, number>();
  const low = new Map<N, number>();
  const onStack = new Set<N>();
  const stack: N[] = [];
  const out: N[][] = [];
  let counter = 0;
  for (const root of nodes) {
    if (index.has(root)) continue;
    const work: Array<{ node: N; it: Iterator<N> }> = [];
    const open = (n: N): void => {
      index.set(n, counter);
      low.set(n, counter);
      counter++;
      stack.push(n);
      onStack.add(n);
      work.push({ node: n, it: next(n)[Symbol.iterator]() });
    };
    open(root);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const step = top.it.next();
      if (!step.done) {
        const w = step.value;
        if (!index.has(w)) open(w);
        else if (onStack.has(w)) low.set(top.node, Math.min(low.get(top.node)!, index.get(w)!));
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1]!.node;
        low.set(parent, Math.min(low.get(parent)!, low.get(top.node)!));
      }
      if (low.get(top.node) === index.get(top.node)) {
        const scc: N[] = [];
        let w: N;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          scc.push(w);
        } while (w !== top.node);
        const selfLoop = scc.length === 1 && [...next(top.node)].includes(top.node);
        if (scc.length > 1 || selfLoop) out.push(scc.reverse());
      }
    }
  }
  return out;
}

const shipped = (e: ImportEdge, graph: ModuleGraph): boolean => graph.has(e.to) && kindOf(e.to) !== 'test';

/** Cycles between files (every import, type-only ones included: a cycle is a design knot either way). */
export function fileCycles(graph: ModuleGraph): string[][] {
  return cycles(graph.keys(), (f) => (graph.get(f) ?? []).filter((e) => graph.has(e.to)).map((e) => e.to));
}

/** Cycles between rooms, through non-test files (tests may reach across rooms). */
export function roomCycles(graph: ModuleGraph): string[][] {
  const edges = new Map<string, Set<string>>();
  for (const [from, es] of graph) {
    const a = roomOf(from);
    if (a === undefined || kindOf(from) === 'test') continue;
    for (const e of es) {
      const b = roomOf(e.to);
      if (b === undefined || b === a || !shipped(e, graph)) continue;
      if (!edges.has(a)) edges.set(a, new Set());
      edges.get(a)!.add(b);
    }
  }
  return cycles(edges.keys(), (r) => edges.get(r) ?? []);
}

/** Every file `entry` reaches through imports (itself included), type-only imports included. */
export function closure(graph: ModuleGraph, entry: string): Set<string> {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    for (const e of graph.get(f) ?? []) if (graph.has(e.to)) todo.push(e.to);
  }
  return seen;
}

/** One import path from `entry` to `target` (for messages), or undefined. */
export function pathTo(graph: ModuleGraph, entry: string, target: string): string[] | undefined {
  const prev = new Map<string, string>();
  const queue = [entry];
  const seen = new Set([entry]);
  while (queue.length > 0) {
    const f = queue.shift()!;
    if (f === target) {
      const path = [f];
      while (prev.has(path[0]!)) path.unshift(prev.get(path[0]!)!);
      return path;
    }
    for (const e of graph.get(f) ?? []) {
      if (!graph.has(e.to) || seen.has(e.to)) continue;
      seen.add(e.to);
      prev.set(e.to, f);
      queue.push(e.to);
    }
  }
  return undefined;
}

/**
 * The web console (src/server/console/) reads through the small interfaces it declares
 * (server/console/source, server/console/auth) and is handed its parts by the runner: none
 * of its shipped files may import the server's composition or its API modules.
 */
export const CONSOLE_DIR = 'src/server/console/';
export const CONSOLE_FORBIDDEN: readonly string[] = [
  'src/server/server.ts',
  'src/server/runner.ts',
  'src/server/context.ts',
  'src/server/api-context.ts',
  'src/server/api/',
  'src/server/spire-api/',
];

/** Imports of a shipped console file into a module CONSOLE_FORBIDDEN names. */
export function consoleViolations(graph: ModuleGraph): Violation[] {
  const out: Violation[] = [];
  for (const [from, edges] of graph) {
    if (!from.startsWith(CONSOLE_DIR) || kindOf(from) !== 'source') continue;
    for (const e of edges) {
      if (CONSOLE_FORBIDDEN.some((f) => (f.endsWith('/') ? e.to.startsWith(f) : e.to === f))) {
        out.push({ rule: 'room', from, to: e.to, line: e.line, message: `${from}:${e.line} imports ${e.specifier}: the web console reads through its own interfaces (server/console/source), not the server's composition or API modules` });
      }
    }
  }
  return out;
}
