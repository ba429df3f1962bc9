/**
 * @module cli/server-bundle
 *
 * `mayfly-server bundle show|list|set|delete|count`. Bundles are printed as PEM (the X.509
 * authorities) or in the SPIFFE bundle format (a JWK set with `spiffe_sequence` and
 * `spiffe_refresh_hint`), read back the same ways, and checked locally before upload.
 *
 * `-output json` prints SPIRE's `types.Bundle` / `ListFederatedBundlesResponse` (cli/spire-json).
 * `count` calls SPIRE's Bundle API (issue 14); `show`, `list`, `set` and `delete` stay on
 * Mayfly's, whose bundles carry the DER and keys the PEM and SPIFFE-format printers read.
 *
 * `delete -mode`: `restrict` (default) refuses while entries federate with the trust
 * domain; `dissociate` removes it from those entries first; `delete` deletes those entries
 * first. These steps are separate calls, not one transaction.
 */
import { Option, type Command } from 'commander';
import type { Bundle } from '../spiffe/bundle/bundle.js';
import { parseBundle } from '../spiffe/bundle/parse.js';
import { bundleFromX509Pem } from '../spiffe/bundle/x509.js';
import { TrustDomain } from '../spiffe/id.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import type { WireBundle, WireEntry, WireStatus } from '../server/messages.js';
import { bundleWire } from './bundle-wire.js';
import { CliUsageError } from './flags.js';
import { spireBundle } from './spire-json.js';
import { emit } from './output.js';
import { listAllEntries } from './server-entry.js';
import { choiceArg, clientCommand, itemFailed, readFileOrStdin, trustDomainArg, withServer, type CommandContext } from './server-common.js';

const FORMATS = ['pem', 'spiffe'] as const;
type BundleFormat = (typeof FORMATS)[number];

type FromWire = Awaited<ReturnType<typeof bundleWire>>['bundleFromWire'];

function bundleText(w: WireBundle, format: BundleFormat, fromWire: FromWire): string {
  if (format === 'pem') return pemEncodeCertificates(w.x509_authorities);
  return `${JSON.stringify(JSON.parse(fromWire(w).toJson()), null, 4)}\n`;
}

async function printBundle(ctx: CommandContext, w: WireBundle, format: BundleFormat): Promise<void> {
  const { bundleFromWire } = await bundleWire();
  emit(ctx.io, ctx.format, { json: spireBundle(w), text: bundleText(w, format, bundleFromWire) });
}

function banner(td: string): string {
  const line = '*'.repeat(40);
  return `${line}\n* ${td}\n${line}\n`;
}

/** Parses bundle text in `format` for trust domain `td`; CliUsageError naming the problem. */
export function parseBundleText(text: string, td: string, format: BundleFormat): Bundle {
  try {
    const trustDomain = TrustDomain.parse(td);
    return format === 'pem' ? bundleFromX509Pem(trustDomain, text) : parseBundle(text, trustDomain);
  } catch (err) {
    throw new CliUsageError(`the ${format} bundle for ${td} is invalid: ${(err as Error).message}`);
  }
}

const formatOption = (fallback: BundleFormat): Option => new Option('--format <format>', 'pem or spiffe').default(fallback);

export function addBundleCommands(program: Command): void {
  const bundle = program.command('bundle').description("trust bundles: the server's own and federated ones");

  clientCommand(bundle.command('show').description("show the server trust domain's bundle"))
    .addOption(formatOption('pem'))
    .action(async (_o: unknown, cmd: Command) => {
      const format = choiceArg(cmd.opts<{ format: string }>().format, '-format', FORMATS, 'pem');
      await withServer(cmd, async (ctx) => printBundle(ctx, await ctx.call<WireBundle>('Bundle', 'GetBundle', {}), format));
    });

  clientCommand(bundle.command('list').description('list federated bundles'))
    .option('--id <td>', 'only this trust domain (spiffe://other.org)')
    .addOption(formatOption('pem'))
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<{ id?: string; format: string }>();
      const format = choiceArg(o.format, '-format', FORMATS, 'pem');
      const only = o.id === undefined ? undefined : trustDomainArg(o.id, '-id');
      await withServer(cmd, async (ctx) => {
        if (only !== undefined) {
          await printBundle(ctx, await ctx.call<WireBundle>('Bundle', 'GetFederatedBundle', { trust_domain: only }), format);
          return;
        }
        const all: WireBundle[] = [];
        let token = '';
        for (let pages = 0; pages < 100_000; pages++) {
          const res = await ctx.call<{ bundles: WireBundle[]; next_page_token: string }>('Bundle', 'ListFederatedBundles', { page_size: 1000, page_token: token });
          all.push(...res.bundles);
          token = res.next_page_token;
          if (token === '') break;
        }
        const { bundleFromWire } = await bundleWire();
        emit(ctx.io, ctx.format, {
          json: { bundles: all.map(spireBundle), next_page_token: '' },
          text: () => (all.length === 0 ? 'No federated bundles found' : all.map((w) => banner(w.trust_domain) + bundleText(w, format, bundleFromWire)).join('\n')),
        });
      });
    });

  clientCommand(bundle.command('set').description('create or replace a federated bundle'))
    .option('--id <td>', 'the trust domain (spiffe://other.org)')
    .option('--path <file>', 'bundle file (default: stdin)')
    .addOption(formatOption('pem'))
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<{ id?: string; path?: string; format: string }>();
      const td = trustDomainArg(o.id, '-id');
      const format = choiceArg(o.format, '-format', FORMATS, 'pem');
      const parsed = parseBundleText(await readFileOrStdin(o.path, '-path'), td, format);
      await withServer(cmd, async (ctx) => {
        const res = await ctx.call<{ results: { status: WireStatus; bundle: WireBundle | null }[] }>('Bundle', 'BatchSetFederatedBundle', { bundles: [(await bundleWire()).bundleToWire(parsed)] });
        const r = res.results[0];
        if (r === undefined || r.status.code !== 0) throw itemFailed(`failed to set the bundle of ${td}`, r?.status);
        emit(ctx.io, ctx.format, { json: { trust_domain: td, status: r.status }, text: 'bundle set.' });
      });
    });

  clientCommand(bundle.command('delete').description('delete a federated bundle'))
    .option('--id <td>', 'the trust domain (spiffe://other.org)')
    .addOption(new Option('--mode <mode>', 'restrict, dissociate or delete').default('restrict'))
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<{ id?: string; mode: string }>();
      const td = trustDomainArg(o.id, '-id');
      const mode = choiceArg(o.mode, '-mode', ['restrict', 'dissociate', 'delete'] as const, 'restrict');
      await withServer(cmd, async (ctx) => {
        const using = await listAllEntries(ctx, { by_federates_with: { trust_domains: [td], match: 'MATCH_SUPERSET' } });
        if (using.length > 0) {
          if (mode === 'restrict') {
            throw new Error(`${using.length} registration entries federate with ${td}: use -mode dissociate (remove it from them) or -mode delete (delete them)`);
          }
          if (mode === 'dissociate') {
            const entries = using.map((e: WireEntry) => ({ ...e, federates_with: e.federates_with.filter((f) => f !== td) }));
            const res = await ctx.call<{ results: { status: WireStatus }[] }>('Entry', 'BatchUpdateEntry', { entries });
            const bad = res.results.find((r) => r.status.code !== 0);
            if (bad) throw itemFailed(`failed to dissociate entries from ${td}`, bad.status);
          } else {
            const res = await ctx.call<{ results: { status: WireStatus }[] }>('Entry', 'BatchDeleteEntry', { ids: using.map((e) => e.id) });
            const bad = res.results.find((r) => r.status.code !== 0);
            if (bad) throw itemFailed(`failed to delete entries federating with ${td}`, bad.status);
          }
        }
        const res = await ctx.call<{ results: { status: WireStatus; trust_domain: string }[] }>('Bundle', 'BatchDeleteFederatedBundle', { trust_domains: [td] });
        const r = res.results[0];
        if (r === undefined || r.status.code !== 0) throw itemFailed(`failed to delete the bundle of ${td}`, r?.status);
        emit(ctx.io, ctx.format, { json: { trust_domain: td, status: r.status, affected_entries: using.length }, text: 'bundle deleted.' });
      });
    });

  clientCommand(bundle.command('count').description('count bundles (own and federated)')).action(async (_o: unknown, cmd: Command) => {
    await withServer(cmd, async (ctx) => {
      const res = await ctx.spire<{ count: number }>('Bundle', 'CountBundles', {});
      emit(ctx.io, ctx.format, { json: res, text: res.count === 1 ? '1 bundle' : `${res.count} bundles` });
    });
  });
}
