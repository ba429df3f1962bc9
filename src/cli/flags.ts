/**
 * @module cli/flags
 *
 * SPIRE-compatible command lines on top of `commander`.
 *
 * SPIRE's commands use Go's `flag` package: single-dash camelCase long flags
 * (`-spiffeID`, `-socketPath`, `-x509SVIDTTL`), `-flag=value`, repeatable flags
 * (`-selector a -selector b`) and booleans written `-admin` or `-admin=true`. Operators'
 * scripts are full of them. Our commands are declared with commander's `--kebab-case`
 * options, so `normalizeArgv` rewrites every SPIRE spelling into the kebab form before
 * commander parses, and `createProgram`/`runProgram` make every failure a single
 * `Error: ...` line on stderr with a non-zero exit code (scripts grep for it).
 *
 * Why a rewrite instead of teaching commander: commander reads `-spiffeID` as the short
 * flags `-s -p -i ...`, which silently does the wrong thing. Rejecting any unknown
 * single-dash multi-letter flag here is what stops that.
 */
import { Command, CommanderError, type Option } from 'commander';
import { isMayflyError, MayflyError } from '../spiffe/errors.js';
import { EXIT_CODES, type CliErrorCode } from './cli-error.js';

/** A command-line mistake by the operator: bad flag, missing value, bad value. Exit code 2 (invalid input). */
export class CliUsageError extends MayflyError<CliErrorCode> {
  readonly exitCode: number = EXIT_CODES.invalidInput;
  constructor(message: string) {
    super('ERR_CLI_USAGE', message);
  }
}

/**
 * SPIRE's flag spellings (Go `flag` names, without the dash) → our kebab-case option names.
 * Commands declare the kebab form; any spelling here is accepted with one or two dashes.
 */
export const SPIRE_FLAGS: ReadonlyMap<string, string> = new Map([
  ['spiffeID', 'spiffe-id'],
  ['parentID', 'parent-id'],
  ['selector', 'selector'],
  ['socketPath', 'socket-path'],
  ['entryID', 'entry-id'],
  ['x509SVIDTTL', 'x509-svid-ttl'],
  ['jwtSVIDTTL', 'jwt-svid-ttl'],
  ['dns', 'dns'],
  ['admin', 'admin'],
  ['downstream', 'downstream'],
  ['federatesWith', 'federates-with'],
  ['hint', 'hint'],
  ['entryExpiry', 'entry-expiry'],
  ['node', 'node'],
  ['data', 'data'],
  ['format', 'format'],
  ['id', 'id'],
  ['path', 'path'],
  ['audience', 'audience'],
  ['ttl', 'ttl'],
  ['write', 'write'],
  ['output', 'output'],
  ['silent', 'silent'],
  ['joinToken', 'join-token'],
  ['trustBundle', 'trust-bundle'],
  ['trustBundleUrl', 'trust-bundle-url'],
  ['trustBundleFormat', 'trust-bundle-format'],
  ['insecureBootstrap', 'insecure-bootstrap'],
  ['trustDomain', 'trust-domain'],
  ['dataDir', 'data-dir'],
  ['bindAddress', 'bind-address'],
  ['serverAddress', 'server-address'],
  ['serverPort', 'server-port'],
  ['logLevel', 'log-level'],
  ['config', 'config'],
  ['expandEnv', 'expand-env'],
  ['svid', 'svid'],
  ['timeout', 'timeout'],
  ['registrationUDSPath', 'registration-uds-path'],
  ['storeSVID', 'store-svid'],
  ['matchSelectorsOn', 'match-selectors-on'],
  ['matchFederatesWith', 'match-federates-with'],
  ['expiresBefore', 'expires-before'],
  ['attestationType', 'attestation-type'],
  ['authorityID', 'authority-id'],
  ['serial', 'serial'],
  ['reason', 'reason'],
  ['shallow', 'shallow'],
  ['verbose', 'verbose'],
  ['help', 'help'],
  // Mayfly's (issue 11): entry owners, labels and purpose.
  ['owner', 'owner'],
  ['label', 'label'],
  ['purpose', 'purpose'],
  // Mayfly's (issue 11): owner certification.
  ['note', 'note'],
  ['exempt', 'exempt'],
]);

/** SPIRE's boolean flags (kebab names): they never consume the next argument. */
export const SPIRE_BOOLEAN_FLAGS: ReadonlySet<string> = new Set([
  'admin', 'downstream', 'silent', 'insecure-bootstrap', 'expand-env', 'store-svid', 'shallow', 'verbose', 'help', 'exempt',
]);

export interface NormalizeOptions {
  /** Kebab names of flags that take no value. Default: SPIRE_BOOLEAN_FLAGS. */
  booleans?: ReadonlySet<string>;
  /** Filled with kebab name → the spelling the user typed (`-spiffeID`, `--spiffe-id`), for error messages. */
  typed?: Map<string, string>;
}

// Go's strconv.ParseBool spellings.
const GO_TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const GO_FALSE = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] as number;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] as number;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      prev[j] = Math.min(up + 1, (prev[j - 1] as number) + 1, diag + cost);
      diag = up;
    }
  }
  return prev[b.length] as number;
}

/** Up to three known spellings close to `name` (case-insensitive edit distance ≤ 2, or a prefix). */
export function closeMatches(name: string, known: Iterable<string>): string[] {
  const lower = name.toLowerCase();
  const scored: Array<[string, number]> = [];
  for (const k of known) {
    const kl = k.toLowerCase();
    const d = editDistance(lower, kl);
    const prefix = lower.length >= 3 && (kl.startsWith(lower) || lower.startsWith(kl));
    if (d <= 2 || prefix) scored.push([k, prefix ? Math.min(d, 1.5) : d]);
  }
  scored.sort((x, y) => x[1] - y[1] || x[0].localeCompare(y[0]));
  return scored.slice(0, 3).map(([k]) => k);
}

/**
 * Rewrites SPIRE-style flags into commander's `--kebab-case` form.
 *
 * - `-spiffeID X`, `--spiffeID X`, `-spiffeID=X`, `--spiffe-id X` → `--spiffe-id=X` (the
 *   value is glued with `=` so a value starting with '-', like `-ttl -5`, stays a value and
 *   is left for validation to reject).
 * - Booleans: `-admin`, `-admin=true` → `--admin`; `-admin=false` → dropped (defaults are off).
 * - Single-letter flags (`-h`), plain arguments, and everything after `--` pass through.
 * - `--other-long` names not in `known` pass through for commander to judge.
 * - An unknown single-dash multi-letter flag throws CliUsageError naming it and close matches.
 */
export function normalizeArgv(argv: readonly string[], known: ReadonlyMap<string, string>, options: NormalizeOptions = {}): string[] {
  const booleans = options.booleans ?? SPIRE_BOOLEAN_FLAGS;
  const kebabs = new Set(known.values());
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    // Plain arguments, a lone '-', and negative numbers given as positional arguments.
    if (!arg.startsWith('-') || arg === '-' || /^--?\d/.test(arg)) {
      out.push(arg);
      continue;
    }
    const dashes = arg.startsWith('--') ? 2 : 1;
    const body = arg.slice(dashes);
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    const inline = eq === -1 ? undefined : body.slice(eq + 1);
    if (dashes === 1 && name.length === 1) {
      out.push(arg); // commander's own short flags (-h, -V)
      continue;
    }
    const kebab = known.get(name) ?? (kebabs.has(name) ? name : undefined);
    if (kebab === undefined) {
      if (dashes === 2) {
        out.push(arg);
        continue;
      }
      const near = closeMatches(name, known.keys());
      const hint = near.length > 0 ? ` (did you mean ${near.map((n) => `-${n}`).join(', ')}?)` : '';
      throw new CliUsageError(`flag provided but not defined: -${name}${hint}`);
    }
    options.typed?.set(kebab, `${'-'.repeat(dashes)}${name}`);
    if (booleans.has(kebab)) {
      if (inline === undefined || GO_TRUE.has(inline)) out.push(`--${kebab}`);
      else if (!GO_FALSE.has(inline)) throw new CliUsageError(`invalid boolean value ${JSON.stringify(inline)} for -${name}: use true or false`);
      continue;
    }
    if (inline !== undefined) {
      out.push(`--${kebab}=${inline}`);
      continue;
    }
    if (i + 1 >= argv.length) throw new CliUsageError(`flag needs an argument: -${name}`);
    out.push(`--${kebab}=${argv[++i] as string}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Program helper

/** Where a program writes, and the environment it reads. Tests pass their own. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  /** Ends long-running commands (watch) when aborted; default: SIGINT/SIGTERM. */
  signal?: AbortSignal;
}

export interface ProgramConfig {
  name: string;
  description?: string;
  version?: string;
  io?: Partial<CliIo>;
  /** Extra SPIRE spellings → kebab names, on top of SPIRE_FLAGS. */
  spireFlags?: ReadonlyMap<string, string>;
}

interface ProgramState {
  io: CliIo;
  spireFlags: ReadonlyMap<string, string>;
}

const programs = new WeakMap<Command, ProgramState>();

function rootOf(cmd: Command): Command {
  let c = cmd;
  while (c.parent) c = c.parent;
  return c;
}

/** The I/O of the program `cmd` belongs to (process stdio when it was not made by createProgram). */
export function ioOf(cmd: Command): CliIo {
  const state = programs.get(rootOf(cmd));
  if (state) return state.io;
  return { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t), env: process.env };
}

/** Collapses a message to one line (commander's errors span two, with its "error: " prefix). */
export function oneLine(message: string): string {
  return message.replace(/^error:\s*/i, '').replace(/\s*\n\s*/g, ' ').trim();
}

const escapeRe = (t: string): string => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * An error message with each flag the user typed spelt as they typed it: messages name
 * flags in SPIRE's spelling (`-spiffeID`) and commander's in kebab form (`'--spiffe-id <id>'`);
 * an operator who wrote `--spiffe-id` reads `--spiffe-id`, one who wrote `-spiffeID` reads that.
 */
export function asTyped(message: string, typed: ReadonlyMap<string, string>, spireFlags: ReadonlyMap<string, string>): string {
  let out = message;
  for (const [spire, kebab] of spireFlags) {
    const as = typed.get(kebab);
    if (as === undefined) continue;
    out = out.replace(new RegExp(`(?<![\\w-])--?(?:${escapeRe(spire)}|${escapeRe(kebab)})(?![\\w-])`, 'g'), as);
  }
  return out;
}

/**
 * A commander program whose errors never call process.exit and never print on their own:
 * `runProgram` turns them into one `Error: ...` line and an exit code. Sub-commands made
 * with `.command()` after this inherit the behaviour.
 */
export function createProgram(config: ProgramConfig): Command {
  const io: CliIo = {
    out: config.io?.out ?? ((t) => process.stdout.write(t)),
    err: config.io?.err ?? ((t) => process.stderr.write(t)),
    env: config.io?.env ?? process.env,
    ...(config.io?.signal ? { signal: config.io.signal } : {}),
  };
  const program = new Command(config.name);
  if (config.description) program.description(config.description);
  if (config.version) program.version(config.version);
  program
    .exitOverride()
    .configureOutput({ writeOut: (t) => io.out(t), writeErr: (t) => io.err(t), outputError: () => undefined })
    .showSuggestionAfterError(true)
    // Like Go's flag package, a flag belongs to the command it follows (`api fetch jwt
    // bundles -socketPath P` sets bundles' flag, not jwt's). Inherited by sub-commands.
    .enablePositionalOptions();
  const spireFlags = new Map(SPIRE_FLAGS);
  for (const [k, v] of config.spireFlags ?? []) spireFlags.set(k, v);
  programs.set(program, { io, spireFlags });
  return program;
}

function collectOptions(cmd: Command, into: Option[]): Option[] {
  into.push(...cmd.options);
  for (const sub of cmd.commands) collectOptions(sub, into);
  return into;
}

function longName(o: Option): string | undefined {
  return o.long?.replace(/^--/, '');
}

/**
 * Parses `argv` (user arguments only, no node/script path) and runs the matching action.
 * Returns the exit code: 0 on success or help, 2 on a command-line mistake, an error's own
 * `exitCode` (cli/cli-error's table) or 1 on any other error, after writing exactly one
 * `Error: <message>` line to the program's stderr.
 */
export async function runProgram(program: Command, argv: readonly string[]): Promise<number> {
  const state = programs.get(program);
  const io = ioOf(program);
  const typed = new Map<string, string>();
  try {
    const options = collectOptions(program, []);
    // Every declared long option is accepted by its kebab name too; booleans are options that
    // take no value in every command declaring them.
    const known = new Map(state?.spireFlags ?? SPIRE_FLAGS);
    const kebabs = new Set(known.values());
    const valued = new Set<string>();
    const booleans = new Set<string>(SPIRE_BOOLEAN_FLAGS);
    for (const o of options) {
      const n = longName(o);
      if (n === undefined || n.startsWith('no-')) continue;
      if (!kebabs.has(n)) known.set(n, n);
      if (o.required || o.optional) valued.add(n);
      else booleans.add(n);
    }
    for (const v of valued) booleans.delete(v);
    const normalized = normalizeArgv(argv, known, { booleans, typed });
    await program.parseAsync(normalized, { from: 'user' });
    return 0;
  } catch (err) {
    const say = (message: string): string => asTyped(oneLine(message), typed, state?.spireFlags ?? SPIRE_FLAGS);
    if (err instanceof CommanderError) {
      // Help and version were already printed by commander; a bare group printed its help.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        return err.exitCode;
      }
      io.err(`Error: ${say(err.message)}\n`);
      return EXIT_CODES.invalidInput;
    }
    const message = err instanceof Error ? err.message : String(err);
    io.err(`Error: ${say(message)}\n`);
    const code = (err as { exitCode?: unknown } | null)?.exitCode;
    if (typeof code === 'number' && code > 0) return code;
    // A configuration file that breaks a rule is invalid input too (cli/cli-error's table).
    return isMayflyError(err, 'ERR_CONFIG_INVALID') ? EXIT_CODES.invalidInput : EXIT_CODES.failed;
  }
}

/** Entry-point glue: runs the program on process.argv and sets process.exitCode. */
export async function runMain(program: Command, argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  process.exitCode = await runProgram(program, argv);
}
