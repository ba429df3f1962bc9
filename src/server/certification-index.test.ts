/**
 * server/certification's index, with a hand-written ledger and a held clock: the baseline
 * for entries older than certification, records applied in any order, records written by
 * another server picked up by the sweep, and an exemption ended by the next certification.
 */
import { describe, expect, it } from 'vitest';
import { encodeRecordBody, type AuditActor, type AuditEvent } from '../audit/record.js';
import type { RegistrationEntry } from '../registration/entry.js';
import { EntryCertifications, type CertificationLedger } from './certification.js';
import { SILENT_LOGGER } from './ports.js';

const DAY = 86_400;

class FakeLedger implements CertificationLedger {
  readonly rows: { seq: number; body: string }[] = [];
  constructor(private readonly clock: () => number) {}
  async record(actor: AuditActor, event: AuditEvent): Promise<void> {
    this.append(actor, event, this.clock());
  }
  append(actor: AuditActor, event: AuditEvent, timeMs: number): void {
    this.rows.push({ seq: this.rows.length + 1, body: encodeRecordBody({ v: 1, time: timeMs, server: 's', actor, ...event }) });
  }
  async listAuditRecords(q: { afterSeq?: number; limit?: number }): Promise<{ seq: number; body: string }[]> {
    return this.rows.filter((r) => r.seq > (q.afterSeq ?? 0)).slice(0, q.limit ?? 1000);
  }
}

const entry = (id: string, createdAt: number): RegistrationEntry => ({ entryId: id, spiffeId: `spiffe://td/${id}`, parentId: 'spiffe://td/p', owner: 'team-a', createdAt }) as RegistrationEntry;
const admin: AuditActor = { kind: 'admin', id: 'admin-socket' };

describe('EntryCertifications', () => {
  it('starts old entries’ clocks when certification was enabled, and follows records from other servers in any order', async () => {
    let now = 1000 * DAY;
    const ledger = new FakeLedger(() => now * 1000);
    const entries = [entry('old', 10 * DAY), entry('new', 1000 * DAY + 5)];
    let changes = 0;
    const c = new EntryCertifications({
      settings: { intervalSeconds: 90 * DAY, graceSeconds: 14 * DAY },
      ledger,
      entries: { listEntries: async () => ({ items: entries, nextPageToken: '' }) },
      logger: SILENT_LOGGER,
      now: () => new Date(now * 1000),
      onLapsedChanged: () => void changes++,
    });
    await c.start({ sweepEveryMs: 0 });
    expect(ledger.rows.filter((r) => r.body.includes('certification.enabled'))).toHaveLength(1);
    // Created 990 days ago, but certification only started now: a full interval.
    expect(c.status(entries[0]!)).toMatchObject({ state: 'current', dueAt: now + 90 * DAY, lapsesAt: now + 104 * DAY });
    now += 100 * DAY;
    expect(c.status(entries[0]!).state).toBe('due');
    now += 5 * DAY;
    expect(c.refusal(entries[0]!)).toContain('never certified');
    expect((await c.sweep()).lapsed).toBe(2);
    expect(changes).toBe(1);

    // Another server certified 'old' (newer), and an older record arrives after it in seq order.
    ledger.append(admin, { kind: 'entry.certified', entryId: 'old', spiffeId: 'spiffe://td/old', owner: 'team-a', note: '', exempt: false }, (now - 1) * 1000);
    ledger.append(admin, { kind: 'entry.certified', entryId: 'old', spiffeId: 'spiffe://td/old', owner: 'team-a', note: '', exempt: false }, (now - 50 * DAY) * 1000);
    expect((await c.sweep()).lapsed).toBe(1);
    expect(c.status(entries[0]!)).toMatchObject({ state: 'current', certifiedAt: now - 1 });
    expect(changes).toBe(2);

    // Break-glass, then the owner's certification ends the exemption.
    await c.certify(admin, entries[1]!, { owner: '', note: 'INC-1', exempt: true });
    expect(c.status(entries[1]!).state).toBe('exempt');
    expect(c.refusal(entries[1]!)).toBeUndefined();
    now += 10;
    await c.certify(admin, entries[1]!, { owner: 'team-a', note: '', exempt: false });
    expect(c.status(entries[1]!)).toMatchObject({ state: 'current', certifiedAt: now });
    c.stop();
  });

  it('refuses nonsensical settings', () => {
    const base = { ledger: new FakeLedger(() => 0), entries: { listEntries: async () => ({ items: [], nextPageToken: '' }) }, logger: SILENT_LOGGER, now: () => new Date() };
    expect(() => new EntryCertifications({ ...base, settings: { intervalSeconds: 0, graceSeconds: 0 } })).toThrow(TypeError);
    expect(() => new EntryCertifications({ ...base, settings: { intervalSeconds: 10, graceSeconds: -1 } })).toThrow(TypeError);
  });
});
