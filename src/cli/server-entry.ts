/**
 * @module cli/server-entry
 *
 * `mayfly-server entry create|update|delete|show|count`, with SPIRE's flags and output.
 * `-data FILE` (or `-data -` for stdin) takes SPIRE's batch format
 * `{"entries": [{"spiffe_id": ..., "parent_id": ..., "selectors": [{"type","value"}], ...}]}`
 * (proto names or lowerCamel JSON names, as protojson accepts).
 *
 * `update` replaces the whole entry (as SPIRE's does). The server checks revisions: with
 * `-revision N` the update fails if the entry changed since revision N; without it the CLI
 * reads the entry's current revision first (last writer wins, as in SPIRE).
 */
import { Option, type Command } from 'commander';
import { formatSelector } from '../registration/selector.js';
import type { WireEntry, WireStatus } from '../server/messages.js';
import { CliUsageError } from './flags.js';
import { emit } from './output.js';
import {
  choiceArg,
  clientCommand,
  collect,
  fields,
  integerArg,
  itemFailed,
  readFileOrStdin,
  secondsArg,
  selectorArgs,
  spiffeIdArg,
  timeText,
  trustDomainArg,
  withServer,
  type CommandContext,
} from './server-common.js';

const MATCHES = ['exact', 'subset', 'superset', 'any'] as const;
type MatchName = (typeof MATCHES)[number];
const WIRE_MATCH: Record<MatchName, string> = { exact: 'MATCH_EXACT', subset: 'MATCH_SUBSET', superset: 'MATCH_SUPERSET', any: 'MATCH_ANY' };

/** SPIRE's entry layout. */
export function entryText(e: WireEntry): string {
  const rows: [string, string | number | boolean | undefined][] = [
    ['Entry ID', e.id],
    ['SPIFFE ID', e.spiffe_id],
    ['Parent ID', e.parent_id],
    ['Revision', e.revision],
  ];
  if (e.downstream) rows.push(['Downstream', true]);
  rows.push(['X509-SVID TTL', e.x509_svid_ttl === 0 ? 'default' : e.x509_svid_ttl]);
  rows.push(['JWT-SVID TTL', e.jwt_svid_ttl === 0 ? 'default' : e.jwt_svid_ttl]);
  rows.push(['Expiration time', timeText(e.expires_at) ?? 'never']);
  for (const s of e.selectors) rows.push(['Selector', formatSelector(s)]);
  for (const f of e.federates_with) rows.push(['FederatesWith', f]);
  for (const d of e.dns_names) rows.push(['DNS name', d]);
  if (e.admin) rows.push(['Admin', true]);
  if (e.hint) rows.push(['Hint', e.hint]);
  rows.push(['Created At', timeText(e.created_at)]);
  return fields(rows);
}

function entriesText(entries: readonly WireEntry[]): string {
  const head = entries.length === 1 ? 'Found 1 entry' : `Found ${entries.length} entries`;
  return [head, ...entries.map(entryText)].join('\n\n');
}

interface EntryFlags {
  entryId?: string;
  spiffeId?: string;
  parentId?: string;
  node?: boolean;
  selector?: string[];
  x509SvidTtl?: string;
  jwtSvidTtl?: string;
  dns?: string[];
  federatesWith?: string[];
  admin?: boolean;
  downstream?: boolean;
  hint?: string;
  entryExpiry?: string;
  data?: string;
  revision?: string;
}

type EntryRequest = Partial<WireEntry>;

async function serverTrustDomain(ctx: CommandContext): Promise<string> {
  const b = await ctx.call<{ trust_domain: string }>('Bundle', 'GetBundle', {});
  return b.trust_domain;
}

async function entryFromFlags(ctx: CommandContext, o: EntryFlags, forUpdate: boolean): Promise<EntryRequest> {
  const spiffeId = spiffeIdArg(o.spiffeId, '-spiffeID', { required: true }) as string;
  if (o.node && o.parentId !== undefined) throw new CliUsageError('-node and -parentID cannot be used together');
  let parentId = spiffeIdArg(o.parentId, '-parentID');
  const selectors = selectorArgs(o.selector);
  if (selectors.length === 0) throw new CliUsageError('at least one -selector is required');
  const e: EntryRequest = {
    spiffe_id: spiffeId,
    selectors,
    x509_svid_ttl: secondsArg(o.x509SvidTtl, '-x509SVIDTTL', { allowZero: true }) ?? 0,
    jwt_svid_ttl: secondsArg(o.jwtSvidTtl, '-jwtSVIDTTL', { allowZero: true }) ?? 0,
    dns_names: o.dns ?? [],
    federates_with: (o.federatesWith ?? []).map((f) => trustDomainArg(f, '-federatesWith')),
    admin: o.admin ?? false,
    downstream: o.downstream ?? false,
    hint: o.hint ?? '',
    expires_at: integerArg(o.entryExpiry, '-entryExpiry') ?? 0,
  };
  if (forUpdate) {
    if (o.entryId === undefined || o.entryId === '') throw new CliUsageError('-entryID is required');
    e.id = o.entryId;
  } else if (o.entryId !== undefined) e.id = o.entryId;
  if (o.node) parentId = `spiffe://${await serverTrustDomain(ctx)}/spire/server`;
  if (parentId === undefined) throw new CliUsageError('-parentID or -node is required');
  e.parent_id = parentId;
  return e;
}

const DATA_KEYS: Record<string, keyof WireEntry | 'ttl'> = {
  entry_id: 'id', entryId: 'id', id: 'id',
  spiffe_id: 'spiffe_id', spiffeId: 'spiffe_id',
  parent_id: 'parent_id', parentId: 'parent_id',
  selectors: 'selectors',
  x509_svid_ttl: 'x509_svid_ttl', x509SvidTtl: 'x509_svid_ttl', ttl: 'ttl',
  jwt_svid_ttl: 'jwt_svid_ttl', jwtSvidTtl: 'jwt_svid_ttl',
  dns_names: 'dns_names', dnsNames: 'dns_names',
  federates_with: 'federates_with', federatesWith: 'federates_with',
  admin: 'admin', downstream: 'downstream', hint: 'hint',
  entryExpiry: 'expires_at', entry_expiry: 'expires_at', expires_at: 'expires_at', expiresAt: 'expires_at',
  revision_number: 'revision', revisionNumber: 'revision', revision: 'revision',
};

/** Entries from SPIRE's `-data` JSON. Field types are left to the server to judge, except shapes. */
export function entriesFromData(text: string, source: string): EntryRequest[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new CliUsageError(`-data ${source} is not valid JSON: ${(err as Error).message}`);
  }
  const list = (doc as { entries?: unknown } | null)?.entries;
  if (!Array.isArray(list)) throw new CliUsageError(`-data ${source} must hold {"entries": [ ... ]}`);
  return list.map((raw, i) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CliUsageError(`-data ${source}: entries[${i}] must be an object`);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
      if (k === 'store_svid' || k === 'storeSvid') continue;
      const field = DATA_KEYS[k];
      if (field === undefined) throw new CliUsageError(`-data ${source}: entries[${i}] has unknown field ${JSON.stringify(k)}`);
      out[field === 'ttl' ? 'x509_svid_ttl' : field] = v;
    }
    const e = out as EntryRequest;
    for (const [f, flag] of [['spiffe_id', 'spiffe_id'], ['parent_id', 'parent_id']] as const) {
      if (typeof e[f] === 'string') spiffeIdArg(e[f], `-data ${source}: entries[${i}].${flag}`);
    }
    if (e.selectors !== undefined && !Array.isArray(e.selectors)) throw new CliUsageError(`-data ${source}: entries[${i}].selectors must be a list`);
    return e;
  });
}

type BatchResult = { status: WireStatus; entry: WireEntry | null };

function reportBatch(ctx: CommandContext, verb: string, results: BatchResult[]): void {
  const ok = results.filter((r) => r.status.code === 0 && r.entry !== null).map((r) => r.entry as WireEntry);
  const failed = results.map((r, i) => ({ r, i })).filter(({ r }) => r.status.code !== 0);
  if (ctx.format === 'json') emit(ctx.io, 'json', { json: { results }, text: '' });
  else if (ok.length > 0) emit(ctx.io, 'pretty', { json: null, text: ok.map(entryText).join('\n\n') });
  if (failed.length === 1 && results.length === 1) throw itemFailed(`failed to ${verb} entry`, failed[0]?.r.status);
  if (failed.length > 0) {
    const first = failed[0] as { r: BatchResult; i: number };
    throw itemFailed(`failed to ${verb} ${failed.length} of ${results.length} entries (first: entries[${first.i}])`, first.r.status);
  }
}

function entryOptions(cmd: Command): Command {
  return clientCommand(cmd)
    .option('--spiffe-id <id>', 'SPIFFE ID the entry gives')
    .option('--parent-id <id>', 'SPIFFE ID of the parent (an agent, or the server for node aliases)')
    .option('--node', 'a node alias: the parent is the server (spiffe://<td>/spire/server)')
    .option('--selector <type:value>', 'selector (repeatable)', collect)
    .option('--x509-svid-ttl <seconds>', 'X509-SVID lifetime (0 = server default)')
    .option('--jwt-svid-ttl <seconds>', 'JWT-SVID lifetime (0 = server default)')
    .option('--dns <name>', 'DNS SAN (repeatable)', collect)
    .option('--federates-with <td>', 'federated trust domain (repeatable)', collect)
    .option('--admin', 'the SVID may call the admin API')
    .option('--downstream', 'the SVID may mint for a downstream server')
    .option('--hint <text>', 'hint for workloads choosing among SVIDs')
    .option('--entry-expiry <unix-seconds>', 'when the entry expires (0 = never)')
    .option('--data <file>', "entries as SPIRE's JSON ({\"entries\": [...]}); '-' reads stdin");
}

async function listAll(ctx: CommandContext, filter: Record<string, unknown>): Promise<WireEntry[]> {
  const out: WireEntry[] = [];
  let token = '';
  for (let pages = 0; pages < 100_000; pages++) {
    const res = await ctx.call<{ entries: WireEntry[]; next_page_token: string }>('Entry', 'ListEntries', { filter, page_size: 1000, page_token: token });
    out.push(...res.entries);
    token = res.next_page_token;
    if (token === '') break;
  }
  return out;
}

export { listAll as listAllEntries };

export function addEntryCommands(program: Command): void {
  const entry = program.command('entry').description('registration entries');

  entryOptions(entry.command('create').description('create registration entries')).action(async (_o: unknown, cmd: Command) => {
    const o = cmd.opts<EntryFlags>();
    await withServer(cmd, async (ctx) => {
      const entries = o.data !== undefined ? entriesFromData(await readFileOrStdin(o.data, '-data'), o.data) : [await entryFromFlags(ctx, o, false)];
      const res = await ctx.call<{ results: BatchResult[] }>('Entry', 'BatchCreateEntry', { entries });
      reportBatch(ctx, 'create', res.results);
    });
  });

  entryOptions(entry.command('update').description('replace registration entries'))
    .option('--entry-id <id>', 'the entry to update')
    .option('--revision <n>', 'fail unless the entry is still at this revision')
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<EntryFlags>();
      await withServer(cmd, async (ctx) => {
        let entries: EntryRequest[];
        if (o.data !== undefined) entries = entriesFromData(await readFileOrStdin(o.data, '-data'), o.data);
        else {
          const e = await entryFromFlags(ctx, o, true);
          const rev = integerArg(o.revision, '-revision');
          e.revision = rev ?? (await ctx.call<WireEntry>('Entry', 'GetEntry', { id: e.id })).revision;
          entries = [e];
        }
        for (const [i, e] of entries.entries()) {
          if (typeof e.id !== 'string' || e.id === '') throw new CliUsageError(`entries[${i}] needs an entry_id to update`);
          if (e.revision === undefined) e.revision = (await ctx.call<WireEntry>('Entry', 'GetEntry', { id: e.id })).revision;
        }
        const res = await ctx.call<{ results: BatchResult[] }>('Entry', 'BatchUpdateEntry', { entries });
        reportBatch(ctx, 'update', res.results);
      });
    });

  clientCommand(entry.command('delete').description('delete a registration entry'))
    .option('--entry-id <id>', 'the entry to delete')
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<EntryFlags>();
      if (o.entryId === undefined || o.entryId === '') throw new CliUsageError('-entryID is required');
      await withServer(cmd, async (ctx) => {
        const res = await ctx.call<{ results: { status: WireStatus; id: string }[] }>('Entry', 'BatchDeleteEntry', { ids: [o.entryId] });
        const r = res.results[0];
        if (r === undefined || r.status.code !== 0) throw itemFailed(`failed to delete entry ${o.entryId}`, r?.status);
        emit(ctx.io, ctx.format, { json: res, text: `Deleted entry with ID: ${r.id}` });
      });
    });

  clientCommand(entry.command('show').description('show registration entries'))
    .option('--entry-id <id>', 'only this entry')
    .option('--spiffe-id <id>', 'only entries with this SPIFFE ID')
    .option('--parent-id <id>', 'only entries with this parent')
    .option('--selector <type:value>', 'selector to match (repeatable)', collect)
    .addOption(new Option('--match-selectors-on <how>', 'exact, subset, superset or any').default('superset'))
    .option('--federates-with <td>', 'federated trust domain to match (repeatable)', collect)
    .addOption(new Option('--match-federates-with <how>', 'exact, subset, superset or any').default('superset'))
    .option('--downstream', 'only downstream entries')
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<EntryFlags & { matchSelectorsOn: string; matchFederatesWith: string }>();
      const spiffeId = spiffeIdArg(o.spiffeId, '-spiffeID');
      const parentId = spiffeIdArg(o.parentId, '-parentID');
      const selectors = selectorArgs(o.selector);
      const matchSel = choiceArg(o.matchSelectorsOn, '-matchSelectorsOn', MATCHES, 'superset');
      const tds = (o.federatesWith ?? []).map((f) => trustDomainArg(f, '-federatesWith'));
      const matchFed = choiceArg(o.matchFederatesWith, '-matchFederatesWith', MATCHES, 'superset');
      await withServer(cmd, async (ctx) => {
        let entries: WireEntry[];
        if (o.entryId !== undefined) {
          entries = [await ctx.call<WireEntry>('Entry', 'GetEntry', { id: o.entryId })];
        } else {
          const filter: Record<string, unknown> = {};
          if (spiffeId !== undefined) filter.by_spiffe_id = spiffeId;
          if (parentId !== undefined) filter.by_parent_id = parentId;
          if (selectors.length > 0) filter.by_selectors = { selectors, match: WIRE_MATCH[matchSel] };
          if (tds.length > 0) filter.by_federates_with = { trust_domains: tds, match: WIRE_MATCH[matchFed] };
          entries = await listAll(ctx, filter);
        }
        if (o.downstream) entries = entries.filter((e) => e.downstream);
        emit(ctx.io, ctx.format, { json: { entries }, text: () => entriesText(entries) });
      });
    });

  clientCommand(entry.command('count').description('count registration entries')).action(async (_o: unknown, cmd: Command) => {
    await withServer(cmd, async (ctx) => {
      const res = await ctx.call<{ count: number }>('Entry', 'CountEntries', {});
      emit(ctx.io, ctx.format, { json: res, text: res.count === 1 ? '1 registration entry' : `${res.count} registration entries` });
    });
  });
}
