/**
 * @module config/plugins
 *
 * Built-in plugins, as SPIRE's are: each one registered once, by the folder that holds it,
 * as `{ kind, name, parseConfig, build }`, and each binary's catalog a list of such
 * registrations (`src/server/catalog.ts`, `src/agent/catalog.ts`). The config loaders read
 * a file's `plugins { Kind "name" { plugin_data { … } } }` through the catalog, and the
 * runners build what was configured through it, so no loader or runner names a plugin.
 *
 * A registration's `build(config, deps)` takes the small interface the plugin declares for
 * what it needs (the join_token attestor: something that consumes a join token), never
 * the whole of what its binary has; the catalog checks at compile time that the binary
 * offers at least that.
 *
 * What the file may say of a plugin (the same for every plugin and both binaries):
 * `plugin_data { … }` (read by the plugin's `parseConfig`), `enabled = false` (off, e.g.
 * the always-on join_token), and SPIRE's `plugin_cmd` / `plugin_checksum` (refused: there
 * are no external plugins). A name the catalog does not hold is one problem listing the
 * names it does.
 */
import { at, bool, block, checkKeys } from './accessors.js';
import { ConfigError, isHclObject, type HclObject, type HclValue } from './hcl.js';
import { Problems } from './problems.js';

/** What a plugin's config may depend on beyond its own block (SPIRE's core configuration). */
export interface PluginCore {
  /** The binary's data directory (`data_dir`). */
  readonly dataDir: string;
  /** The process environment (e.g. the k8s workload attestor's node name variable). */
  readonly env: NodeJS.ProcessEnv;
  /** Records something worth a log line at start (e.g. a SPIRE setting Mayfly does not use). */
  notice(message: string): void;
}

/** A parsed plugin_data: every problem found in it, and the config when there is none. */
export interface ParsedConfig<C> {
  readonly config?: C;
  readonly problems: readonly string[];
}

/** One plugin, as its folder registers it. */
export interface PluginRegistration<K extends string, C, D, P> {
  readonly kind: K;
  readonly name: string;
  /**
   * Reads the plugin's `plugin_data` (`{}` when the block has none). `where` is its path
   * (`plugins.KeyManager.disk.plugin_data`), for messages. Reports problems, never throws.
   */
  parseConfig(data: HclObject, where: string, core: PluginCore): ParsedConfig<C>;
  /** The config when the plugin runs without a block (a kind's default); absent: it must be configured. */
  defaultConfig?(core: PluginCore): C;
  /** The running plugin (or a promise of it, for kinds whose product is one: a datastore opens). */
  build(config: C, deps: D): P;
}

/** A plugin with its config, ready to build. */
export interface ConfiguredPlugin<K extends string, D, P> {
  readonly kind: K;
  readonly name: string;
  /** The parsed config, for readers (settings views, logs); `build` is the way to use it. */
  readonly config: unknown;
  readonly build: (deps: D) => P;
}

/** A registration as a catalog holds it: the config type is the plugin's own business. */
export interface Plugin<K extends string, D, P> {
  readonly kind: K;
  readonly name: string;
  readonly configure: (data: HclObject, where: string, core: PluginCore) => { readonly configured?: ConfiguredPlugin<K, D, P>; readonly problems: readonly string[] };
  readonly configureDefault: ((core: PluginCore) => ConfiguredPlugin<K, D, P>) | undefined;
}

/** The configured form of each plugin type of a catalog union. */
export type ConfiguredOf<T> = T extends Plugin<infer K, infer D, infer P> ? ConfiguredPlugin<K, D, P> : never;

/** The config when `p` holds no problem, else the problems. */
export function parsedConfig<C>(p: Problems, config: C | undefined): ParsedConfig<C> {
  return p.list.length > 0 || config === undefined ? { problems: p.list } : { config, problems: [] };
}

/** `parseConfig` of a plugin that takes no plugin_data: any key is a problem. */
export function parseNoConfig(data: HclObject, where: string): ParsedConfig<Record<string, never>> {
  const p = new Problems();
  checkKeys(data, [], where, p);
  return parsedConfig(p, {});
}

/** Wraps a registration for a catalog (see the module doc). */
export function definePlugin<K extends string, C, D, P>(r: PluginRegistration<K, C, D, P>): Plugin<K, D, P> {
  const configured = (config: C): ConfiguredPlugin<K, D, P> => ({ kind: r.kind, name: r.name, config, build: (deps: D) => r.build(config, deps) });
  return {
    kind: r.kind,
    name: r.name,
    configure: (data, where, core) => {
      const parsed = r.parseConfig(data, where, core);
      if (parsed.config === undefined || parsed.problems.length > 0) return { problems: parsed.problems.length > 0 ? parsed.problems : [`${where} is not usable`] };
      return { configured: configured(parsed.config), problems: [] };
    },
    configureDefault: r.defaultConfig === undefined ? undefined : (core) => configured((r.defaultConfig as (core: PluginCore) => C)(core)),
  };
}

type AnyPlugin = Plugin<string, never, unknown>;

/** How a binary treats one plugin kind. */
export interface KindRule {
  readonly kind: string;
  /** Lower-case name in messages (`node attestor`). */
  readonly noun: string;
  /** `one`: at most one configured; `many`: all configured run side by side. */
  readonly cardinality: 'one' | 'many';
  /** What runs when the file names no plugin of this kind. */
  readonly defaults?: readonly string[];
  /** What runs beside whatever the file names, unless its block says `enabled = false`. */
  readonly alwaysOn?: readonly string[];
  /** Why one must be on (then none on is a problem). */
  readonly required?: string;
  /** Names accepted and ignored (SPIRE names them; Mayfly has nothing to run for them), and why. */
  readonly ignored?: { readonly names: readonly string[]; readonly why: string };
}

/** `"a"`, `"a" and "b"`, `"a", "b" and "c"`. */
function quotedList(names: readonly string[]): string {
  const q = names.map((n) => JSON.stringify(n));
  return q.length <= 1 ? (q[0] ?? 'none') : `${q.slice(0, -1).join(', ')} and ${q[q.length - 1]}`;
}

/** The problem for a plugin name the catalog does not hold. */
export function unknownPluginProblem(kind: string, name: string, known: readonly string[]): string {
  return `plugins.${kind}: only ${quotedList(known)} ${known.length === 1 ? 'is' : 'are'} supported; got ${JSON.stringify(name)} (${kind} ${JSON.stringify(name)} is not built in)`;
}

const BODY_KEYS = ['plugin_data', 'enabled', 'plugin_cmd', 'plugin_checksum'] as const;

/** A plugin block's `plugin_data` (`{}` when absent) and `enabled`. */
function readBody(kind: string, name: string, body: HclValue, p: Problems): { data: HclObject; enabled: boolean } | undefined {
  const where = `plugins.${kind}.${name}`;
  if (!isHclObject(body)) {
    p.add(`${where} must be a block`);
    return undefined;
  }
  checkKeys(body, BODY_KEYS, where, p);
  if (body.plugin_cmd !== undefined) p.add(`${where}.plugin_cmd: external plugins are not supported; Mayfly's plugins are built in`);
  const data = block(body, 'plugin_data', where, p) ?? {};
  return { data, enabled: bool(body, 'enabled', where, p) ?? true };
}

/**
 * The plugins a file's `plugins` block turns on, configured, kind by kind in `rules` order
 * (within a kind: always-on ones first, then file order). Problems go to `p`.
 */
export function selectPlugins<T extends AnyPlugin>(
  plugins: HclObject | undefined,
  catalog: readonly T[],
  rules: readonly KindRule[],
  core: PluginCore,
  p: Problems,
): ConfiguredOf<T>[] {
  const tree: HclObject = plugins ?? {};
  const kinds = rules.map((r) => r.kind);
  for (const k of Object.keys(tree)) if (!kinds.includes(k)) p.add(`unknown plugin kind ${at('plugins', k)} (known: ${kinds.join(', ')})`);
  const out: ConfiguredOf<T>[] = [];
  for (const rule of rules) out.push(...selectKind(tree[rule.kind], rule, catalog.filter((c) => c.kind === rule.kind), core, p));
  return out;
}

function selectKind<T extends AnyPlugin>(byName: HclValue | undefined, rule: KindRule, registered: readonly T[], core: PluginCore, p: Problems): ConfiguredOf<T>[] {
  const { kind } = rule;
  let named: [string, HclValue][] = [];
  if (byName !== undefined) {
    if (!isHclObject(byName)) p.add(`plugins.${kind} must be a block such as ${kind} "name" { ... }`);
    else named = Object.entries(byName);
  }
  if (rule.cardinality === 'one' && named.length > 1) {
    p.add(`plugins.${kind}: configure one ${rule.noun}; found ${named.map(([n]) => n).join(', ')}`);
    return [];
  }
  const ignored = rule.ignored?.names ?? [];
  const known = [...registered.map((r) => r.name), ...ignored];
  const configured = new Map<string, ConfiguredOf<T>>();
  const off = new Set<string>();
  for (const [name, body] of named) {
    const plugin = registered.find((r) => r.name === name);
    if (plugin === undefined && !ignored.includes(name)) {
      p.add(unknownPluginProblem(kind, name, known));
      continue;
    }
    const read = readBody(kind, name, body, p);
    if (read === undefined) continue;
    if (plugin === undefined) {
      if (read.enabled) core.notice(`${kind} ${JSON.stringify(name)} is accepted and not used: ${rule.ignored?.why ?? 'nothing runs for it'}`);
      continue;
    }
    if (!read.enabled) {
      off.add(name);
      continue;
    }
    const r = plugin.configure(read.data, `plugins.${kind}.${name}.plugin_data`, core);
    p.addAll(r.problems);
    if (r.configured !== undefined) configured.set(name, r.configured as ConfiguredOf<T>);
  }
  const byDefault = (name: string): ConfiguredOf<T> => {
    const plugin = registered.find((r) => r.name === name);
    if (plugin?.configureDefault === undefined) throw new TypeError(`${kind} "${name}" is named as a default but has no registration with a default config`);
    return plugin.configureDefault(core) as ConfiguredOf<T>;
  };
  const on: ConfiguredOf<T>[] = [];
  for (const name of rule.alwaysOn ?? []) if (!off.has(name) && !configured.has(name)) on.push(byDefault(name));
  for (const [name] of named) {
    const c = configured.get(name);
    if (c !== undefined) on.push(c);
  }
  if (named.length === 0) for (const name of rule.defaults ?? []) on.push(byDefault(name));
  if (on.length === 0 && off.size > 0 && rule.required !== undefined) {
    p.add(`plugins.${kind}: every ${rule.noun} is disabled; ${rule.required}`);
  }
  return on;
}

/**
 * One plugin configured from `data` (its plugin_data), outside any file: what tests and
 * programs assembling a server or agent by hand use. ConfigError on any problem.
 */
export function configurePlugin<T extends AnyPlugin>(catalog: readonly T[], kind: T['kind'], name: string, data: HclObject, core: PluginCore): ConfiguredOf<T> {
  const plugin = catalog.find((c) => c.kind === kind && c.name === name);
  if (plugin === undefined) throw new ConfigError(unknownPluginProblem(kind, name, catalog.filter((c) => c.kind === kind).map((c) => c.name)));
  const r = plugin.configure(data, `plugins.${kind}.${name}.plugin_data`, core);
  if (r.configured === undefined) throw new ConfigError(`invalid configuration: ${r.problems.join('; ')}`);
  return r.configured as ConfiguredOf<T>;
}

/** The configured plugins of `kind`, typed as that kind's. */
export function pluginsOfKind<U extends { readonly kind: string }, K extends U['kind']>(list: readonly U[], kind: K): Extract<U, { readonly kind: K }>[] {
  return list.filter((c): c is Extract<U, { readonly kind: K }> => c.kind === kind);
}

/** The config of the configured plugin `kind`/`name`, if it is on. */
export function configOf(list: readonly { readonly kind: string; readonly name: string; readonly config: unknown }[], kind: string, name: string): unknown {
  return list.find((c) => c.kind === kind && c.name === name)?.config;
}
