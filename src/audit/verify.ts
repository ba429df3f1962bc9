/**
 * @module audit/verify
 *
 * Proves a ledger unbroken: every record sits at the next position, links to the one before,
 * hashes to what is stored, parses, and every checkpoint's signature vouches for the record
 * before it. The first problem found is named by its seq.
 *
 * Threat: tampering by whoever can write the datastore (see record.ts and checkpoint.ts).
 * Keys are trusted from outside the ledger (the trust bundle the caller fetched or pinned);
 * keys the ledger itself introduces (a server's start, a JWT authority's preparation) are
 * used only for checkpoints that a later checkpoint signed by a trusted key covers, so a
 * rewritten tail cannot bring its own key.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { decodeJwtSvid } from '../spiffe/jwt/decode.js';
import { verifyCheckpoint } from './checkpoint.js';
import { auditLink, decodeRecordBody, type AuditRecord } from './record.js';

export interface VerifyAuditChainInput {
  /** The records in ascending seq order, from the first kept (or from a checkpoint). */
  readonly records: AsyncIterable<AuditRecord> | Iterable<AuditRecord>;
  /** JWT authority keys trusted from outside the ledger (the trust domain's bundle), by kid. */
  readonly trustedKeys: ReadonlyMap<string, KeyObject>;
  /** The SPIFFE ID checkpoints are signed for (`spiffe://<td>/spire/server`). */
  readonly signerId: string;
}

export interface AuditVerification {
  readonly ok: boolean;
  readonly records: number;
  readonly firstSeq: number | undefined;
  readonly lastSeq: number | undefined;
  readonly checkpoints: number;
  readonly lastCheckpointSeq: number | undefined;
  /** Records after the last checkpoint: linked, but no signature vouches for them yet. */
  readonly unsignedTail: number;
  /** The first record that fails, and why. */
  readonly problem?: { readonly seq: number; readonly reason: string };
}

function jwkKey(jwk: unknown): KeyObject | undefined {
  try {
    return createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  } catch {
    return undefined;
  }
}

function kidOf(token: string): string | undefined {
  try {
    return decodeJwtSvid(token).kid;
  } catch {
    return undefined;
  }
}

export async function verifyAuditChain(input: VerifyAuditChainInput): Promise<AuditVerification> {
  const known = new Map(input.trustedKeys);
  let count = 0;
  let firstSeq: number | undefined;
  let prev: AuditRecord | undefined;
  let checkpoints = 0;
  let lastCheckpoint: { seq: number; keyId: string } | undefined;
  const result = (problem?: { seq: number; reason: string }): AuditVerification => ({
    ok: problem === undefined,
    records: count,
    firstSeq,
    lastSeq: prev?.seq,
    checkpoints,
    lastCheckpointSeq: lastCheckpoint?.seq,
    unsignedTail: prev === undefined ? 0 : prev.seq - (lastCheckpoint?.seq ?? (firstSeq ?? 1) - 1),
    ...(problem !== undefined ? { problem } : {}),
  });

  for await (const r of input.records) {
    const bad = (reason: string): AuditVerification => result({ seq: r.seq, reason });
    if (prev === undefined) {
      firstSeq = r.seq;
      if (r.seq === 1) {
        if (r.prevHash !== '') return bad('the first record links to a predecessor; the start of the ledger was replaced');
      }
    } else {
      if (r.seq <= prev.seq) return bad(`it comes after record ${prev.seq} (reordered or duplicated)`);
      if (r.seq !== prev.seq + 1) return result({ seq: prev.seq + 1, reason: `record ${prev.seq + 1} is missing here (deleted or moved)` });
      if (r.prevHash !== prev.hash) return bad(`it does not link to record ${prev.seq} (a record before it was edited, deleted, inserted or reordered)`);
    }
    if (auditLink(r.seq, r.prevHash, r.body) !== r.hash) return bad('its hash does not match its content (edited)');
    const body = decodeRecordBody(r.body);
    if (body === undefined) return bad('its content is not an audit record');
    if (prev === undefined && r.seq !== 1 && body.kind !== 'checkpoint') {
      return bad(`the ledger starts at record ${r.seq}, which is not a checkpoint: earlier records were removed without a signed anchor`);
    }
    count += 1;
    if (body.kind === 'server.started') {
      for (const [kid, jwk] of Object.entries(body.jwtKeys)) {
        const k = jwkKey(jwk);
        if (k !== undefined && !known.has(kid)) known.set(kid, k);
      }
    } else if (body.kind === 'authority' && body.publicJwk !== undefined) {
      const k = jwkKey(body.publicJwk);
      if (k !== undefined && !known.has(body.authorityId)) known.set(body.authorityId, k);
    } else if (body.kind === 'checkpoint') {
      if (body.head.seq !== r.seq - 1 || body.head.hash !== r.prevHash) return bad('the checkpoint names a head other than the record before it');
      if (body.publicJwk !== undefined) {
        const kid = kidOf(body.token);
        const k = jwkKey(body.publicJwk);
        if (kid !== undefined && k !== undefined && !known.has(kid)) known.set(kid, k);
      }
      const v = verifyCheckpoint(body.token, body.head, known, input.signerId);
      if (!v.ok) return bad(`checkpoint: ${v.reason}`);
      checkpoints += 1;
      lastCheckpoint = { seq: r.seq, keyId: v.keyId };
    }
    prev = r;
  }
  if (lastCheckpoint !== undefined && !input.trustedKeys.has(lastCheckpoint.keyId)) {
    return result({
      seq: lastCheckpoint.seq,
      reason: `the newest checkpoint is signed by key ${lastCheckpoint.keyId}, which the ledger introduced but the trust bundle does not hold: nothing outside the ledger vouches for it`,
    });
  }
  return result();
}
