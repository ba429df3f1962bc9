/**
 * @module config/testing
 *
 * Test support for plugin catalogs: configuring one plugin from the HCL a config file would
 * hold, and finding the conformance fixtures plugins keep in their own folders. Every
 * plugin folder's `testing.ts` exports `pluginFixtures`, each naming the catalog (`binary`),
 * kind and plugin it is for; a catalog's test runs each registration's kind suite on its
 * fixtures and fails for a registration that has none. Not for production use.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseHcl } from './hcl.js';
import { selectPlugins, type ConfiguredOf, type KindRule, type Plugin, type PluginCore } from './plugins.js';
import { Problems } from './problems.js';

/** What every fixture says about itself. */
export interface PluginFixture {
  readonly binary: 'server' | 'agent';
  readonly kind: string;
  readonly name: string;
  /** Tells fixtures of one plugin apart in test names (e.g. `postgres`). */
  readonly label?: string;
}

/** A PluginCore for tests: `dataDir` as given, the process environment, notices kept. */
export function testPluginCore(dataDir = '/nonexistent', notices: string[] = []): PluginCore {
  return { dataDir, env: process.env, notice: (m) => void notices.push(m) };
}

/**
 * `kind "name"` configured from `pluginData` (the HCL inside its `plugin_data { }`) exactly as
 * a config file's `plugins` block is read. Throws with every problem found.
 */
export function configureFromHcl<T extends Plugin<string, never, unknown>, K extends T['kind']>(
  catalog: readonly T[],
  rules: readonly KindRule[],
  kind: K,
  name: string,
  pluginData: string,
  core: PluginCore = testPluginCore(),
): ConfiguredOf<Extract<T, { readonly kind: K }>> {
  const tree = parseHcl(`plugins {\n  ${kind} ${JSON.stringify(name)} {\n    plugin_data {\n${pluginData}\n    }\n  }\n}`);
  const p = new Problems();
  const on = selectPlugins(tree.plugins as Parameters<typeof selectPlugins>[0], catalog, rules, core, p);
  if (p.list.length > 0) throw new Error(`${kind} "${name}": ${p.list.join('; ')}`);
  const found = on.find((c) => c.kind === kind && c.name === name);
  if (found === undefined) throw new Error(`${kind} "${name}" is not on after configuring it`);
  return found as ConfiguredOf<Extract<T, { readonly kind: K }>>;
}

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..');

function testingFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory() && e.name !== 'testdata') out.push(...testingFiles(path));
    else if (e.isFile() && e.name === 'testing.ts') out.push(path);
  }
  return out;
}

/** Every `pluginFixtures` export of a `testing.ts` under `src/`, with the file it came from. */
export async function discoverPluginFixtures(): Promise<{ file: string; fixture: PluginFixture }[]> {
  const out: { file: string; fixture: PluginFixture }[] = [];
  for (const file of testingFiles(SRC)) {
    if (!/export const pluginFixtures\b/.test(readFileSync(file, 'utf8'))) continue;
    const mod = (await import(pathToFileURL(file).href)) as { pluginFixtures?: readonly PluginFixture[] };
    for (const fixture of mod.pluginFixtures ?? []) out.push({ file: relative(join(SRC, '..'), file), fixture });
  }
  return out;
}

/** The fixtures found for `binary`'s plugin `kind`/`name`. */
export function fixturesOf(found: readonly { fixture: PluginFixture }[], binary: PluginFixture['binary'], kind: string, name: string): PluginFixture[] {
  return found.map((f) => f.fixture).filter((f) => f.binary === binary && f.kind === kind && f.name === name);
}

/**
 * What is wrong between a catalog and the fixtures found: registrations without a fixture,
 * fixtures naming no registration, and names registered twice. Empty when all is well.
 */
export function catalogFixtureProblems(
  catalog: readonly { readonly kind: string; readonly name: string }[],
  binary: PluginFixture['binary'],
  found: readonly { file: string; fixture: PluginFixture }[],
): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const p of catalog) {
    const key = `${p.kind} "${p.name}"`;
    if (seen.has(key)) problems.push(`${key} is registered twice`);
    seen.add(key);
    if (fixturesOf(found, binary, p.kind, p.name).length === 0) problems.push(`${key} has no conformance fixture: export pluginFixtures from a testing.ts in its folder`);
  }
  for (const { file, fixture } of found) {
    if (fixture.binary === binary && !seen.has(`${fixture.kind} "${fixture.name}"`)) problems.push(`${file} has a fixture for ${fixture.kind} "${fixture.name}", which the ${binary} catalog does not register`);
  }
  return problems;
}
