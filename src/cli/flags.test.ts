import { Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { asTyped, CliUsageError, closeMatches, createProgram, normalizeArgv, oneLine, runProgram, SPIRE_FLAGS } from './flags.js';
import { emit, withOutputOption } from './output.js';

const norm = (argv: string[]): string[] => normalizeArgv(argv, SPIRE_FLAGS);

describe('normalizeArgv', () => {
  // Every SPIRE spelling the brief lists, with the value in the next argument.
  const valued: Array<[string, string]> = [
    ['spiffeID', 'spiffe-id'], ['parentID', 'parent-id'], ['selector', 'selector'], ['socketPath', 'socket-path'],
    ['entryID', 'entry-id'], ['x509SVIDTTL', 'x509-svid-ttl'], ['jwtSVIDTTL', 'jwt-svid-ttl'], ['dns', 'dns'],
    ['federatesWith', 'federates-with'], ['hint', 'hint'], ['entryExpiry', 'entry-expiry'], ['node', 'node'],
    ['data', 'data'], ['format', 'format'], ['id', 'id'], ['path', 'path'], ['audience', 'audience'], ['ttl', 'ttl'],
    ['write', 'write'], ['output', 'output'], ['joinToken', 'join-token'], ['trustBundle', 'trust-bundle'],
    ['trustDomain', 'trust-domain'], ['dataDir', 'data-dir'], ['bindAddress', 'bind-address'],
    ['serverPort', 'server-port'], ['logLevel', 'log-level'], ['config', 'config'], ['svid', 'svid'],
    ['timeout', 'timeout'], ['registrationUDSPath', 'registration-uds-path'],
  ];
  it.each(valued)('maps -%s VALUE to --%s=VALUE', (spire, kebab) => {
    expect(norm(['entry', 'create', `-${spire}`, 'v1'])).toEqual(['entry', 'create', `--${kebab}=v1`]);
  });
  it.each(valued)('maps -%s=VALUE and --%s VALUE', (spire, kebab) => {
    expect(norm([`-${spire}=a=b`])).toEqual([`--${kebab}=a=b`]);
    expect(norm([`--${spire}`, 'x'])).toEqual([`--${kebab}=x`]);
    expect(norm([`--${kebab}`, 'x'])).toEqual([`--${kebab}=x`]);
  });

  it('keeps a repeatable selector as separate occurrences', () => {
    expect(norm(['-selector', 'unix:uid:1000', '-selector=unix:gid:0', '--selector', 'k8s:ns:default'])).toEqual([
      '--selector=unix:uid:1000', '--selector=unix:gid:0', '--selector=k8s:ns:default',
    ]);
  });

  it('treats booleans as flags without values', () => {
    for (const b of ['admin', 'downstream', 'silent']) {
      expect(norm([`-${b}`, 'next'])).toEqual([`--${b}`, 'next']);
      expect(norm([`-${b}=true`])).toEqual([`--${b}`]);
      expect(norm([`-${b}=1`])).toEqual([`--${b}`]);
      expect(norm([`-${b}=false`])).toEqual([]);
      expect(norm([`--${b}=F`])).toEqual([]);
    }
    expect(() => norm(['-admin=yes'])).toThrow(/invalid boolean value "yes" for -admin/);
  });

  it('takes the next argument as the value even when it starts with a dash', () => {
    expect(norm(['-ttl', '-5'])).toEqual(['--ttl=-5']);
    expect(norm(['-selector', '-weird'])).toEqual(['--selector=-weird']);
  });

  it('passes through positional arguments, short flags and everything after --', () => {
    expect(norm(['api', 'fetch', 'x509', '-h'])).toEqual(['api', 'fetch', 'x509', '-h']);
    expect(norm(['-5', 'x', '--', '-spiffeID', 'zz'])).toEqual(['-5', 'x', '--', '-spiffeID', 'zz']);
    expect(norm(['--unknown-long', 'v'])).toEqual(['--unknown-long', 'v']);
  });

  it('rejects an unknown single-dash flag, naming it and close matches', () => {
    let err: unknown;
    try {
      norm(['-spiffeId', 'spiffe://x/y']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CliUsageError);
    expect((err as CliUsageError).code).toBe('ERR_CLI_USAGE');
    expect((err as Error).message).toBe('flag provided but not defined: -spiffeId (did you mean -spiffeID?)');
    expect(() => norm(['-sockePath', 'p'])).toThrow(/-sockePath \(did you mean -socketPath\?\)/);
    expect(() => norm(['-zzzzzzzz'])).toThrow(/^flag provided but not defined: -zzzzzzzz$/);
    expect(() => norm(['-spiffeID'])).toThrow('flag needs an argument: -spiffeID');
  });

  it('honours a caller-given set of booleans', () => {
    const known = new Map([['fooBar', 'foo-bar']]);
    expect(normalizeArgv(['-fooBar', 'x'], known, { booleans: new Set() })).toEqual(['--foo-bar=x']);
    expect(normalizeArgv(['-fooBar', 'x'], known, { booleans: new Set(['foo-bar']) })).toEqual(['--foo-bar', 'x']);
  });

  it('finds close matches case-insensitively', () => {
    expect(closeMatches('SPIFFEID', ['spiffeID', 'parentID'])).toEqual(['spiffeID']);
    expect(closeMatches('sock', ['socketPath', 'selector'])).toEqual(['socketPath']);
  });
});

describe('createProgram / runProgram', () => {
  function harness() {
    const out: string[] = [];
    const err: string[] = [];
    const program = createProgram({ name: 'tool', io: { out: (t) => out.push(t), err: (t) => err.push(t), env: {} } });
    let seen: Record<string, unknown> | undefined;
    const entry = program.command('entry');
    entry
      .command('create')
      .requiredOption('--spiffe-id <id>', 'SPIFFE ID')
      .option('--selector <sel>', 'selector', (v: string, prev: string[] = []) => [...prev, v])
      .option('--admin', 'admin')
      .addOption(new Option('--x509-svid-ttl <s>', 'ttl').argParser((v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0) throw new CliUsageError(`invalid -x509SVIDTTL ${v}: must be a non-negative integer`);
        return n;
      }))
      .action((opts: Record<string, unknown>) => {
        seen = opts;
      });
    const show = withOutputOption(program.command('show'));
    show.action((opts: { output: 'pretty' | 'json' }) => emit({ out: (t) => out.push(t) }, opts.output, { json: { a: 1 }, text: 'a is 1' }));
    program.command('boom').action(() => {
      throw new Error('it broke\nbadly');
    });
    return { program, out, err, seen: () => seen };
  }

  it('runs a SPIRE-style command line', async () => {
    const h = harness();
    const code = await runProgram(h.program, ['entry', 'create', '-spiffeID', 'spiffe://td/w', '-selector', 'unix:uid:1', '-selector=unix:gid:2', '-admin', '-x509SVIDTTL', '60']);
    expect(code).toBe(0);
    expect(h.seen()).toEqual({ spiffeId: 'spiffe://td/w', selector: ['unix:uid:1', 'unix:gid:2'], admin: true, x509SvidTtl: 60 });
    expect(h.err).toEqual([]);
  });

  it('makes every error one line on stderr with a non-zero code: 2 for command-line mistakes, 1 otherwise', async () => {
    const cases: Array<[string[], RegExp, number]> = [
      [['entry', 'create', '-spiffeIDD', 'x'], /^Error: flag provided but not defined: -spiffeIDD \(did you mean -spiffeID\?\)\n$/, 2],
      [['entry', 'create'], /^Error: required option '--spiffe-id <id>' not specified\n$/, 2],
      [['entry', 'create', '-spiffeID', 'x', '-x509SVIDTTL', '-5'], /^Error: invalid -x509SVIDTTL -5: must be a non-negative integer\n$/, 2],
      [['entry', 'create', '-spiffeID', 'x', '--bogus-thing'], /^Error: unknown option '--bogus-thing'.*\n$/, 2],
      [['nosuch'], /^Error: unknown command 'nosuch'.*\n$/, 2],
      [['show', '-output', 'xml'], /^Error: invalid -output value "xml": use pretty or json\n$/, 2],
      [['boom'], /^Error: it broke badly\n$/, 1],
    ];
    for (const [argv, re, exit] of cases) {
      const h = harness();
      const code = await runProgram(h.program, argv);
      expect(code, argv.join(' ')).toBe(exit);
      expect(h.err.join(''), argv.join(' ')).toMatch(re);
      expect(h.err.join('').split('\n').length).toBe(2);
    }
  });

  it('prints pretty text or exactly one JSON document', async () => {
    let h = harness();
    expect(await runProgram(h.program, ['show'])).toBe(0);
    expect(h.out.join('')).toBe('a is 1\n');
    h = harness();
    expect(await runProgram(h.program, ['show', '-output', 'json'])).toBe(0);
    expect(JSON.parse(h.out.join(''))).toEqual({ a: 1 });
    h = harness();
    expect(await runProgram(h.program, ['show', '--output=json'])).toBe(0);
    expect(JSON.parse(h.out.join(''))).toEqual({ a: 1 });
  });

  it('names each flag in errors as the user typed it', async () => {
    let h = harness();
    expect(await runProgram(h.program, ['entry', 'create', '--spiffe-id', 'x', '--x509-svid-ttl', '-5'])).toBe(2);
    expect(h.err.join('')).toBe('Error: invalid --x509-svid-ttl -5: must be a non-negative integer\n');
    h = harness();
    expect(await runProgram(h.program, ['entry', 'create', '-x509SVIDTTL', '-5', '-spiffeID', 'x'])).toBe(2);
    expect(h.err.join('')).toBe('Error: invalid -x509SVIDTTL -5: must be a non-negative integer\n');
    expect(asTyped("required option '--spiffe-id <id>' not specified; see -selector", new Map([['spiffe-id', '-spiffeID'], ['selector', '--selector']]), SPIRE_FLAGS))
      .toBe("required option '-spiffeID <id>' not specified; see --selector");
    expect(asTyped('-spiffeIDs and spiffe://td/-spiffeID-x stay', new Map([['spiffe-id', '--spiffe-id']]), SPIRE_FLAGS)).toBe('-spiffeIDs and spiffe://td/-spiffeID-x stay');
  });

  it('exits 0 on help', async () => {
    const h = harness();
    expect(await runProgram(h.program, ['entry', 'create', '-help'])).toBe(0);
    expect(h.out.join('')).toMatch(/--spiffe-id <id>/);
  });

  it('oneLine strips commander prefixes and newlines', () => {
    expect(oneLine("error: unknown option '--x'\n(Did you mean --y?)")).toBe("unknown option '--x' (Did you mean --y?)");
  });
});
