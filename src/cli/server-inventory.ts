/**
 * @module cli/server-inventory
 *
 * `mayfly-server inventory [-unusedDays N] [-output json]` (issue 11): the server's
 * Inventory API report — entries never issued, unused for N days, without owner, expired,
 * under a gone or banned parent, duplicated, with over-broad selectors, the longest TTLs,
 * and agents not seen for N days — as a table, one finding a line with its suggested
 * action, or the response message as JSON. Computed on the server (server/inventory), so
 * the usage records and the clock are the server's.
 */
import { Option, type Command } from 'commander';
import { emit } from './output.js';
import { clientCommand, integerArg, withServer } from './server-common.js';
import { CliUsageError } from './flags.js';

interface EntryFinding { kind: string; entry_id: string; spiffe_id: string; owner: string; detail: string; action: string }
interface AgentFinding { kind: string; agent_id: string; last_seen_at: number; detail: string; action: string }
interface InventoryResponse { generated_at: number; entry_count: number; agent_count: number; entries: EntryFinding[]; agents: AgentFinding[] }

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

function text(r: InventoryResponse): string {
  let out = `Entries: ${r.entry_count}, agents: ${r.agent_count}, findings: ${r.entries.length + r.agents.length}\n`;
  if (r.entries.length > 0) {
    out += '\n' + table([['FINDING', 'ENTRY', 'SPIFFE ID', 'OWNER', 'DETAIL', 'ACTION'], ...r.entries.map((f) => [f.kind, f.entry_id, f.spiffe_id, f.owner === '' ? '-' : f.owner, f.detail, f.action])]);
  }
  if (r.agents.length > 0) {
    out += '\n' + table([['FINDING', 'AGENT', 'LAST SEEN', 'DETAIL', 'ACTION'], ...r.agents.map((a) => [a.kind, a.agent_id, new Date(a.last_seen_at * 1000).toISOString(), a.detail, a.action])]);
  }
  return out;
}

export function addInventoryCommands(program: Command): void {
  clientCommand(program.command('inventory').description('entries and agents that need attention (never issued, unused, no owner, expired, orphaned, duplicate, over-broad, long TTLs)'))
    .addOption(new Option('--unused-days <n>', 'days without use (entries) or contact (agents) before they are reported').default('30'))
    .action(async (_o: unknown, cmd: Command) => {
      const days = integerArg(cmd.opts<{ unusedDays: string }>().unusedDays, '-unusedDays') ?? 30;
      if (days < 1 || days > 36_500) throw new CliUsageError(`-unusedDays must be from 1 to 36500; got ${days}`);
      await withServer(cmd, async (ctx) => {
        const r = await ctx.call<InventoryResponse>('Inventory', 'GetInventory', { unused_days: days });
        emit(ctx.io, ctx.format, { json: r, text: text(r) });
      });
    });
}
