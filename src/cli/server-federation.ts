/**
 * @module cli/server-federation
 *
 * `mayfly-server federation create|update|delete|list|show|refresh`: federation
 * relationships with foreign trust domains, over the TrustDomain API, with SPIRE's flags
 * (`-trustDomain`, `-bundleEndpointURL`, `-bundleEndpointProfile`, `-endpointSpiffeID`,
 * `-trustDomainBundlePath`, `-trustDomainBundleFormat`, or `-data` with SPIRE's JSON file of
 * `federationRelationships`), SPIRE's pretty text and, with `-output json`, SPIRE's JSON
 * (cli/spire-json).
 *
 * Everything that can be checked locally is (URL, profile, endpoint SPIFFE ID, bootstrap
 * bundle) before any call; the server refuses its own trust domain.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { bundleEndpointProfile, parseBundleEndpointUrl } from '../federation/profile.js';
import { isMayflyError } from '../spiffe/errors.js';
import type { WireFederationRelationship, WireStatus } from '../server/messages.js';
import { bundleWire } from './bundle-wire.js';
import { grpcCodeName } from '../observability/grpc-code-name.js';
import { CliCallError, cliCodeOfGrpc } from './cli-error.js';
import { CliUsageError } from './flags.js';
import { emit } from './output.js';
import { parseBundleText } from './server-bundle.js';
import { choiceArg, clientCommand, itemFailed, readFileOrStdin, trustDomainArg, withServer, type CommandContext } from './server-common.js';
import { spireFederationRelationship, spireStatus } from './spire-json.js';

const BUNDLE_FORMATS = ['pem', 'spiffe'] as const;

/** One relationship as flags or one item of a `-data` file give it (SPIRE's names, matched case-insensitively in files). */
export interface RelationshipConfig {
  trustDomain?: string;
  bundleEndpointURL?: string;
  bundleEndpointProfile?: string;
  endpointSPIFFEID?: string;
  trustDomainBundlePath?: string;
  trustDomainBundleFormat?: string;
  /** From a `-data` file: the bundle itself, as PEM text or a SPIFFE bundle (text or object). */
  trustDomainBundle?: unknown;
}

function local<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (isMayflyError(err, 'ERR_FEDERATION_INVALID')) throw new CliUsageError(err.message);
    throw err;
  }
}

/** A relationship message from its config; CliUsageError naming what is wrong. */
export async function relationshipFromConfig(c: RelationshipConfig): Promise<WireFederationRelationship> {
  if (c.trustDomain === undefined || c.trustDomain === '') throw new CliUsageError('trust domain is required (-trustDomain)');
  const td = trustDomainArg(c.trustDomain, '-trustDomain');
  if (c.bundleEndpointURL === undefined || c.bundleEndpointURL === '') throw new CliUsageError('bundle endpoint URL is required (-bundleEndpointURL)');
  const url = c.bundleEndpointURL;
  local(() => parseBundleEndpointUrl(url));
  if (c.bundleEndpointProfile === undefined || c.bundleEndpointProfile === '') {
    throw new CliUsageError('bundle endpoint profile is required (-bundleEndpointProfile https_web or https_spiffe)');
  }
  const name = c.bundleEndpointProfile;
  const id = c.endpointSPIFFEID;
  const profile = local(() => bundleEndpointProfile(name, name === 'https_spiffe' ? id : id === '' ? undefined : id));
  const w: WireFederationRelationship = { trust_domain: td, bundle_endpoint_url: url, created_at: 0, updated_at: 0 };
  if (profile.name === 'https_spiffe') w.https_spiffe = { endpoint_spiffe_id: profile.endpointSpiffeId.toString() };
  else w.https_web = {};
  const format = choiceArg(c.trustDomainBundleFormat, '-trustDomainBundleFormat', BUNDLE_FORMATS, 'pem');
  let text: string | undefined;
  if (c.trustDomainBundle !== undefined && c.trustDomainBundle !== null && c.trustDomainBundle !== '') {
    text = typeof c.trustDomainBundle === 'string' ? c.trustDomainBundle : JSON.stringify(c.trustDomainBundle);
  } else if (c.trustDomainBundlePath !== undefined && c.trustDomainBundlePath !== '') {
    text = await readFileOrStdin(c.trustDomainBundlePath, '-trustDomainBundlePath');
  }
  if (text !== undefined) w.trust_domain_bundle = (await bundleWire()).bundleToWire(parseBundleText(text, td, format));
  return w;
}

const FIELD_NAMES: Record<string, keyof RelationshipConfig> = Object.fromEntries(
  (['trustDomain', 'bundleEndpointURL', 'bundleEndpointProfile', 'endpointSPIFFEID', 'trustDomainBundlePath', 'trustDomainBundleFormat', 'trustDomainBundle'] as const).map((k) => [
    k.toLowerCase(),
    k,
  ]),
);

/** SPIRE's `-data` file: `{"federationRelationships": [ {...}, ... ]}`, keys matched case-insensitively as Go's encoding/json does. */
export async function relationshipsFromData(text: string): Promise<WireFederationRelationship[]> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new CliUsageError(`failed to parse JSON: ${(err as Error).message}`);
  }
  const top = typeof doc === 'object' && doc !== null ? Object.entries(doc).find(([k]) => k.toLowerCase() === 'federationrelationships')?.[1] : undefined;
  if (!Array.isArray(top)) throw new CliUsageError('the -data file must hold {"federationRelationships": [...]}');
  const out: WireFederationRelationship[] = [];
  for (const [i, item] of top.entries()) {
    if (typeof item !== 'object' || item === null) throw new CliUsageError(`could not parse item ${i}: it is not an object`);
    const c: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(item as Record<string, unknown>)) {
      const name = FIELD_NAMES[k.toLowerCase()];
      if (name === undefined) continue;
      if (name !== 'trustDomainBundle' && typeof v !== 'string') throw new CliUsageError(`could not parse item ${i}: ${k} must be a string`);
      c[name] = v;
    }
    try {
      out.push(await relationshipFromConfig(c as RelationshipConfig));
    } catch (err) {
      throw new CliUsageError(`could not parse item ${i}: ${(err as Error).message}`);
    }
  }
  return out;
}

/** SPIRE's layout of one relationship. */
export function relationshipText(w: WireFederationRelationship): string {
  const lines = [`Trust domain              : ${w.trust_domain}`, `Bundle endpoint URL       : ${w.bundle_endpoint_url}`];
  if (w.https_spiffe) {
    lines.push('Bundle endpoint profile   : https_spiffe', `Endpoint SPIFFE ID        : ${w.https_spiffe.endpoint_spiffe_id}`);
  } else {
    lines.push('Bundle endpoint profile   : https_web');
  }
  return `${lines.join('\n')}\n`;
}

interface RelFlags {
  trustDomain?: string;
  bundleEndpointUrl?: string;
  bundleEndpointProfile?: string;
  endpointSpiffeId?: string;
  trustDomainBundlePath?: string;
  trustDomainBundleFormat?: string;
  data?: string;
}

async function relationshipsFromFlags(o: RelFlags): Promise<WireFederationRelationship[]> {
  if (o.data !== undefined) {
    const others = [o.trustDomain, o.bundleEndpointUrl, o.bundleEndpointProfile, o.endpointSpiffeId, o.trustDomainBundlePath, o.trustDomainBundleFormat];
    if (others.some((v) => v !== undefined)) throw new CliUsageError("cannot use other flags to specify relationship fields when 'data' flag is set");
    return relationshipsFromData(await readFileOrStdin(o.data, '-data'));
  }
  const c: RelationshipConfig = {};
  if (o.trustDomain !== undefined) c.trustDomain = o.trustDomain;
  if (o.bundleEndpointUrl !== undefined) c.bundleEndpointURL = o.bundleEndpointUrl;
  if (o.bundleEndpointProfile !== undefined) c.bundleEndpointProfile = o.bundleEndpointProfile;
  if (o.endpointSpiffeId !== undefined) c.endpointSPIFFEID = o.endpointSpiffeId;
  if (o.trustDomainBundlePath !== undefined) c.trustDomainBundlePath = o.trustDomainBundlePath;
  if (o.trustDomainBundleFormat !== undefined) c.trustDomainBundleFormat = o.trustDomainBundleFormat;
  return [await relationshipFromConfig(c)];
}

function relationshipOptions(cmd: Command): Command {
  return cmd
    .option('--trust-domain <td>', 'name of the trust domain to federate with (e.g., example.org)')
    .option('--bundle-endpoint-url <url>', 'URL of the SPIFFE bundle endpoint that provides the trust bundle (must use the HTTPS protocol)')
    .option('--bundle-endpoint-profile <profile>', 'endpoint profile type (either "https_web" or "https_spiffe")')
    .option('--endpoint-spiffe-id <id>', "SPIFFE ID of the SPIFFE bundle endpoint server; only for the 'https_spiffe' profile")
    .option('--trust-domain-bundle-path <file>', 'path to the trust domain bundle data (optional)')
    .addOption(new Option('--trust-domain-bundle-format <format>', 'the format of the bundle data: pem (default) or spiffe'))
    .option('--data <file>', "path to a file holding federation relationships in JSON format (optional); '-' reads stdin");
}

type BatchResult = { status: WireStatus; federation_relationship: WireFederationRelationship | null };

async function batch(ctx: CommandContext, verb: 'create' | 'update', rels: WireFederationRelationship[]): Promise<void> {
  const method = verb === 'create' ? 'BatchCreateFederationRelationship' : 'BatchUpdateFederationRelationship';
  const res = await ctx.call<{ results: BatchResult[] }>('TrustDomain', method, { federation_relationships: rels });
  const failed = res.results.map((r, i) => ({ r, rel: rels[i]! })).filter(({ r }) => r.status.code !== 0);
  emit(ctx.io, ctx.format, {
    json: {
      results: res.results.map((r) => ({
        status: spireStatus(r.status),
        ...(r.federation_relationship ? { federation_relationship: spireFederationRelationship(r.federation_relationship) } : {}),
      })),
    },
    text: () =>
      res.results
        .filter((r) => r.status.code === 0 && r.federation_relationship)
        .map((r) => `\n${relationshipText(r.federation_relationship!)}`)
        .join(''),
  });
  if (failed.length === 0) return;
  if (rels.length === 1) throw itemFailed(`failed to ${verb} the federation relationship with ${failed[0]!.rel.trust_domain}`, failed[0]!.r.status);
  for (const { r, rel } of failed) {
    ctx.io.err(`Failed to ${verb} the federation relationship with ${rel.trust_domain} (code: ${grpcCodeName(r.status.code)}, msg: ${JSON.stringify(r.status.message)})\n`);
  }
  const codes = new Set(failed.map(({ r }) => cliCodeOfGrpc(r.status.code)));
  throw new CliCallError(codes.size === 1 ? [...codes][0]! : 'ERR_CLI_FAILED', `failed to ${verb} ${failed.length} of ${rels.length} federation relationships`);
}

export function addFederationCommands(program: Command): void {
  const fed = program.command('federation').description('federation relationships with foreign trust domains');

  for (const verb of ['create', 'update'] as const) {
    const cmd = clientCommand(
      relationshipOptions(fed.command(verb).description(verb === 'create' ? 'create a federation relationship with a foreign trust domain' : 'update a federation relationship')),
    );
    cmd.action(async (_o: unknown, c: Command) => {
      const rels = await relationshipsFromFlags(c.opts<RelFlags>());
      await withServer(c, (ctx) => batch(ctx, verb, rels));
    });
  }

  clientCommand(fed.command('delete').description('delete a federation relationship (the bundle stays)'))
    .option('--id <td>', 'the trust domain (example.org or spiffe://example.org)')
    .action(async (_o: unknown, cmd: Command) => {
      const td = trustDomainArg(cmd.opts<{ id?: string }>().id, '-id');
      await withServer(cmd, async (ctx) => {
        const res = await ctx.call<{ results: { status: WireStatus; trust_domain: string }[] }>('TrustDomain', 'BatchDeleteFederationRelationship', { trust_domains: [td] });
        const r = res.results[0];
        if (r === undefined || r.status.code !== 0) throw itemFailed(`failed to delete the federation relationship with ${td}`, r?.status);
        emit(ctx.io, ctx.format, { json: { results: [{ status: spireStatus(r.status), trust_domain: r.trust_domain }] }, text: 'federation relationship deleted.' });
      });
    });

  clientCommand(fed.command('list').description('list federation relationships')).action(async (_o: unknown, cmd: Command) => {
    await withServer(cmd, async (ctx) => {
      const all: WireFederationRelationship[] = [];
      let token = '';
      for (let pages = 0; pages < 100_000; pages++) {
        const res = await ctx.call<{ federation_relationships: WireFederationRelationship[]; next_page_token: string }>('TrustDomain', 'ListFederationRelationships', {
          page_size: 1000,
          page_token: token,
        });
        all.push(...res.federation_relationships);
        token = res.next_page_token;
        if (token === '') break;
      }
      emit(ctx.io, ctx.format, {
        json: { federation_relationships: all.map(spireFederationRelationship), next_page_token: '' },
        text: () => `Found ${all.length} federation relationship${all.length === 1 ? '' : 's'}\n${all.map((w) => `\n${relationshipText(w)}`).join('')}`,
      });
    });
  });

  clientCommand(fed.command('show').description('show a federation relationship'))
    .option('--trust-domain <td>', 'the trust domain of the relationship')
    .option('--id <td>', 'the same as -trustDomain')
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<{ trustDomain?: string; id?: string }>();
      const td = trustDomainArg(o.trustDomain ?? o.id, '-trustDomain');
      await withServer(cmd, async (ctx) => {
        const w = await ctx.call<WireFederationRelationship>('TrustDomain', 'GetFederationRelationship', { trust_domain: td });
        emit(ctx.io, ctx.format, { json: spireFederationRelationship(w), text: `Found a federation relationship with trust domain ${td}:\n\n${relationshipText(w)}` });
      });
    });

  clientCommand(fed.command('refresh').description("fetch a federated trust domain's bundle from its endpoint now"))
    .option('--id <td>', 'the trust domain (example.org or spiffe://example.org)')
    .action(async (_o: unknown, cmd: Command) => {
      const td = trustDomainArg(cmd.opts<{ id?: string }>().id, '-id');
      await withServer(cmd, async (ctx) => {
        try {
          await ctx.call('TrustDomain', 'RefreshBundle', { trust_domain: td });
        } catch (err) {
          if (isMayflyError(err, 'ERR_CLI_NOT_FOUND')) throw new CliCallError('ERR_CLI_NOT_FOUND', `there is no federation relationship with trust domain ${JSON.stringify(td)}`);
          if (err instanceof CliCallError && err.code === 'ERR_CLI_FAILED') throw new CliCallError('ERR_CLI_FAILED', `failed to refresh bundle: ${err.message}`, { cause: err });
          throw err;
        }
        emit(ctx.io, ctx.format, { json: { code: 0, message: 'OK' }, text: 'Bundle refreshed' });
      });
    });
}
