/**
 * @module audit/checkpoint
 *
 * Signed checkpoints: every so often the ledger appends a record holding a JWT-SVID, minted
 * by the server's JWT authority for the server's own SPIFFE ID, whose single audience is
 * `mayfly-audit:<seq>:<hash>` — the record right before it. A standard JWT-SVID, so any
 * holder of the trust bundle can check who vouched for which head.
 *
 * Threat: an attacker with write access to the datastore but not to the server's keys who
 * rewrites the ledger from some record on and recomputes every hash after it. The chain then
 * links again, but the rewritten heads no longer match any signature: the checkpoints either
 * fail to verify or vouch for hashes that are no longer there.
 */
import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { cryptoOptions, keyFitsAlgorithm } from '../spiffe/jwt/algorithms.js';
import { decodeJwtSvid } from '../spiffe/jwt/decode.js';

const PREFIX = 'mayfly-audit:';

/** The audience naming a chain head. */
export function checkpointAudience(head: { seq: number; hash: string }): string {
  return `${PREFIX}${head.seq}:${head.hash}`;
}

export type CheckpointVerdict =
  | { ok: true; keyId: string; signer: string; issuedAt: number | undefined }
  | { ok: false; keyId?: string; reason: string };

/**
 * Checks a checkpoint token: well formed, its audience names `head`, signed by `keys.get(kid)`.
 * Expiry is not checked: a checkpoint vouches for the past, and its token is short-lived by design.
 */
export function verifyCheckpoint(token: string, head: { seq: number; hash: string }, keys: ReadonlyMap<string, KeyObject>, signerId: string): CheckpointVerdict {
  let d: ReturnType<typeof decodeJwtSvid>;
  try {
    d = decodeJwtSvid(token);
  } catch (err) {
    return { ok: false, reason: `its token is not a JWT-SVID: ${(err as Error).message}` };
  }
  const aud = d.claims.aud;
  const audience = Array.isArray(aud) ? aud : [aud];
  if (audience.length !== 1 || audience[0] !== checkpointAudience(head)) {
    return { ok: false, keyId: d.kid, reason: `it vouches for ${String(audience[0]).slice(0, 100)}, not for record ${head.seq} (${head.hash.slice(0, 12)}…)` };
  }
  if (d.spiffeId.toString() !== signerId) return { ok: false, keyId: d.kid, reason: `it is signed for ${d.spiffeId.toString()}, not the server ${signerId}` };
  const key = keys.get(d.kid);
  if (key === undefined) return { ok: false, keyId: d.kid, reason: `it is signed by key ${d.kid}, which is neither in the trust bundle nor introduced earlier in the ledger` };
  if (!keyFitsAlgorithm(key, d.spec)) return { ok: false, keyId: d.kid, reason: `key ${d.kid} does not fit alg ${d.spec.alg}` };
  const good = cryptoVerify(d.spec.hash, Buffer.from(d.signingInput, 'ascii'), cryptoOptions(d.spec, key), d.signature);
  if (!good) return { ok: false, keyId: d.kid, reason: `its signature does not verify with key ${d.kid} (forged or altered)` };
  const iat = d.claims.iat;
  return { ok: true, keyId: d.kid, signer: d.spiffeId.toString(), issuedAt: typeof iat === 'number' ? iat : undefined };
}
