/**
 * @module cli/server-entry
 *
 * `mayfly-server entry create|update|delete|show|count`, with SPIRE's flags and output:
 * `-output json` prints SPIRE's response messages (cli/spire-json). `-data FILE` (or
 * `-data -` for stdin) takes SPIRE's batch format or `entry show -output json`'s output
 * (cli/entry-data), split into calls the server accepts (cli/entry-batch), with a summary
 * of what was created and what failed, and why, on stderr. `entry delete -file` takes
 * `{"ids": [...]}`. `entry show -output table` prints one line per entry.
 *
 * `update` replaces the whole entry (as SPIRE's does). The server checks revisions: with
 * `-revision N` the update fails if the entry changed since revision N; without it the CLI
 * reads the entry's current revision first (last writer wins, as in SPIRE).
 *
 * `delete` and `count` call SPIRE's Entry API (the server serves it beside Mayfly's own,
 * issue 14) and print its answer as it came. `create`, `update` and `show` stay on Mayfly's
 * Entry service: they carry Mayfly's owner, labels, purpose and revision checks, which
 * SPIRE's messages do not, and they print them.
 */
import { Option, type Command } from 'commander';
import { labelKeyProblem } from '../registration/entry.js';
import { formatSelector } from '../registration/selector.js';
import type { WireEntry, WireStatus } from '../server/messages.js';
import { grpcCodeName } from '../observability/grpc-code-name.js';
import { CliCallError, cliCodeOfGrpc } from './cli-error.js';
import { batchSummary, runBatched } from './entry-batch.js';
import { entriesFromData, idsFromDeleteFile, type EntryRequest } from './entry-data.js';
import { CliUsageError } from './flags.js';
import { addEntryCertifyCommand } from './server-entry-certify.js';
import { emit, tableText } from './output.js';
import { selectorWarnings } from './selector-check.js';
import { spireEntry, spireEntryFromRequest, spireStatus } from './spire-json.js';
import {
  choiceArg,
  clientCommand,
  collect,
  fields,
  integerArg,
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
  if (e.owner) rows.push(['Owner', e.owner]);
  for (const [k, v] of Object.entries(e.labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) rows.push(['Label', `${k}=${v}`]);
  if (e.purpose) rows.push(['Purpose', e.purpose]);
  rows.push(['Created At', timeText(e.created_at)]);
  return fields(rows);
}

function entriesText(entries: readonly WireEntry[]): string {
  const head = entries.length === 1 ? 'Found 1 entry' : `Found ${entries.length} entries`;
  return [head, ...entries.map(entryText)].join('\n\n');
}

/** `-output table`: one line per entry, for sets too large to read in the pretty layout. */
export function entriesTable(entries: readonly WireEntry[]): string {
  return tableText(
    ['ENTRY ID', 'SPIFFE ID', 'PARENT ID', 'REVISION', 'SELECTORS'],
    entries.map((e) => [e.id, e.spiffe_id, e.parent_id, String(e.revision), e.selectors.map(formatSelector).join(',')]),
  );
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
  storeSvid?: boolean;
  data?: string;
  file?: string;
  revision?: string;
  owner?: string;
  label?: string[];
  purpose?: string;
}

/**
 * `-label k=v` (repeatable) → labels. Keys are checked here (a key such as `__proto__`
 * would not survive a JavaScript object on either end); values and the count by the server.
 */
export function labelArgs(list: readonly string[] | undefined, flag = '-label'): Record<string, string> {
  const out = new Map<string, string>();
  for (const raw of list ?? []) {
    const at = raw.indexOf('=');
    if (at <= 0) throw new CliUsageError(`${flag} ${JSON.stringify(raw.slice(0, 80))}: want key=value, e.g. ${flag} team=payments`);
    const k = raw.slice(0, at);
    const p = labelKeyProblem(k);
    if (p !== undefined) throw new CliUsageError(`${flag}: label key ${JSON.stringify(k.slice(0, 80))} ${p}`);
    if (out.has(k)) throw new CliUsageError(`${flag}: label ${JSON.stringify(k.slice(0, 80))} is given twice; give each key once`);
    out.set(k, raw.slice(at + 1));
  }
  return Object.fromEntries(out);
}

async function serverTrustDomain(ctx: CommandContext): Promise<string> {
  const b = await ctx.call<{ trust_domain: string }>('Bundle', 'GetBundle', {});
  return b.trust_domain;
}

async function entryFromFlags(ctx: CommandContext, o: EntryFlags, forUpdate: boolean): Promise<EntryRequest> {
  if (o.storeSvid) throw new CliUsageError('-storeSVID: Mayfly has no SVIDStore plugins to store SVIDs through; leave the flag out');
  const spiffeId = spiffeIdArg(o.spiffeId, '-spiffeID', { required: true, template: true }) as string;
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
    owner: o.owner ?? '',
    labels: labelArgs(o.label),
    purpose: o.purpose ?? '',
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

type BatchResult = { status: WireStatus; entry: WireEntry | null };

/**
 * Sends `entries` in calls the server accepts and prints SPIRE's batch response: every
 * result in `-output json` (a failed one echoes the entry sent, as SPIRE's CLI does), the
 * entries made in pretty text. With more than one entry a summary goes to stderr. Any
 * failure exits non-zero: with the items' code when they all failed for one reason.
 */
async function sendBatch(ctx: CommandContext, verb: 'create' | 'update', entries: EntryRequest[]): Promise<void> {
  const method = verb === 'create' ? 'BatchCreateEntry' : 'BatchUpdateEntry';
  const results = await runBatched<EntryRequest, BatchResult>({
    items: entries,
    call: async (chunk) => (await ctx.call<{ results: BatchResult[] }>('Entry', method, { entries: chunk })).results,
    io: ctx.io,
    verb: verb === 'create' ? 'created' : 'updated',
    noun: 'entries',
  });
  const ok = results.filter((r) => r.status.code === 0 && r.entry !== null).map((r) => r.entry as WireEntry);
  const failed = results.map((r, i) => ({ r, i })).filter(({ r }) => r.status.code !== 0);
  if (ctx.format === 'json') {
    emit(ctx.io, 'json', {
      json: { results: results.map((r, i) => ({ status: spireStatus(r.status), entry: r.status.code === 0 && r.entry ? spireEntry(r.entry) : spireEntryFromRequest(entries[i] ?? {}) })) },
      text: '',
    });
  } else if (ok.length > 0) emit(ctx.io, 'pretty', { json: null, text: ok.map(entryText).join('\n\n') });
  if (results.length > 1) {
    const describe = (i: number): string => `entries[${i}]${entries[i]?.spiffe_id ? ` ${entries[i]?.spiffe_id}` : ''}`;
    ctx.io.err(batchSummary(verb === 'create' ? 'Created' : 'Updated', results, describe));
  }
  if (failed.length === 0) return;
  const codes = new Set(failed.map(({ r }) => cliCodeOfGrpc(r.status.code)));
  const code = codes.size === 1 ? [...codes][0] ?? 'ERR_CLI_FAILED' : 'ERR_CLI_FAILED';
  const first = failed[0] as { r: BatchResult; i: number };
  if (results.length === 1) throw new CliCallError(code, `failed to ${verb} entry: ${first.r.status.message} (${grpcName(first.r.status.code)})`);
  throw new CliCallError(code, `failed to ${verb} ${failed.length} of ${results.length} entries (first: entries[${first.i}]: ${first.r.status.message})`);
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
    .option('--owner <owner>', 'Mayfly: the team or person answerable for the entry (at most 256 bytes)')
    .option('--label <key=value>', 'Mayfly: a label (repeatable, at most 32)', collect)
    .option('--purpose <text>', 'Mayfly: why the entry exists (at most 1024 bytes)')
    .option('--store-svid', 'SPIRE: store the SVID through an SVIDStore plugin (Mayfly has none: refused)')
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

const grpcName = (code: number): string => grpcCodeName(code);

/** `Warning: ...` on stderr for each selector no built-in attestor emits (cli/selector-check); the entries are still sent. */
function warnSelectors(ctx: CommandContext, entries: readonly EntryRequest[], fromData: boolean): void {
  entries.forEach((e, i) => {
    for (const w of selectorWarnings(e.selectors ?? [], fromData ? `entries[${i}]` : '')) ctx.io.err(`Warning: ${w}\n`);
  });
}

function selectorsKey(e: WireEntry): string {
  return e.selectors.map((x) => `${x.type}:${x.value}`).sort().join('\u0000');
}

/** SPIRE's order for printed entries: SPIFFE ID, then parent ID, then selectors, then ID. */
export function sortEntries(entries: readonly WireEntry[]): WireEntry[] {
  const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  return [...entries].sort((a, b) => cmp(a.spiffe_id, b.spiffe_id) || cmp(a.parent_id, b.parent_id) || cmp(selectorsKey(a), selectorsKey(b)) || cmp(a.id, b.id));
}

export function addEntryCommands(program: Command): void {
  const entry = program.command('entry').description('registration entries');

  entryOptions(entry.command('create').description('create registration entries')).action(async (_o: unknown, cmd: Command) => {
    const o = cmd.opts<EntryFlags>();
    // A -data file is read and checked before the server is: invalid input exits 2 even with no server.
    const fromData = o.data !== undefined ? entriesFromData(await readFileOrStdin(o.data, '-data'), o.data) : undefined;
    await withServer(cmd, async (ctx) => {
      const entries = fromData ?? [await entryFromFlags(ctx, o, false)];
      warnSelectors(ctx, entries, fromData !== undefined);
      // A revision or creation time read from `entry show` output is the old entry's: the server sets both.
      for (const e of entries) {
        delete e.revision;
        delete e.created_at;
      }
      await sendBatch(ctx, 'create', entries);
    });
  });

  entryOptions(entry.command('update').description('replace registration entries'))
    .option('--entry-id <id>', 'the entry to update')
    .option('--revision <n>', 'fail unless the entry is still at this revision')
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<EntryFlags>();
      const fromData = o.data !== undefined ? entriesFromData(await readFileOrStdin(o.data, '-data'), o.data) : undefined;
      for (const [i, e] of (fromData ?? []).entries()) {
        if (typeof e.id !== 'string' || e.id === '') throw new CliUsageError(`-data ${o.data ?? ''}: entries[${i}] needs an entry_id (or id) to update`);
        delete e.created_at;
      }
      await withServer(cmd, async (ctx) => {
        let entries: EntryRequest[];
        if (fromData !== undefined) entries = fromData;
        else {
          const e = await entryFromFlags(ctx, o, true);
          const rev = integerArg(o.revision, '-revision');
          e.revision = rev ?? (await ctx.call<WireEntry>('Entry', 'GetEntry', { id: e.id })).revision;
          entries = [e];
        }
        warnSelectors(ctx, entries, fromData !== undefined);
        for (const e of entries) {
          if (e.revision === undefined) e.revision = (await ctx.call<WireEntry>('Entry', 'GetEntry', { id: e.id })).revision;
        }
        await sendBatch(ctx, 'update', entries);
      });
    });

  clientCommand(entry.command('delete').description('delete registration entries'))
    .option('--entry-id <id>', 'the entry to delete')
    .option('--file <file>', 'entry IDs to delete, as {"ids": [...]}; \'-\' reads stdin')
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<EntryFlags>();
      let ids: string[];
      if (o.file !== undefined) ids = idsFromDeleteFile(await readFileOrStdin(o.file, '-file'), o.file);
      else if (o.entryId === undefined || o.entryId === '') throw new CliUsageError('-entryID or -file is required');
      else ids = [o.entryId];
      await withServer(cmd, async (ctx) => {
        const results = await runBatched<string, { status: WireStatus; id: string }>({
          items: ids,
          // SPIRE's BatchDeleteEntry: its answer (types.Status per ID) is what SPIRE's CLI prints.
          call: async (chunk) => (await ctx.spire<{ results: { status: WireStatus; id: string }[] }>('Entry', 'BatchDeleteEntry', { ids: chunk })).results,
          io: ctx.io,
          verb: 'deleted',
          noun: 'entries',
        });
        const failed = results.filter((r) => r.status.code !== 0);
        const okIds = results.filter((r) => r.status.code === 0).map((r) => `Deleted entry with ID: ${r.id}`);
        emit(ctx.io, ctx.format, { json: { results }, text: okIds.join('\n') });
        if (failed.length === 0) return;
        if (results.length > 1) {
          for (const r of failed) ctx.io.err(`Failed to delete entry with ID ${r.id} (code: ${grpcName(r.status.code)}, msg: ${JSON.stringify(r.status.message)})\n`);
        }
        const codes = new Set(failed.map((r) => cliCodeOfGrpc(r.status.code)));
        const code = codes.size === 1 ? [...codes][0] ?? 'ERR_CLI_FAILED' : 'ERR_CLI_FAILED';
        const first = failed[0] as { status: WireStatus; id: string };
        if (results.length === 1) throw new CliCallError(code, `failed to delete entry ${first.id}: ${first.status.message} (${grpcName(first.status.code)})`);
        throw new CliCallError(code, `deleted ${results.length - failed.length} entries, failed to delete ${failed.length}`);
      });
    });

  clientCommand(entry.command('show').description('show registration entries'), ['pretty', 'json', 'table'])
    .option('--entry-id <id>', 'only this entry')
    .option('--spiffe-id <id>', 'only entries with this SPIFFE ID')
    .option('--parent-id <id>', 'only entries with this parent')
    .option('--selector <type:value>', 'selector to match (repeatable)', collect)
    .addOption(new Option('--match-selectors-on <how>', 'exact, subset, superset or any').default('superset'))
    .option('--federates-with <td>', 'federated trust domain to match (repeatable)', collect)
    .addOption(new Option('--match-federates-with <how>', 'exact, subset, superset or any').default('superset'))
    .option('--downstream', 'only downstream entries')
    .option('--hint <hint>', 'only entries with this hint')
    .option('--owner <owner>', 'Mayfly: only entries with this owner')
    .option('--label <key=value>', 'Mayfly: only entries with this label (repeatable: all must match)', collect)
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<EntryFlags & { matchSelectorsOn: string; matchFederatesWith: string }>();
      const spiffeId = spiffeIdArg(o.spiffeId, '-spiffeID', { template: true });
      const parentId = spiffeIdArg(o.parentId, '-parentID');
      const selectors = selectorArgs(o.selector);
      const matchSel = choiceArg(o.matchSelectorsOn, '-matchSelectorsOn', MATCHES, 'superset');
      const tds = (o.federatesWith ?? []).map((f) => trustDomainArg(f, '-federatesWith'));
      const matchFed = choiceArg(o.matchFederatesWith, '-matchFederatesWith', MATCHES, 'superset');
      const labels = o.label !== undefined ? labelArgs(o.label) : undefined;
      if (o.entryId !== undefined && (spiffeId !== undefined || parentId !== undefined || selectors.length > 0)) {
        throw new CliUsageError("the -entryID flag can't be combined with -spiffeID, -parentID or -selector");
      }
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
          if (o.owner !== undefined && o.owner !== '') filter.by_owner = o.owner;
          if (labels !== undefined) filter.by_labels = labels;
          entries = await listAll(ctx, filter);
        }
        // The server filters by IDs, selectors and trust domains; these two are filtered here.
        if (o.downstream) entries = entries.filter((e) => e.downstream);
        if (o.hint !== undefined && o.hint !== '') entries = entries.filter((e) => e.hint === o.hint);
        // SPIRE sorts (pkg/common/util SortTypesEntries): by SPIFFE ID, then parent ID, then selectors.
        entries = sortEntries(entries);
        emit(ctx.io, ctx.format, {
          json: { entries: entries.map(spireEntry), next_page_token: '' },
          text: () => entriesText(entries),
          table: () => entriesTable(entries),
        });
      });
    });

  addEntryCertifyCommand(entry);

  clientCommand(entry.command('count').description('count registration entries')).action(async (_o: unknown, cmd: Command) => {
    await withServer(cmd, async (ctx) => {
      const res = await ctx.spire<{ count: number }>('Entry', 'CountEntries', {});
      emit(ctx.io, ctx.format, { json: res, text: res.count === 1 ? '1 registration entry' : `${res.count} registration entries` });
    });
  });
}
