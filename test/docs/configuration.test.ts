/**
 * docs/configuration.md cannot drift from the config loaders.
 *
 * The doc has one section per block (`### server.conf: \`server.ca_subject\``, `### agent.conf:
 * top level`), each a table whose rows are that block's keys. For every section this test
 * asks the real loader (`resolveServerConfig`, `resolveAgentConfig`) which keys it knows
 * there, by putting an unknown key `__probe__` in that block and reading the loader's own
 * `unknown key <path>.__probe__ (known: …)` problem (config/accessors `checkKeys`, and the
 * plugins' parseConfig which report the same way). So it fails when:
 * - a loader accepts a key the doc does not list (a new key needs its row),
 * - the doc lists a key the loader refuses (a removed or misspelt key),
 * - a key of type `block`, `kind` or `plugin` has no section of its own (a new block needs one),
 * - a section names a block no loader reads,
 * - a key the doc names under "SPIRE keys refused here" is accepted after all.
 *
 * A row marked `*(pending)*` documents a key another change is adding: it may be refused
 * for now (its section is not probed while it is), and once the loader accepts it the test
 * fails until the mark is dropped, so the marks only go away.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveAgentConfig } from '../../src/agent/config.js';
import type { HclObject } from '../../src/config/hcl.js';
import { resolveServerConfig } from '../../src/server/config.js';

const DOC = join(import.meta.dirname, '..', '..', 'docs', 'configuration.md');
const PROBE = '__probe__';
/** What `<name>` (a block of named blocks: a plugin, a k8s cluster) becomes in a probe. */
const NAME = 'probe_name';

type File = 'server.conf' | 'agent.conf';

interface Row {
  key: string;
  type: string;
  pending: boolean;
}

interface Section {
  file: File;
  /** Dotted block path; '' for the top level. May hold `<Kind>`, `<name>` placeholders. */
  path: string;
  rows: Row[];
  refused: string[];
  text: string;
}

function parseDoc(md: string): Section[] {
  const sections: Section[] = [];
  let cur: Section | undefined;
  for (const line of md.split('\n')) {
    const h = /^### (server\.conf|agent\.conf): (?:top level|`([^`]+)`)\s*$/.exec(line);
    if (h) {
      cur = { file: h[1] as File, path: h[2] ?? '', rows: [], refused: [], text: '' };
      sections.push(cur);
      continue;
    }
    if (/^#{1,3} /.test(line)) {
      cur = undefined;
      continue;
    }
    if (cur === undefined) continue;
    cur.text += `${line}\n`;
    const row = /^\|\s*`([^`]+)`\s*\|\s*([^|]*?)\s*\|(.*)\|\s*$/.exec(line);
    if (row) cur.rows.push({ key: row[1] as string, type: row[2] as string, pending: (row[3] as string).includes('*(pending)*') });
    const refused = /^SPIRE keys refused here: (.*)$/.exec(line);
    if (refused) cur.refused.push(...[...(refused[1] as string).matchAll(/`([^`]+)`/g)].map((m) => m[1] as string));
  }
  return sections;
}

/** `{a: {b: leaf}}` for segments a, b. */
function nest(segments: readonly string[], leaf: HclObject): HclObject {
  return segments.reduceRight<HclObject>((acc, seg) => ({ [seg]: acc }), leaf);
}

/** The loader's one error message for `tree` (`invalid configuration: <problem>; <problem>…`), '' when it has none. */
function problemsOf(file: File, tree: HclObject): string {
  try {
    if (file === 'server.conf') resolveServerConfig(tree, { dataDir: '/nonexistent/mayfly-doc-probe' });
    else resolveAgentConfig(tree, { dataDir: '/nonexistent/mayfly-doc-probe' }, { env: {} });
    return '';
  } catch (err) {
    return (err as Error).message;
  }
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const list = (s: string): string[] => (s === 'none' ? [] : s.split(', '));

/**
 * The keys the loader knows in the block at `segments`: read from its answer to a
 * `__probe__` key there. `null`: the loader raised no complaint (it does not read the block).
 */
function knownKeys(file: File, segments: readonly string[]): string[] | null {
  const path = segments.join('.');
  const problems = problemsOf(file, nest(segments, { [PROBE]: 'x' }));
  const prefix = path === 'plugins' ? 'unknown plugin kind' : 'unknown key';
  const probed = path === '' ? PROBE : `${path}.${PROBE}`;
  const keys = new RegExp(`(?:^|: |; )${prefix} ${escape(probed)} \\(known: ([^)]*)\\)`).exec(problems);
  if (keys) return list(keys[1] as string);
  if (problems === '') return null;
  throw new Error(`${file} ${path || 'top level'}: no answer to the probe; the loader said: ${problems}`);
}

/** The plugin names the loader knows for `kind`, read from its answer to a plugin named `__probe__`. */
function knownPlugins(file: File, kind: string): string[] {
  const problems = problemsOf(file, { plugins: { [kind]: { [PROBE]: {} } } });
  const r = new RegExp(`plugins\\.${escape(kind)}: only (.*?) (?:is|are) supported; got "${PROBE}"`).exec(problems);
  if (r) return [...(r[1] as string).matchAll(/"([^"]+)"/g)].map((x) => x[1] as string);
  throw new Error(`${file} plugins.${kind}: no answer to the probe; the loader said: ${problems}`);
}

const sections = parseDoc(readFileSync(DOC, 'utf8'));
const sectionAt = (file: File, path: string): Section | undefined => sections.find((s) => s.file === file && s.path === path);
const keysOf = (s: Section): string[] => s.rows.map((r) => r.key);
const label = (s: Section): string => `${s.file} ${s.path === '' ? 'top level' : s.path}`;

/** Paths whose parent row is pending and not yet accepted: not probed. */
function waitingOnPending(file: File, path: string): boolean {
  const parts = path.split('.');
  for (let i = 1; i <= parts.length; i++) {
    const parentPath = parts.slice(0, i - 1).join('.');
    const parent = sectionAt(file, parentPath);
    const row = parent?.rows.find((r) => r.key === parts[i - 1]);
    if (row?.pending === true && !accepted(file, parentPath, row.key)) return true;
  }
  return false;
}

function accepted(file: File, path: string, key: string): boolean {
  if (path === '') return (knownKeys(file, []) ?? []).includes(key);
  const parts = path.split('.');
  if (parts[0] === 'plugins' && parts.length === 2) return knownPlugins(file, parts[1] as string).includes(key);
  return (knownKeys(file, parts.map((p) => (p === '<name>' ? NAME : p))) ?? []).includes(key);
}

/** The concrete block paths a section stands for (`plugins.<Kind>.<name>` is every plugin's body). */
function concretePaths(s: Section): string[][] {
  if (s.path === 'plugins.<Kind>.<name>') {
    const kinds = keysOf(sectionAt(s.file, 'plugins') ?? { file: s.file, path: 'plugins', rows: [], refused: [], text: '' });
    return kinds.flatMap((k) => keysOf(sectionAt(s.file, `plugins.${k}`) as Section).map((n) => ['plugins', k, n]));
  }
  return [s.path === '' ? [] : s.path.split('.').map((p) => (p === '<name>' ? NAME : p))];
}

describe('docs/configuration.md matches the config loaders', () => {
  it('has sections for both files', () => {
    expect(sectionAt('server.conf', '')).toBeDefined();
    expect(sectionAt('agent.conf', '')).toBeDefined();
  });

  for (const s of sections) {
    it(`${label(s)}: lists exactly the keys the loader knows`, () => {
      if (waitingOnPending(s.file, s.path)) return;
      const documented = keysOf(s);
      expect(new Set(documented).size, `${label(s)} lists a key twice`).toBe(documented.length);
      const pending = s.rows.filter((r) => r.pending).map((r) => r.key);
      const parts = s.path.split('.');
      for (const segments of concretePaths(s)) {
        let known: string[] | null;
        if (parts[0] === 'plugins' && parts.length === 2) known = knownPlugins(s.file, parts[1] as string);
        else known = knownKeys(s.file, segments);
        const where = `${s.file} ${segments.join('.') || 'top level'}`;
        if (known === null) {
          expect(documented, `${where}: the loader does not read this block; the doc must list no key`).toEqual([]);
          expect(s.text, `${where}: say the block is "not read"`).toMatch(/not read/i);
          continue;
        }
        const undocumented = known.filter((k) => !documented.includes(k));
        expect(undocumented, `${where}: accepted by the loader but not in docs/configuration.md`).toEqual([]);
        const refused = documented.filter((k) => !known.includes(k) && !pending.includes(k));
        expect(refused, `${where}: in docs/configuration.md but refused by the loader`).toEqual([]);
        const landed = pending.filter((k) => known.includes(k));
        expect(landed, `${where}: accepted now; drop the *(pending)* mark in docs/configuration.md`).toEqual([]);
      }
    });

    if (s.refused.length > 0) {
      it(`${label(s)}: refuses the SPIRE keys it says it refuses`, () => {
        for (const segments of concretePaths(s)) {
          const known = knownKeys(s.file, segments) ?? [];
          expect(s.refused.filter((k) => known.includes(k)), `${s.file} ${segments.join('.') || 'top level'}: accepted after all`).toEqual([]);
        }
      });
    }

    it(`${label(s)}: every block, kind and plugin has its own section`, () => {
      for (const r of s.rows) {
        const child =
          r.type === 'block' || r.type === 'kind' ? `${s.path === '' ? '' : `${s.path}.`}${r.key}`
            : r.type === 'named blocks' ? `${s.path}.${r.key}.<name>`
              : r.type === 'plugin' ? `${s.path}.${r.key}.plugin_data`
                : undefined;
        if (child === undefined) continue;
        expect(sectionAt(s.file, child), `${label(s)}: ${r.key} (${r.type}) needs a section "### ${s.file}: \`${child}\`"`).toBeDefined();
      }
    });
  }
});
