/**
 * @module cli/server-audit
 *
 * `mayfly-server audit verify|show|export`: the audit ledger, read over the admin API and
 * judged here. `verify` recomputes every link and checks every checkpoint against the JWT
 * authorities of the trust bundle (the server's, or one pinned with `-trustBundlePath`), so a
 * datastore edited behind the server's back is caught; it exits 1 naming the first bad record.
 * `show` answers "who held this identity when" (`-spiffeID`, `-serial`, `-entryID`, `-since`,
 * `-until`); `export` writes JSON lines for a SIEM.
 */
import type { Command } from 'commander';
import type { KeyObject } from 'node:crypto';
import { decodeRecordBody, type AuditRecord, type AuditRecordBody } from '../audit/record.js';
import { verifyAuditChain } from '../audit/verify.js';
import type { WireBundle } from '../server/messages.js';
import { bundleWire } from './bundle-wire.js';
import { TrustDomain } from '../spiffe/id.js';
import { CliCallError } from './cli-error.js';
import { CliUsageError } from './flags.js';
import { emit, tableText } from './output.js';
import { parseBundleText } from './server-bundle.js';
import { clientCommand, integerArg, readFileOrStdin, spiffeIdArg, withServer, type CommandContext } from './server-common.js';

interface WireRecord {
  seq: number;
  prev_hash: string;
  hash: string;
  body: string;
}

async function* records(ctx: CommandContext, afterSeq: number): AsyncGenerator<AuditRecord> {
  for (let after = afterSeq; ; ) {
    const page = await ctx.call<{ records: WireRecord[] }>('Audit', 'ListAuditRecords', { after_seq: after, limit: 1000 });
    if (page.records.length === 0) return;
    for (const r of page.records) yield { seq: r.seq, prevHash: r.prev_hash, hash: r.hash, body: r.body };
    after = page.records.at(-1)!.seq;
  }
}

/** `-since`/`-until`: RFC 3339 or unix seconds → unix ms. */
function timeArg(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const ms = /^\d+$/.test(v) ? Number(v) * 1000 : Date.parse(v);
  if (!Number.isFinite(ms)) throw new CliUsageError(`${flag} must be an RFC 3339 time (2026-12-03T10:00:00Z) or unix seconds; got ${JSON.stringify(v)}`);
  return ms;
}

function subjectOf(b: AuditRecordBody): { spiffeId: string; serial: string; entryId: string; agentId: string; notAfter: number | undefined } {
  const e = b as unknown as Record<string, unknown>;
  const s = (k: string): string => (typeof e[k] === 'string' ? (e[k] as string) : '');
  return { spiffeId: s('spiffeId'), serial: s('serial'), entryId: s('entryId'), agentId: s('agentId'), notAfter: typeof e.notAfter === 'number' ? e.notAfter : undefined };
}

export function addAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the hash-chained audit ledger: verify it, ask who held an identity when, export it');

  clientCommand(audit.command('verify').description('prove the ledger unbroken from its start (or from checkpoint -from); exit 1 naming the first bad record'))
    .option('--from <seq>', 'start at this record (a checkpoint: the records before it may have been pruned)')
    .option('--trust-bundle-path <path>', "JWT authorities to trust, as a SPIFFE bundle (default: the server's current bundle)")
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<{ from?: string; trustBundlePath?: string }>();
      const from = integerArg(o.from, '-from');
      if (from !== undefined && from < 1) throw new CliUsageError('-from must be a record number >= 1');
      await withServer(cmd, async (ctx) => {
        const own = await ctx.call<WireBundle>('Bundle', 'GetBundle', {});
        const td = own.trust_domain;
        let keys: ReadonlyMap<string, KeyObject> = (await bundleWire()).bundleFromWire(own).jwtAuthorities;
        if (o.trustBundlePath !== undefined) keys = parseBundleText(await readFileOrStdin(o.trustBundlePath, '-trustBundlePath'), td, 'spiffe').jwtAuthorities;
        const v = await verifyAuditChain({ records: records(ctx, (from ?? 1) - 1), trustedKeys: keys, signerId: `spiffe://${TrustDomain.parse(td).name}/spire/server` });
        emit(ctx.io, ctx.format, {
          json: v,
          text: () =>
            v.ok
              ? `Audit ledger verified: records ${v.firstSeq ?? '-'}..${v.lastSeq ?? '-'} (${v.records}), ${v.checkpoints} signed checkpoints` +
                (v.unsignedTail > 0 ? `; the last ${v.unsignedTail} records await the next checkpoint` : '')
              : `Audit ledger BROKEN at record ${v.problem!.seq}: ${v.problem!.reason}`,
        });
        if (!v.ok) throw new CliCallError('ERR_CLI_FAILED', `the audit ledger does not verify: record ${v.problem!.seq}: ${v.problem!.reason}`);
      });
    });

  clientCommand(audit.command('show').description('records matching every filter given: who held which identity when'), ['pretty', 'json', 'table'])
    .option('--spiffe-id <id>', 'records of this SPIFFE ID')
    .option('--serial <hex>', 'the issuance of this X.509-SVID serial and its deliveries to workloads')
    .option('--entry-id <id>', 'records of this registration entry')
    .option('--since <time>', 'records at or after this time (RFC 3339 or unix seconds)')
    .option('--until <time>', 'records before this time')
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.opts<{ spiffeId?: string; serial?: string; entryId?: string; since?: string; until?: string }>();
      const spiffeId = spiffeIdArg(o.spiffeId, '-spiffeID');
      const serial = o.serial?.toLowerCase().replace(/^0x/, '').replace(/:/g, '');
      if (serial !== undefined && !/^[0-9a-f]{1,64}$/.test(serial)) throw new CliUsageError(`-serial must be hex; got ${JSON.stringify(o.serial)}`);
      const since = timeArg(o.since, '-since');
      const until = timeArg(o.until, '-until');
      await withServer(cmd, async (ctx) => {
        const hits: { seq: number; record: AuditRecordBody }[] = [];
        for await (const r of records(ctx, 0)) {
          const b = decodeRecordBody(r.body);
          if (b === undefined || b.kind === 'checkpoint') continue;
          const s = subjectOf(b);
          const details = b.kind === 'admin' ? JSON.stringify(b.details) : '';
          if (spiffeId !== undefined && s.spiffeId !== spiffeId && !details.includes(`"${spiffeId}"`)) continue;
          if (serial !== undefined && s.serial.replace(/^0+/, '') !== serial.replace(/^0+/, '') && !details.includes(`"serial":"${serial}"`)) continue;
          if (o.entryId !== undefined && s.entryId !== o.entryId && !details.includes(`"${o.entryId}"`)) continue;
          if (since !== undefined && b.time < since) continue;
          if (until !== undefined && b.time >= until) continue;
          hits.push({ seq: r.seq, record: b });
        }
        const rows = hits.map(({ seq, record }) => {
          const s = subjectOf(record);
          const what =
            record.kind === 'admin'
              ? record.method
              : record.kind === 'authority'
                ? `${record.authority} ${record.step}`
                : record.kind === 'svid.delivered'
                  ? `${record.svidType} delivered to pid ${record.pid} uid ${record.uid} gid ${record.gid}`
                  : record.kind === 'svid.deliveries-lost'
                    ? `${record.atLeast === true ? 'at least ' : ''}${record.count} deliveries lost (${record.reason})`
                    : record.kind;
          return [String(seq), new Date(record.time).toISOString(), what, s.spiffeId, s.serial, s.entryId, s.agentId || record.actor.id, s.notAfter === undefined ? '' : new Date(s.notAfter * 1000).toISOString()];
        });
        const table = (): string => tableText(['Seq', 'Time', 'Event', 'SPIFFE ID', 'Serial', 'Entry ID', 'Agent / actor', 'Not after'], rows);
        emit(ctx.io, ctx.format, { json: { records: hits }, text: () => (hits.length === 0 ? 'No matching audit records\n' : table()), table });
      });
    });

  clientCommand(audit.command('export').description('every record as JSON lines (seq, prev_hash, hash, record), for a SIEM'))
    .option('--after <seq>', 'only records after this one (resume an export)')
    .action(async (_o: unknown, cmd: Command) => {
      const after = integerArg(cmd.opts<{ after?: string }>().after, '-after') ?? 0;
      await withServer(cmd, async (ctx) => {
        for await (const r of records(ctx, after)) {
          ctx.io.out(`${JSON.stringify({ seq: r.seq, prev_hash: r.prevHash, hash: r.hash, record: decodeRecordBody(r.body) ?? r.body })}\n`);
        }
      });
    });
}
