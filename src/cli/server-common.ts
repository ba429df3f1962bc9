/**
 * @module cli/server-common
 *
 * What every `mayfly-server` client command shares: the admin socket connection, turning
 * gRPC failures into one line an operator can act on, and local checks of SPIFFE IDs,
 * selectors, TTLs and durations, so a malformed value is refused before any call with the
 * rule it breaks.
 */
import { readFile, stat } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { parseSelector, type Selector } from '../registration/selector.js';
import { isTemplateId } from '../registration/template.js';
import { SpiffeId, TrustDomain } from '../spiffe/id.js';
import { parseDurationSeconds } from '../config/duration.js';
import { defaultSocketCandidates, locateDefaultSocket } from '../securefs/index.js';
import type { ServerApiService } from '../wire/server/definition-names.js';
import type { SpireClientService } from '../wire/spire/codecs.js';
import type { AdminClient, UnaryMethod } from './admin-client.js';
import { grpcCodeName } from '../observability/grpc-code-name.js';
import { CliCallError, cliCodeOfGrpc } from './cli-error.js';
import { CliUsageError, ioOf, type CliIo } from './flags.js';
import { withOutputOption, type OutputFormat } from './output.js';

/** Extra SPIRE spellings the server commands use, on top of cli/flags' SPIRE_FLAGS. */
export const SERVER_SPIRE_FLAGS: ReadonlyMap<string, string> = new Map([
  ['revision', 'revision'],
  ['mode', 'mode'],
  ['expiredFor', 'expired-for'],
  ['dryRun', 'dry-run'],
  ['unusedDays', 'unused-days'],
  ['includeNonExpired', 'include-non-expired'],
  ['metricsPort', 'metrics-port'],
  ['metricsAddress', 'metrics-address'],
  ['file', 'file'],
  ['banned', 'banned'],
  ['canReattest', 'can-reattest'],
  ['level', 'level'],
  ['from', 'from'],
  ['after', 'after'],
  ['since', 'since'],
  ['until', 'until'],
  ['serial', 'serial'],
  ['trustBundlePath', 'trust-bundle-path'],
  ['bundleEndpointURL', 'bundle-endpoint-url'],
  ['bundleEndpointProfile', 'bundle-endpoint-profile'],
  ['endpointSpiffeID', 'endpoint-spiffe-id'],
  ['endpointSPIFFEID', 'endpoint-spiffe-id'],
  ['trustDomainBundlePath', 'trust-domain-bundle-path'],
  ['trustDomainBundleFormat', 'trust-domain-bundle-format'],
]);

export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** The text of file `path`, or of stdin when `path` is `-` or absent; CliUsageError naming `flag` when unreadable. */
export async function readFileOrStdin(path: string | undefined, flag: string): Promise<string> {
  if (path === undefined || path === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new CliUsageError(`cannot read ${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * Adds `-socketPath` and `-output`. Without `-socketPath` the first of
 * `defaultSocketCandidates('server')` that exists is used, once the directories on its
 * path pass securefs's trusted-dir check (another user's directory there could hold a
 * socket of theirs, collecting the operator's admin requests).
 */
export function clientCommand(cmd: Command, formats?: readonly OutputFormat[]): Command {
  cmd.addOption(new Option('--socket-path <path>', `path to the server's admin socket (default: the first of ${defaultSocketCandidates('server').join(', ')} that exists)`));
  return withOutputOption(cmd, formats);
}

export interface CommandContext {
  io: CliIo;
  format: OutputFormat;
  socketPath: string;
  /** Calls `service.method(request)` on the admin socket. */
  call<Res>(service: ServerApiService, method: string, request: unknown): Promise<Res>;
  /**
   * Calls SPIRE's `service.method(request)` on the admin socket (the server serves SPIRE's API
   * beside its own, issue 14); the answer is as SPIRE's CLI prints it (wire/spire/codecs).
   */
  spire<Res>(service: SpireClientService, method: string, request: unknown): Promise<Res>;
  /** Calls the unary method `m` on the admin socket (e.g. `grpc.health.v1.Health/Check`, wire/spire/health). */
  unary<Res>(m: UnaryMethod, request: unknown): Promise<Res>;
}

const UNREACHABLE = (path: string): string => `cannot reach the server's admin socket at ${path}: is \`mayfly-server run\` running?`;
const DENIED = (path: string): string => `permission denied on the server's admin socket at ${path}: run as the server's user or a member of its group`;

/** One line for a failed call (unreachable server, permission, or the server's message), with its exit code. */
export function describeCallError(err: unknown, socketPath: string): Error {
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  if (typeof e?.code === 'number') {
    const details = String(e.details ?? e.message ?? '');
    if (e.code === 14 /* UNAVAILABLE */) {
      if (/EACCES|EPERM/.test(details)) return new CliCallError('ERR_CLI_PERMISSION_DENIED', DENIED(socketPath), { cause: err });
      if (/ENOENT|ECONNREFUSED|No connection established|Connection dropped|ENOTSOCK/i.test(details)) return new CliCallError('ERR_CLI_UNREACHABLE', UNREACHABLE(socketPath), { cause: err });
    }
    if (e.code === 4 /* DEADLINE_EXCEEDED */) return new CliCallError('ERR_CLI_UNREACHABLE', `the server at ${socketPath} did not answer in time`, { cause: err });
    return new CliCallError(cliCodeOfGrpc(e.code), `${details || grpcCodeName(e.code)} (${grpcCodeName(e.code)})`, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** Runs `fn` with an open admin socket connection, closing it after. */
export async function withServer<T>(cmd: Command, fn: (ctx: CommandContext) => Promise<T>): Promise<T> {
  const opts = cmd.opts<{ socketPath?: string; output?: OutputFormat }>();
  const socketPath = opts.socketPath ?? locateDefaultSocket('server').path;
  try {
    const st = await stat(socketPath);
    if (!st.isSocket()) throw new CliUsageError(`${socketPath} is not a socket: check -socketPath`);
  } catch (err) {
    if (err instanceof CliUsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES') throw new CliCallError('ERR_CLI_PERMISSION_DENIED', DENIED(socketPath), { cause: err });
    throw new CliCallError('ERR_CLI_UNREACHABLE', UNREACHABLE(socketPath), { cause: err });
  }
  let client: AdminClient | undefined;
  const ctx: CommandContext = {
    io: ioOf(cmd),
    format: opts.output ?? 'pretty',
    socketPath,
    call: async <Res>(service: ServerApiService, method: string, request: unknown): Promise<Res> => {
      // The client and the server API's schema load at the first call, not at start-up: a
      // usage error or `--help` never pays for them (issue 18).
      if (client === undefined) {
        const { AdminClient } = await import('./admin-client.js');
        client = new AdminClient({ socketPath });
      }
      try {
        return await client.call<Res>(service, method, request, { deadlineMs: 30_000 });
      } catch (err) {
        throw describeCallError(err, socketPath);
      }
    },
    spire: async <Res>(service: SpireClientService, method: string, request: unknown): Promise<Res> => {
      const { spireApiMethodCodec } = await import('../wire/spire/codecs.js');
      return ctx.unary<Res>(spireApiMethodCodec(service, method), request);
    },
    unary: async <Res>(m: UnaryMethod, request: unknown): Promise<Res> => {
      if (client === undefined) {
        const { AdminClient } = await import('./admin-client.js');
        client = new AdminClient({ socketPath });
      }
      try {
        return await client.callMethod<Res>(m, request, { deadlineMs: 30_000 });
      } catch (err) {
        throw describeCallError(err, socketPath);
      }
    },
  };
  try {
    return await fn(ctx);
  } finally {
    client?.close();
  }
}

// ---------------------------------------------------------------- local checks

/** A SPIFFE ID from flag `flag`; CliUsageError naming the rule it breaks. */
export function spiffeIdArg(value: string | undefined, flag: string, opts: { required?: boolean; template?: boolean } = {}): string | undefined {
  if (value === undefined || value === '') {
    if (opts.required) throw new CliUsageError(`${flag} is required`);
    return undefined;
  }
  // An entry template (`{{type:key}}` placeholders) is checked by the server against the entry's selectors.
  if (opts.template === true && isTemplateId(value)) return value;
  try {
    return SpiffeId.parse(value).toString();
  } catch (err) {
    throw new CliUsageError(`${flag}: ${(err as Error).message}`);
  }
}

/** A trust domain from `example.org` or `spiffe://example.org`. */
export function trustDomainArg(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new CliUsageError(`${flag} is required`);
  try {
    return TrustDomain.parse(value).name;
  } catch (err) {
    throw new CliUsageError(`${flag}: ${(err as Error).message}`);
  }
}

export function selectorArgs(values: readonly string[] | undefined, flag = '-selector'): Selector[] {
  return (values ?? []).map((v) => {
    try {
      return parseSelector(v);
    } catch (err) {
      throw new CliUsageError(`${flag}: ${(err as Error).message}`);
    }
  });
}

/** Seconds from `3600`, `1h` or `90s`; CliUsageError on anything else or on a negative value. */
export function secondsArg(value: string | undefined, flag: string, opts: { allowZero?: boolean } = {}): number | undefined {
  if (value === undefined) return undefined;
  const n = parseDurationSeconds(value);
  if (n === undefined) throw new CliUsageError(`${flag} must be a whole number of seconds or a duration such as "1h" or "90s"; got ${JSON.stringify(value)}`);
  if (n < 0 || (n === 0 && !opts.allowZero)) throw new CliUsageError(`${flag} must be positive; got ${JSON.stringify(value)}`);
  if (n > 2_147_483_647) throw new CliUsageError(`${flag} is too large`);
  return n;
}

/** A non-negative integer (e.g. an expiry time in unix seconds). */
export function integerArg(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value)) throw new CliUsageError(`${flag} must be a non-negative integer; got ${JSON.stringify(value)}`);
  return Number(value);
}

export function choiceArg<T extends string>(value: string | undefined, flag: string, choices: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(choices as readonly string[]).includes(value)) throw new CliUsageError(`${flag} must be one of ${choices.join(', ')}; got ${JSON.stringify(value)}`);
  return value as T;
}

/** `2025-01-02T03:04:05Z` for unix seconds (0 → undefined). */
export function timeText(unixSeconds: number | undefined): string | undefined {
  if (unixSeconds === undefined || unixSeconds === 0) return undefined;
  return new Date(unixSeconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/** Lines `Label : value` with the labels padded to one width (SPIRE's layout). */
export function fields(rows: readonly (readonly [string, string | number | boolean | undefined])[], width = 17): string {
  return rows
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k.padEnd(width)}: ${String(v)}`)
    .join('\n');
}

/** An operation failed on the server for one item of a batch; exits with the item status's code. */
export function itemFailed(what: string, status: { code: number; message: string } | undefined): Error {
  const code = status?.code ?? 2;
  return new CliCallError(cliCodeOfGrpc(code), `${what}: ${status?.message ?? 'no status'} (${grpcCodeName(code)})`);
}
