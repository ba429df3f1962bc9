import { describe, expect, it } from 'vitest';
import { parseHcl } from './hcl.js';
import { definePlugin, parseNoConfig, selectPlugins, type KindRule } from './plugins.js';
import { Problems } from './problems.js';
import { testPluginCore } from './testing.js';

const greeter = (name: string) =>
  definePlugin({
    kind: 'Greeter',
    name,
    parseConfig: parseNoConfig,
    defaultConfig: () => ({}),
    build: (_c, deps: { greeting: string }) => `${deps.greeting}, ${name}`,
  });
const catalog = [greeter('a'), greeter('b'), greeter('c')];

function select(text: string, rule: Partial<KindRule> = {}) {
  const p = new Problems();
  const notices: string[] = [];
  const on = selectPlugins(parseHcl(text).plugins as Parameters<typeof selectPlugins>[0], catalog, [{ kind: 'Greeter', noun: 'greeter', cardinality: 'many', ...rule }], testPluginCore('/d', notices), p);
  return { names: on.map((c) => c.name), built: on.map((c) => c.build({ greeting: 'hello' })), problems: p.list.join('; '), notices };
}

describe('selectPlugins', () => {
  it('builds what the file names, in file order, through each registration', () => {
    expect(select('plugins { Greeter "b" {} Greeter "a" { plugin_data {} } }').built).toEqual(['hello, b', 'hello, a']);
  });

  it('names an unknown plugin with the ones it knows, and an unknown kind with the kinds', () => {
    expect(select('plugins { Greeter "z" {} }').problems).toBe('plugins.Greeter: only "a", "b" and "c" are supported; got "z" (Greeter "z" is not built in)');
    expect(select('plugins { Gretter "a" {} }').problems).toBe('unknown plugin kind plugins.Gretter (known: Greeter)');
  });

  it('runs defaults only when the file names none, always-on ones unless enabled = false', () => {
    expect(select('', { defaults: ['c'] }).names).toEqual(['c']);
    expect(select('plugins { Greeter "a" {} }', { defaults: ['c'] }).names).toEqual(['a']);
    expect(select('plugins { Greeter "a" {} }', { alwaysOn: ['c'] }).names).toEqual(['c', 'a']);
    expect(select('plugins { Greeter "a" {} Greeter "c" { enabled = false } }', { alwaysOn: ['c'] }).names).toEqual(['a']);
    expect(select('plugins { Greeter "c" { enabled = false } }', { alwaysOn: ['c'], required: 'nobody is greeted' }).problems).toBe('plugins.Greeter: every greeter is disabled; nobody is greeted');
  });

  it('refuses two of a kind that takes one, external plugins, plugin_data it does not take, and bodies of the wrong shape', () => {
    expect(select('plugins { Greeter "a" {} Greeter "b" {} }', { cardinality: 'one' }).problems).toBe('plugins.Greeter: configure one greeter; found a, b');
    const bad = select('plugins { Greeter "a" { plugin_cmd = "/bin/x" plugin_data { x = 1 } enabled = "yes" plugin_dat {} } }').problems;
    for (const part of ['plugins.Greeter.a.plugin_cmd: external plugins are not supported', 'unknown key plugins.Greeter.a.plugin_data.x (known: none)', 'plugins.Greeter.a.enabled must be true or false', 'unknown key plugins.Greeter.a.plugin_dat']) {
      expect(bad).toContain(part);
    }
    expect(select('plugins { Greeter = 1 }').problems).toBe('plugins.Greeter must be a block such as Greeter "name" { ... }');
  });

  it('accepts names it ignores, with a notice saying why', () => {
    const r = select('plugins { Greeter "old" { plugin_data { anything = 1 } } }', { ignored: { names: ['old'], why: 'greeting is built in' } });
    expect(r).toMatchObject({ names: [], problems: '', notices: ['Greeter "old" is accepted and not used: greeting is built in'] });
  });
});
