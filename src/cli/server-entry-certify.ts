/**
 * @module cli/server-entry-certify
 *
 * `mayfly-server entry certify -entryID E -owner O [-note …]` (issue 11): the owner's
 * attestation that entry E is still needed, recorded by the server in the audit ledger
 * (Entry.CertifyEntry, server/certification). `-exempt -note "why"` is break-glass: the
 * entry is served although not certified, until its owner certifies it (recorded too).
 * Prints the entry's state and when it is next due; `-output json` prints the response.
 */
import type { Command } from 'commander';
import { CliUsageError } from './flags.js';
import { emit } from './output.js';
import { clientCommand, withServer } from './server-common.js';

interface CertifyResponse {
  entry_id: string;
  state: string;
  certified_at: number;
  due_at: number;
  lapses_at: number;
}

const iso = (s: number): string => new Date(s * 1000).toISOString();

function text(r: CertifyResponse, exempt: boolean): string {
  const head = exempt ? `Entry ${r.entry_id} exempted from certification (break-glass): served until its owner certifies it` : `Entry ${r.entry_id} certified at ${iso(r.certified_at)}`;
  return `${head}\nState:     ${r.state}\nDue at:    ${iso(r.due_at)}\nLapses at: ${iso(r.lapses_at)}\n`;
}

export function addEntryCertifyCommand(entry: Command): void {
  clientCommand(entry.command('certify').description("certify, as its owner, that an entry is still needed (or -exempt it: break-glass)"))
    .option('--entry-id <id>', 'the entry to certify')
    .option('--owner <owner>', "the owner certifying: must be the entry's owner")
    .option('--note <text>', 'why it is still needed (at most 1024 bytes; required with -exempt)')
    .option('--exempt', 'break-glass: serve the entry although not certified, until its owner certifies it (unscoped admins only)')
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<{ entryId?: string; owner?: string; note?: string; exempt?: boolean }>();
      if (o.entryId === undefined || o.entryId === '') throw new CliUsageError('-entryID is required');
      const exempt = o.exempt === true;
      if (!exempt && (o.owner === undefined || o.owner === '')) throw new CliUsageError("-owner is required: the owner you certify for, which must be the entry's (or -exempt -note \"why\" for break-glass)");
      if (exempt && (o.note === undefined || o.note === '')) throw new CliUsageError('-exempt needs -note saying why (e.g. -note "INC-1234: owner on leave")');
      await withServer(cmd, async (ctx) => {
        const r = await ctx.call<CertifyResponse>('Entry', 'CertifyEntry', { entry_id: o.entryId, owner: o.owner ?? '', note: o.note ?? '', exempt });
        emit(ctx.io, ctx.format, { json: r, text: text(r, exempt) });
      });
    });
}
