import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openLevelDatastore, type LevelDatastore } from '../datastore/level/level.js';
import { isMayflyError } from '../spiffe/errors.js';
import { SpiffeId } from '../spiffe/id.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { JwtSvidSigner } from '../spiffe/jwt/signer.js';
import { AuditLedger, type AuditStore, type CheckpointSigner } from './ledger.js';
import { auditLink, decodeRecordBody, encodeRecordBody, type AuditRecord } from './record.js';
import { verifyAuditChain } from './verify.js';

const SERVER_ID = 'spiffe://example.org/spire/server';
const ADMIN = { kind: 'admin', id: 'uid:0' } as const;

function signerWith(kid: string): { signer: CheckpointSigner; keys: Map<string, import('node:crypto').KeyObject> } {
  const pair = generateKeyPair();
  const jwt = new JwtSvidSigner({ privateKey: pair.privateKey, kid });
  return {
    signer: { signCheckpoint: (aud) => ({ token: jwt.mint({ spiffeId: SpiffeId.parse(SERVER_ID), audience: [aud], ttlSeconds: 60 }) }) },
    keys: new Map([[kid, pair.publicKey]]),
  };
}

const issued = (n: number) => ({ kind: 'x509-svid.issued' as const, serial: n.toString(16), spiffeId: `spiffe://example.org/w/${n}`, notAfter: 2_000_000_000 });

async function all(ds: LevelDatastore): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for (;;) {
    const page = await ds.listAuditRecords({ afterSeq: out.at(-1)?.seq ?? 0, limit: 1000 });
    if (page.length === 0) return out;
    out.push(...page);
  }
}

/** Re-links `rows` from index `from` on (what an attacker with datastore access but no key does). */
function relink(rows: AuditRecord[], from: number): AuditRecord[] {
  const out = rows.slice(0, from);
  for (const r of rows.slice(from)) {
    const prevHash = out.at(-1)?.hash ?? '';
    const seq = (out.at(-1)?.seq ?? 0) + 1;
    out.push({ seq, prevHash, body: r.body, hash: auditLink(seq, prevHash, r.body) });
  }
  return out;
}

describe('AuditLedger on a real LevelDB store', () => {
  let dir: string;
  let ds: LevelDatastore;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mayfly-audit-'));
    ds = await openLevelDatastore({ path: join(dir, 'data') });
  });
  afterEach(async () => {
    await ds.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('group-commits concurrent records into few writes, checkpoints every N, and the chain verifies', async () => {
    const { signer, keys } = signerWith('k1');
    let writes = 0;
    const ledger = new AuditLedger({ store: ds, signer, serverInstance: 's1', checkpointEvery: 50, onWritten: () => void writes++ });
    await Promise.all(Array.from({ length: 200 }, (_, i) => ledger.record(ADMIN, issued(i))));
    await ledger.stop();
    const rows = await all(ds);
    const bodies = rows.map((r) => decodeRecordBody(r.body)!);
    expect(bodies.filter((b) => b.kind === 'x509-svid.issued')).toHaveLength(200);
    const checkpoints = bodies.filter((b) => b.kind === 'checkpoint').length;
    // At least one checkpoint per 50 records: the head is never more than 50 records unsigned.
    expect(checkpoints).toBeGreaterThanOrEqual(4);
    let unsigned = 0;
    for (const b of bodies) {
      unsigned = b.kind === 'checkpoint' ? 0 : unsigned + 1;
      expect(unsigned).toBeLessThanOrEqual(50);
    }
    // 200 records arrived together: far fewer writes than records.
    expect(writes - checkpoints).toBeLessThan(50);
    const v = await verifyAuditChain({ records: rows, trustedKeys: keys, signerId: SERVER_ID });
    expect(v).toMatchObject({ ok: true, records: rows.length, checkpoints, unsignedTail: 0 });
  });

  it('fails closed: when the store refuses, every waiting record rejects with ERR_AUDIT_UNAVAILABLE', async () => {
    const { signer } = signerWith('k1');
    const broken: AuditStore = {
      appendAuditRecords: () => Promise.reject(new Error('disk full')),
      lastAuditRecord: () => Promise.resolve(undefined),
    };
    const ledger = new AuditLedger({ store: broken, signer, serverInstance: 's1' });
    const results = await Promise.allSettled([ledger.record(ADMIN, issued(1)), ledger.record(ADMIN, issued(2))]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const err = (r as PromiseRejectedResult).reason as Error;
      expect(isMayflyError(err, 'ERR_AUDIT_UNAVAILABLE')).toBe(true);
      expect(err.message).toContain('disk full');
    }
  });

  describe('verification catches each kind of tampering, naming the first bad record', () => {
    let rows: AuditRecord[];
    let keys: Map<string, import('node:crypto').KeyObject>;
    beforeEach(async () => {
      const s = signerWith('k1');
      keys = s.keys;
      const ledger = new AuditLedger({ store: ds, signer: s.signer, serverInstance: 's1', checkpointEvery: 5 });
      for (let i = 0; i < 12; i++) await ledger.record(ADMIN, issued(i));
      await ledger.stop();
      rows = await all(ds);
      expect((await verifyAuditChain({ records: rows, trustedKeys: keys, signerId: SERVER_ID })).ok).toBe(true);
    });
    const verdict = (records: AuditRecord[]) => verifyAuditChain({ records, trustedKeys: keys, signerId: SERVER_ID });

    it('an edited record', async () => {
      const edited = rows.map((r) => (r.seq === 3 ? { ...r, body: r.body.replace('"serial":"2"', '"serial":"ff"') } : r));
      expect((await verdict(edited)).problem).toEqual({ seq: 3, reason: 'its hash does not match its content (edited)' });
    });

    it('a deleted record', async () => {
      expect((await verdict(rows.filter((r) => r.seq !== 4))).problem).toMatchObject({ seq: 4, reason: expect.stringContaining('missing') });
    });

    it('two records swapped', async () => {
      const swapped = [...rows];
      [swapped[2], swapped[3]] = [swapped[3]!, swapped[2]!];
      expect((await verdict(swapped)).problem).toEqual({ seq: 3, reason: 'record 3 is missing here (deleted or moved)' });
      // Swapped with their seqs kept, the links break instead.
      const relabeled = swapped.map((r, i) => ({ ...r, seq: i + 1 }));
      expect((await verdict(relabeled)).problem?.seq).toBe(3);
    });

    it('an inserted record', async () => {
      const fake = encodeRecordBody({ v: 1, time: 1, server: 's1', actor: ADMIN, ...issued(999) });
      const inserted = [...rows.slice(0, 2), { seq: 3, prevHash: rows[1]!.hash, hash: auditLink(3, rows[1]!.hash, fake), body: fake }, ...rows.slice(2)];
      expect((await verdict(inserted)).problem?.seq).toBe(3);
    });

    it('a rewritten tail with every hash recomputed (the checkpoint no longer vouches for it)', async () => {
      const rewritten = relink([...rows.slice(0, 2), ...rows.slice(3)], 2);
      const v = await verdict(rewritten);
      expect(v.ok).toBe(false);
      expect(v.problem?.reason).toContain('checkpoint');
    });

    it('a checkpoint with a forged signature, and one by a key nobody trusts', async () => {
      const cp = rows.find((r) => decodeRecordBody(r.body)!.kind === 'checkpoint')!;
      const body = JSON.parse(cp.body) as { token: string };
      const parts = body.token.split('.');
      const sig = Buffer.from(parts[2]!, 'base64url');
      sig[5] = sig[5]! ^ 0xff;
      const forgedBody = JSON.stringify({ ...JSON.parse(cp.body), token: `${parts[0]}.${parts[1]}.${sig.toString('base64url')}` });
      const forged = relink(rows.map((r) => (r.seq === cp.seq ? { ...r, body: forgedBody } : r)), cp.seq - 1);
      expect((await verdict(forged)).problem).toMatchObject({ seq: cp.seq, reason: expect.stringContaining('signature does not verify') });

      const v = await verifyAuditChain({ records: rows, trustedKeys: signerWith('k1').keys, signerId: SERVER_ID });
      expect(v.problem?.reason).toContain('signature does not verify');
      const none = await verifyAuditChain({ records: rows, trustedKeys: new Map(), signerId: SERVER_ID });
      expect(none.problem?.reason).toContain('neither in the trust bundle');
    });

    it('verifies from a checkpoint after pruning, and refuses a start that is not one', async () => {
      const cp = rows.filter((r) => decodeRecordBody(r.body)!.kind === 'checkpoint')[1]!;
      expect((await verdict(rows.filter((r) => r.seq >= cp.seq))).ok).toBe(true);
      expect((await verdict(rows.filter((r) => r.seq > cp.seq))).problem?.reason).toContain('not a checkpoint');
    });
  });

  it('a signed-checkpoint test cannot pass on a broken link function', () => {
    expect(auditLink(1, '', 'x')).toBe(createHash('sha256').update('mayfly-audit-v1\n1\n\nx').digest('hex'));
  });
});
