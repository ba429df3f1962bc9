/**
 * @module cli/server-agent
 *
 * `mayfly-server agent list|show|ban|evict|purge|count` and `token generate`. `list`, `show`,
 * `ban`, `evict`, `count` and `token generate` call SPIRE's Agent API on the admin socket
 * (the server serves it beside Mayfly's own, issue 14), so `-output json` prints the answer
 * as it came: SPIRE's `ListAgentsResponse` / `types.Agent` / `types.JoinToken`. `agent list`
 * sends SPIRE's filters (`-banned`, `-selector` with `-matchSelectorsOn`,
 * `-attestationType`, `-canReattest`, `-expiresBefore`) and the server applies them. As in
 * SPIRE, a `-banned` or `-canReattest` value other than true or false means all. `purge` is
 * Mayfly's (its PurgeExpiredAgents), printed as SPIRE's CLI prints its purge.
 */
import { Option, type Command } from 'commander';
import { formatSelector } from '../registration/selector.js';
import type { WireAgent } from '../server/messages.js';
import { CliUsageError } from './flags.js';
import { emit } from './output.js';
import { choiceArg, clientCommand, collect, fields, secondsArg, selectorArgs, spiffeIdArg, timeText, withServer, type CommandContext } from './server-common.js';
import { spiffeIdString, spirePurgeResult, spireSpiffeId, type SpireAgent, type SpireJoinToken } from './spire-json.js';

const MATCHES = ['exact', 'subset', 'superset', 'any'] as const;

/**
 * Unix seconds from SPIRE's `-expiresBefore` layout (Go `2006-01-02 15:04:05 -0700 -07`,
 * e.g. `2026-01-02 15:04:05 +0000 +00`) or from RFC 3339 (`2026-01-02T15:04:05Z`).
 */
export function parseExpiresBefore(value: string): number {
  const go = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) ([+-]\d{2})(\d{2}) [+-]\d{2}$/.exec(value);
  const iso = go ? `${go[1]}T${go[2]}${go[3]}:${go[4]}` : value;
  const ms = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(iso) ? Date.parse(iso) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new CliUsageError(`-expiresBefore: date is not valid: ${JSON.stringify(value)}; use "2006-01-02 15:04:05 -0700 -07" (SPIRE's layout) or RFC 3339`);
  }
  return Math.floor(ms / 1000);
}

/** SPIRE's tri-state flags: 'true', 'false', anything else (or absent) = no filter (google.protobuf.BoolValue unset). */
function triState(value: string | undefined): { value: boolean } | undefined {
  return value === 'true' ? { value: true } : value === 'false' ? { value: false } : undefined;
}

/** Unix seconds in the layout SPIRE's server parses `by_expires_before` in (Go `2006-01-02 15:04:05 -0700 -07`), UTC. */
function spireTimeText(unixSeconds: number): string {
  return `${new Date(unixSeconds * 1000).toISOString().slice(0, 19).replace('T', ' ')} +0000 +00`;
}

export function agentText(a: SpireAgent): string {
  const rows: [string, string | number | boolean | undefined][] = [
    ['SPIFFE ID', a.id ? spiffeIdString(a.id) : ''],
    ['Attestation type', a.attestation_type],
    ['Expiration time', timeText(Number(a.x509svid_expires_at)) ?? 'none'],
    ['Serial number', a.x509svid_serial_number || 'none'],
    ['Can re-attest', a.can_reattest],
    ['Banned', a.banned],
  ];
  for (const s of a.selectors) rows.push(['Selector', formatSelector(s)]);
  return fields(rows, 18);
}

/** Every page of Mayfly's ListAgents (for `purge`, Mayfly's own). */
async function listAgents(ctx: CommandContext, filter: Record<string, unknown>): Promise<WireAgent[]> {
  const out: WireAgent[] = [];
  let token = '';
  for (let pages = 0; pages < 100_000; pages++) {
    const res = await ctx.call<{ agents: WireAgent[]; next_page_token: string }>('Agent', 'ListAgents', { filter, page_size: 1000, page_token: token });
    out.push(...res.agents);
    token = res.next_page_token;
    if (token === '') break;
  }
  return out;
}

/** Every page of SPIRE's ListAgents under `filter`. */
async function listSpireAgents(ctx: CommandContext, filter: Record<string, unknown>): Promise<SpireAgent[]> {
  const out: SpireAgent[] = [];
  let token = '';
  for (let pages = 0; pages < 100_000; pages++) {
    const res = await ctx.spire<{ agents: SpireAgent[]; next_page_token: string }>('Agent', 'ListAgents', { filter, page_size: 1000, page_token: token });
    out.push(...res.agents);
    token = res.next_page_token;
    if (token === '') break;
  }
  return out;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function agentIdOf(cmd: Command): ReturnType<typeof spireSpiffeId> {
  return spireSpiffeId(spiffeIdArg(cmd.opts<{ spiffeId?: string }>().spiffeId, '-spiffeID', { required: true }) as string);
}

export function addAgentCommands(program: Command): void {
  const agent = program.command('agent').description('attested agents');

  clientCommand(agent.command('list').description('list attested agents'))
    .option('--selector <type:value>', 'only agents with this selector (repeatable)', collect)
    .addOption(new Option('--match-selectors-on <how>', 'exact, subset, superset or any').default('superset'))
    .option('--attestation-type <type>', 'only agents attested this way (join_token, k8s_psat, ...)')
    .option('--banned <true|false>', "true: banned agents only; false: agents not banned")
    .option('--can-reattest <true|false>', "true: agents that can re-attest; false: agents that can't")
    .option('--expires-before <time>', 'only agents whose SVID expires before this time ("2006-01-02 15:04:05 -0700 -07")')
    .action(async (_o: unknown, cmd: Command) => {
    const o = cmd.opts<{ selector?: string[]; matchSelectorsOn: string; attestationType?: string; banned?: string; canReattest?: string; expiresBefore?: string }>();
    const selectors = selectorArgs(o.selector);
    const how = choiceArg(o.matchSelectorsOn, '-matchSelectorsOn', MATCHES, 'superset');
    const before = o.expiresBefore === undefined || o.expiresBefore === '' ? undefined : parseExpiresBefore(o.expiresBefore);
    const filter: Record<string, unknown> = {};
    const banned = triState(o.banned);
    const canReattest = triState(o.canReattest);
    if (banned !== undefined) filter.by_banned = banned;
    if (canReattest !== undefined) filter.by_can_reattest = canReattest;
    if (o.attestationType !== undefined && o.attestationType !== '') filter.by_attestation_type = o.attestationType;
    if (selectors.length > 0) filter.by_selector_match = { selectors, match: `MATCH_${how.toUpperCase()}` };
    if (before !== undefined) filter.by_expires_before = spireTimeText(before);
    await withServer(cmd, async (ctx) => {
      const agents = await listSpireAgents(ctx, filter);
      emit(ctx.io, ctx.format, {
        json: { agents, next_page_token: '' },
        text: () => (agents.length === 0 ? 'No attested agents found' : [`Found ${plural(agents.length, 'attested agent', 'attested agents')}:`, ...agents.map(agentText)].join('\n\n')),
      });
    });
  });

  clientCommand(agent.command('show').description('show one attested agent'))
    .option('--spiffe-id <id>', "the agent's SPIFFE ID")
    .action(async (_o: unknown, cmd: Command) => {
      const id = agentIdOf(cmd);
      await withServer(cmd, async (ctx) => {
        const a = await ctx.spire<SpireAgent>('Agent', 'GetAgent', { id });
        emit(ctx.io, ctx.format, { json: a, text: `Found an attested agent given its SPIFFE ID\n\n${agentText(a)}` });
      });
    });

  for (const [name, method, done, about] of [
    ['ban', 'BanAgent', 'Agent banned successfully', 'ban an agent: it may not attest again under this ID until evicted'],
    ['evict', 'DeleteAgent', 'Agent evicted successfully', 'evict an agent: it must attest again'],
  ] as const) {
    clientCommand(agent.command(name).description(about))
      .option('--spiffe-id <id>', "the agent's SPIFFE ID")
      .action(async (_o: unknown, cmd: Command) => {
        const id = agentIdOf(cmd);
        await withServer(cmd, async (ctx) => {
          await ctx.spire('Agent', method, { id });
          emit(ctx.io, ctx.format, { json: {}, text: done }); // SPIRE prints the Empty response: {}
        });
      });
  }

  clientCommand(agent.command('purge').description('remove agents whose SVID expired long ago'))
    .addOption(new Option('--expired-for <duration>', 'only agents whose SVID expired at least this long ago').default('720h'))
    .option('--dry-run', 'list what would be purged, purge nothing')
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<{ expiredFor: string; dryRun?: boolean }>();
      const forSeconds = secondsArg(o.expiredFor, '-expiredFor', { allowZero: true }) as number;
      const before = Math.floor(Date.now() / 1000) - forSeconds;
      await withServer(cmd, async (ctx) => {
        // Banned agents stay (include_banned: false below), so they are not listed as purgeable.
        const expired = (await listAgents(ctx, { by_expired_before: Math.max(1, before) })).filter((a) => !a.banned);
        if (o.dryRun) {
          emit(ctx.io, ctx.format, {
            json: spirePurgeResult(expired.map((a) => ({ id: a.id, deleted: false }))),
            text: () => [`Found ${plural(expired.length, 'expired agent', 'expired agents')}`, ...expired.map((a) => `  ${a.id}`)].join('\n'),
          });
          return;
        }
        const res = await ctx.call<{ purged: number }>('Agent', 'PurgeExpiredAgents', { expired_before: Math.max(1, before), include_banned: false });
        // The server answers with a count; which agents went is read back by listing again.
        const left = new Set(expired.length === 0 ? [] : (await listAgents(ctx, { by_expired_before: Math.max(1, before) })).map((a) => a.id));
        emit(ctx.io, ctx.format, {
          json: spirePurgeResult(expired.map((a) => ({ id: a.id, deleted: !left.has(a.id) }))),
          text: `Purged ${plural(res.purged, 'expired agent', 'expired agents')}`,
        });
      });
    });

  clientCommand(agent.command('count').description('count attested agents')).action(async (_o: unknown, cmd: Command) => {
    await withServer(cmd, async (ctx) => {
      const res = await ctx.spire<{ count: number }>('Agent', 'CountAgents', {});
      emit(ctx.io, ctx.format, { json: res, text: plural(res.count, 'attested agent', 'attested agents') });
    });
  });

  const token = program.command('token').description('join tokens');
  clientCommand(token.command('generate').description('generate a join token for an agent to attest with'))
    .option('--spiffe-id <id>', 'also give the agent this SPIFFE ID (a node-alias entry)')
    .addOption(new Option('--ttl <seconds>', 'how long the token is valid').default('600'))
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<{ spiffeId?: string; ttl: string }>();
      const agentId = spiffeIdArg(o.spiffeId, '-spiffeID');
      const ttl = secondsArg(o.ttl, '-ttl');
      if (ttl === undefined) throw new CliUsageError('-ttl is required');
      await withServer(cmd, async (ctx) => {
        const res = await ctx.spire<SpireJoinToken>('Agent', 'CreateJoinToken', agentId === undefined ? { ttl } : { ttl, agent_id: spireSpiffeId(agentId) });
        emit(ctx.io, ctx.format, { json: res, text: `Token: ${res.value}` });
      });
    });
}
