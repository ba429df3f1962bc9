/**
 * @module cli/agent-api
 *
 * `mayfly-agent api ...`: SPIRE's `spire-agent api` commands over the Workload API SDK, so
 * they work against any SPIFFE agent (Mayfly's or SPIRE's):
 *
 *   api fetch x509 [-socketPath P] [-write DIR] [-silent] [-output json] [-timeout 5s]
 *   api fetch jwt -audience A[,B] [-spiffeID ID] [-socketPath P] [-output json]
 *   api fetch jwt bundles [-socketPath P] [-output json]
 *   api validate jwt -audience A -svid TOKEN [-socketPath P] [-output json]
 *   api watch [-socketPath P] [-write DIR] [-output json]
 *
 * `api watch -write DIR` rewrites that file set on every update (a failed write is one
 * `Failed to write: ...` line on stderr and the watch goes on; the files already there stay
 * whole). `-write DIR` writes files named like SPIRE's: `svid.N.pem` (leaf then intermediates),
 * `svid.N.key` (PKCS#8 PEM, mode 0600), `bundle.N.pem` and `federated_bundle.N.M.pem`
 * (0644), `crl.pem` (the CRLs the agent sent, PEM, 0644) when there are any, each through securefs's exclusive, no-follow temporary file renamed over the
 * target: a DIR another user owns or can write to (without the sticky bit) is refused,
 * and so is a target name that is a symlink or not a regular file (nothing is written
 * through it); a regular file planted there by someone else is replaced, not written into.
 * With no socket named, the client looks at `defaultSocketCandidates('agent')` (its own
 * default, then root's /run/mayfly/agent/public/api.sock) and uses the first that exists,
 * if the directories on its path pass securefs's trusted-dir check.
 * Every failure is one `Error: ...` line and a documented exit code (cli/cli-error): 2 for a
 * bad flag or an INVALID_ARGUMENT answer, 4 when the agent issues no identity to the
 * caller (PERMISSION_DENIED), 5 when there is no socket or the agent does not answer.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import type { BundleSet } from '../spiffe/bundle/index.js';
import { SpiffeId } from '../spiffe/id.js';
import { defaultSocketCandidates, ensureOutputDir, locateDefaultSocket, writeFileAtomic } from '../securefs/index.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { WorkloadApiClient } from '../sdk/client.js';
import { ENDPOINT_ENV } from '../sdk/endpoint.js';
import { x509SvidPem, type JwtSvid, type X509Context } from '../sdk/model.js';
import { CliCallError, cliCodeOfGrpc } from './cli-error.js';
import { quietGrpc } from './grpc-quiet.js';
import { CliUsageError, ioOf, type CliIo } from './flags.js';
import { emit, withOutputOption, type OutputFormat } from './output.js';

/** SPIRE's default `-timeout` for api commands. */
export const DEFAULT_API_TIMEOUT_MS = 5000;

const DURATION_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds from a Go duration (`5s`, `1m30s`, `500ms`); CliUsageError otherwise. */
export function parseTimeout(value: string): number {
  const m = /^((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)$/.exec(value);
  let total = 0;
  if (m) for (const p of value.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(p[1]) * (DURATION_MS[p[2] as string] as number);
  if (!m || !(total > 0)) throw new CliUsageError(`invalid -timeout ${JSON.stringify(value)}: use a positive Go duration such as 5s or 500ms`);
  return Math.ceil(total);
}

interface CommonOptions {
  socketPath?: string;
  timeout: number;
  output: OutputFormat;
}

function common(cmd: Command): Command {
  cmd.addOption(new Option('--socket-path <path>', `path to the Workload API socket (default: $${ENDPOINT_ENV}, else the first of ${defaultSocketCandidates('agent').join(', ')} that exists)`));
  cmd.addOption(new Option('--timeout <duration>', 'time to wait for a response').default(DEFAULT_API_TIMEOUT_MS, '5s').argParser(parseTimeout));
  return withOutputOption(cmd);
}

/** A client for the socket the operator named (flag, then SPIFFE_ENDPOINT_SOCKET, then the default). */
function clientFor(opts: CommonOptions, io: CliIo, timeoutMs?: number): WorkloadApiClient {
  quietGrpc(io.env);
  const timeout = timeoutMs === undefined ? { timeoutMs: opts.timeout } : timeoutMs === 0 ? {} : { timeoutMs };
  if (opts.socketPath !== undefined) {
    const path = opts.socketPath.startsWith('unix:') ? opts.socketPath.replace(/^unix:(\/\/)?/, '') : opts.socketPath;
    if (path.startsWith('/') && !existsSync(path)) throw new CliCallError('ERR_CLI_UNREACHABLE', `no Workload API socket at ${path}: is the agent running, and is -socketPath right?`);
    return new WorkloadApiClient({ socketPath: opts.socketPath, ...timeout });
  }
  const fromEnv = io.env[ENDPOINT_ENV];
  if (fromEnv) return new WorkloadApiClient({ address: fromEnv, ...timeout });
  const located = locateDefaultSocket('agent');
  if (!located.found) {
    throw new CliCallError('ERR_CLI_UNREACHABLE', `no Workload API socket at ${located.candidates.join(' or ')}: is the agent running? Pass -socketPath or set ${ENDPOINT_ENV}`);
  }
  return new WorkloadApiClient({ socketPath: located.path, ...timeout });
}

/** A Workload API failure carrying a gRPC status, as the CLI error that exits with its code. */
function asCliError(err: unknown): unknown {
  const grpcCode = (err as { grpcCode?: unknown } | null)?.grpcCode;
  if (typeof grpcCode !== 'number' || !(err instanceof Error)) return err;
  return new CliCallError(cliCodeOfGrpc(grpcCode), err.message, { cause: err });
}

async function withClient<T>(opts: CommonOptions, io: CliIo, fn: (c: WorkloadApiClient) => Promise<T>): Promise<T> {
  const client = clientFor(opts, io);
  try {
    return await fn(client);
  } catch (err) {
    throw asCliError(err);
  } finally {
    client.close();
  }
}

const iso = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');


// ------------------------------------------------------------------------------------------
// X.509

function x509Json(ctx: X509Context): unknown {
  const own = new Set(ctx.svids.map((s) => s.id.trustDomain.name));
  return {
    svids: ctx.svids.map((s) => ({
      spiffe_id: s.id.toString(),
      hint: s.hint,
      expires_at: iso(s.expiresAt),
      x509_svid: x509SvidPem(s).certificates,
      bundle: ctx.bundles.get(s.id.trustDomain)?.x509AuthoritiesPem() ?? '',
    })),
    federated_bundles: Object.fromEntries(
      [...ctx.bundles].filter((b) => !own.has(b.trustDomain.name)).map((b) => [b.trustDomain.idString, b.x509AuthoritiesPem()]),
    ),
    crl_count: ctx.crl.length,
  };
}

function x509Text(ctx: X509Context, elapsedMs: number): string {
  const lines = [`Received ${ctx.svids.length} svid${ctx.svids.length === 1 ? '' : 's'} after ${elapsedMs.toFixed(1)}ms`];
  for (const s of ctx.svids) {
    lines.push('', `SPIFFE ID:\t\t${s.id}`);
    if (s.hint) lines.push(`Hint:\t\t\t${s.hint}`);
    lines.push(`SVID Valid Until:\t${iso(s.expiresAt)}`);
    lines.push(`Intermediates:\t\t${s.certificates.length - 1}`);
    const bundle = ctx.bundles.get(s.id.trustDomain);
    lines.push(`Bundle roots:\t\t${bundle?.x509Authorities.length ?? 0}`);
  }
  const own = new Set(ctx.svids.map((s) => s.id.trustDomain.name));
  for (const b of ctx.bundles) {
    if (!own.has(b.trustDomain.name)) lines.push(`Federated bundle:\t${b.trustDomain.idString} (${b.x509Authorities.length} roots)`);
  }
  return lines.join('\n');
}

function pemEncodeCrl(der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN X509 CRL-----\n${b64}\n-----END X509 CRL-----\n`;
}

/** One file `-write` wrote, with SPIRE's line for it (`Writing SVID #0 to file /d/svid.0.pem.`). */
export interface WrittenFile {
  path: string;
  line: string;
}

/** Writes SPIRE's file set for `ctx` into `dir` (created 0755 if missing); returns what it wrote, in order. */
export function writeX509Files(ctx: X509Context, dir: string): WrittenFile[] {
  ensureOutputDir(dir);
  const written: WrittenFile[] = [];
  const put = (name: string, data: string, mode: 0o600 | 0o644, what: string): void => {
    const p = join(dir, name);
    writeFileAtomic(p, data, { mode });
    written.push({ path: p, line: `Writing ${what} to file ${p}.` });
  };
  ctx.svids.forEach((s, i) => {
    const pem = x509SvidPem(s);
    put(`svid.${i}.pem`, pem.certificates, 0o644, `SVID #${i}`);
    put(`svid.${i}.key`, pem.privateKey, 0o600, `key #${i}`);
    const own = ctx.bundles.get(s.id.trustDomain);
    put(`bundle.${i}.pem`, own ? pemEncodeCertificates(own.x509Authorities) : '', 0o644, `bundle #${i}`);
    let j = 0;
    for (const b of ctx.bundles) {
      if (b.trustDomain.equals(s.id.trustDomain)) continue;
      put(`federated_bundle.${i}.${j}.pem`, pemEncodeCertificates(b.x509Authorities), 0o644, `federated bundle #${j} for trust domain ${b.trustDomain.idString}`);
      j++;
    }
  });
  // The CRLs beside the bundle (issue 10): `openssl verify -crl_check -CRLfile crl.pem`.
  if (ctx.crl.length > 0) put('crl.pem', ctx.crl.map(pemEncodeCrl).join(''), 0o644, `${ctx.crl.length} CRL(s)`);
  return written;
}

// ------------------------------------------------------------------------------------------
// JWT

function jwtBundlesJson(set: BundleSet): Record<string, unknown> {
  return Object.fromEntries([...set].map((b) => [b.trustDomain.idString, JSON.parse(b.jwksForWorkloadApi().toString('utf8')) as unknown]));
}

function jwtBundlesText(set: BundleSet): string[] {
  const lines: string[] = [];
  for (const b of set) {
    lines.push(`bundle(${b.trustDomain.idString}):`);
    lines.push(`\t${b.jwksForWorkloadApi().toString('utf8')}`);
  }
  return lines;
}

function splitAudience(values: string[] | undefined): string[] {
  const out = (values ?? []).flatMap((v) => v.split(',')).map((a) => a.trim());
  if (out.length === 0 || out.some((a) => a === '')) throw new CliUsageError('-audience is required (one or more, comma separated or repeated)');
  return out;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

// ------------------------------------------------------------------------------------------

function waitForStop(io: CliIo): Promise<void> {
  return new Promise<void>((resolve) => {
    if (io.signal) {
      if (io.signal.aborted) return resolve();
      io.signal.addEventListener('abort', () => resolve(), { once: true });
      return;
    }
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** Adds `api fetch x509|jwt|jwt bundles`, `api validate jwt` and `api watch` to `program`. */
export function registerAgentApiCommands(program: Command): Command {
  const api = program.command('api').description('talk to the Workload API as a workload would');
  const fetch = api.command('fetch').description('fetch SVIDs and bundles');

  // `api fetch` alone is `api fetch x509`, as in SPIRE.
  common(fetch.command('x509', { isDefault: true }).description('fetch X509-SVIDs, their keys and bundles (the default)'))
    .option('--write <dir>', 'write the SVIDs, keys and bundles into this directory')
    .option('--silent', 'print nothing (with -write)')
    .action(async function (this: Command, opts: CommonOptions & { write?: string; silent?: boolean }) {
      const io = ioOf(this);
      const started = performance.now();
      const ctx = await withClient(opts, io, (c) => c.fetchX509Context());
      const elapsed = performance.now() - started;
      const written = opts.write === undefined ? [] : writeX509Files(ctx, opts.write);
      // As SPIRE's: the summary, then one line per file written (pretty output only: JSON stays one document).
      if (!opts.silent) emit(io, opts.output, { json: x509Json(ctx), text: () => [x509Text(ctx, elapsed), ...(written.length > 0 ? ['', ...written.map((w) => w.line)] : [])].join('\n') });
    });

  const jwt = common(fetch.command('jwt').description('fetch JWT-SVIDs for an audience, and the JWT bundles'))
    .option('--audience <aud>', 'audience (comma separated, or repeat the flag)', collect)
    .option('--spiffe-id <id>', 'only the JWT-SVID of this SPIFFE ID')
    .action(async function (this: Command, opts: CommonOptions & { audience?: string[]; spiffeId?: string }) {
      const io = ioOf(this);
      const audience = splitAudience(opts.audience);
      let spiffeId: SpiffeId | undefined;
      if (opts.spiffeId !== undefined) {
        try {
          spiffeId = SpiffeId.parseWorkload(opts.spiffeId);
        } catch (e) {
          throw new CliUsageError(`invalid -spiffeID: ${(e as Error).message}`);
        }
      }
      const [svids, bundles] = await withClient(opts, io, async (c) => {
        const s = await c.fetchJwtSvids({ audience, ...(spiffeId ? { spiffeId } : {}) });
        return [s, await c.fetchJwtBundles()] as [JwtSvid[], BundleSet];
      });
      emit(io, opts.output, {
        json: {
          svids: svids.map((s) => ({ spiffe_id: s.spiffeId.toString(), svid: s.token, hint: s.hint, expires_at: iso(s.expiry), audience: s.audience })),
          bundles: jwtBundlesJson(bundles),
        },
        text: () => [...svids.flatMap((s) => [`token(${s.spiffeId}):`, `\t${s.token}`]), ...jwtBundlesText(bundles)].join('\n'),
      });
    });

  common(jwt.command('bundles').description('fetch the JWT bundles only'))
    .action(async function (this: Command, opts: CommonOptions) {
      const io = ioOf(this);
      const bundles = await withClient(opts, io, (c) => c.fetchJwtBundles());
      emit(io, opts.output, { json: { bundles: jwtBundlesJson(bundles) }, text: () => jwtBundlesText(bundles).join('\n') });
    });

  const validate = api.command('validate').description('validate SVIDs through the agent');
  common(validate.command('jwt').description('validate a JWT-SVID for an audience'))
    .option('--audience <aud>', 'the audience the token must carry')
    .option('--svid <token>', 'the JWT-SVID to validate')
    .action(async function (this: Command, opts: CommonOptions & { audience?: string; svid?: string }) {
      const io = ioOf(this);
      if (!opts.audience) throw new CliUsageError('-audience is required');
      if (!opts.svid) throw new CliUsageError('-svid is required');
      const res = await withClient(opts, io, (c) => c.validateJwtSvid({ token: opts.svid as string, audience: opts.audience as string }));
      emit(io, opts.output, {
        json: { spiffe_id: res.spiffeId.toString(), claims: res.claims },
        text: () => ['SVID is valid.', `SPIFFE ID : ${res.spiffeId}`, `Claims    : ${JSON.stringify(res.claims)}`].join('\n'),
      });
    });

  common(api.command('watch').description('print every X.509 update until interrupted'))
    .option('--write <dir>', 'also write the SVIDs, keys and bundles into this directory on every update')
    .action(async function (this: Command, opts: CommonOptions & { write?: string }) {
      const io = ioOf(this);
      const client = clientFor(opts, io, 0);
      let failure: Error | undefined;
      const stopped = waitForStop(io);
      let last = performance.now();
      let endWatch: () => void = () => undefined;
      const ended = new Promise<void>((resolve) => (endWatch = resolve));
      const cancel = client.watchX509Context(
        (ctx) => {
          const now = performance.now();
          let written: WrittenFile[] = [];
          if (opts.write !== undefined) {
            try {
              written = writeX509Files(ctx, opts.write);
            } catch (err) {
              io.err(`Failed to write: ${(err as Error).message}; the files already there are left as they were\n`);
            }
          }
          const lines = opts.output === 'json' ? [] : written.map((w) => w.line);
          emit(io, opts.output, { json: x509Json(ctx), text: () => `${[x509Text(ctx, now - last), ...(lines.length > 0 ? ['', ...lines] : [])].join('\n')}\n` });
          last = now;
        },
        (err, willRetry) => {
          if (willRetry) {
            io.err(`Failed to watch: ${err.message}; retrying\n`);
            return;
          }
          failure = err;
          endWatch();
        },
      );
      try {
        await Promise.race([stopped, ended]);
      } finally {
        cancel();
        client.close();
      }
      if (failure) throw asCliError(failure);
    });

  return api;
}
