/**
 * @module datastore/bundle-merge
 *
 * The read-modify-write of `Datastore.mergeBundle`, as a pure function both stores run
 * inside their own serialisation (LevelDB's write queue, a PostgreSQL row lock): add
 * authorities to a trust domain's stored bundle (SPIRE's `AppendBundle`), remove named
 * ones (a revoke), and drop expired ones (SPIRE's `PruneBundle`).
 *
 * The stored text stays a SPIFFE bundle document. Two members of our own ride on its keys
 * (RFC 7517 §4 lets a JWK carry more members; bundle parsers ignore them):
 * `mayfly_not_after` (unix seconds: when the authority may be pruned; a JWK has no expiry
 * of its own), `mayfly_tainted` (an operator tainted it, as SPIRE's `tainted_key`) and
 * `mayfly_owners` (the servers that publish it, see `BundleMerge.owner`).
 *
 * Threats it stops:
 * - a lost authority: concurrent merges from several servers would each write back what
 *   they read; run under the store's serialisation, every merge starts from the last one.
 * - trusting more than intended: every added key and the merged document are parsed as a
 *   SPIFFE bundle of the trust domain (certificate and key checks, no private members,
 *   no duplicate key IDs) before anything is written; a key ID already naming a different
 *   key is `ERR_DATASTORE_CONFLICT`, never a silent replacement.
 * - an unbounded bundle: the merged text keeps the 4 MiB limit of `setBundle`.
 * - pruning a trust domain to nothing: as SPIRE, expired X.509 authorities are kept when
 *   pruning would remove every one of them; the same holds for an owner's removal.
 * - a revoked authority outliving a crash: a server killed after its CA revoked an
 *   authority but before its removal was written cannot name it after a restart; a merge
 *   with an owner states the owner's complete set, so whatever the owner tagged earlier and
 *   no longer publishes goes in the same write, while other owners' and untagged keys stay.
 */
import { TrustDomain } from '../spiffe/id.js';
import { isMayflyError } from '../spiffe/errors.js';
import { parseBundle, MAX_BUNDLE_KEYS } from '../spiffe/bundle/parse.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import type { BundleMerge, StoredBundle } from './datastore.js';
import { checkTime, checkTrustDomainArg, DatastoreError, invalid, MAX_BUNDLE_BYTES } from './records.js';

/** Public JWK members copied from an added key; anything else is dropped. */
const JWK_MEMBERS = ['kty', 'use', 'kid', 'crv', 'x', 'y', 'n', 'e', 'x5c'] as const;

/** What an owner ID may be: short, printable, no JSON or path surprises. */
const OWNER_RE = /^[A-Za-z0-9._:-]{1,128}$/;

type StoredKey = Record<string, unknown>;

/** The identity of a stored key: `x509:<base64 DER>`, `jwt:<kid>`, or undefined for a key of another `use`. */
function keyIdentity(k: StoredKey): string | undefined {
  if (k.use === 'x509-svid' && Array.isArray(k.x5c) && typeof k.x5c[0] === 'string') return `x509:${Buffer.from(k.x5c[0], 'base64').toString('base64')}`;
  if (k.use === 'jwt-svid' && typeof k.kid === 'string') return `jwt:${k.kid}`;
  return undefined;
}

/** When a stored key may be pruned: its own mark, else (X.509) its certificate's NotAfter, else never. */
function notAfterOf(k: StoredKey): number | undefined {
  if (typeof k.mayfly_not_after === 'number') return k.mayfly_not_after;
  if (k.use === 'x509-svid' && Array.isArray(k.x5c) && typeof k.x5c[0] === 'string') {
    return Math.floor(parseCertificate(Buffer.from(k.x5c[0], 'base64')).notAfter.getTime() / 1000);
  }
  return undefined;
}

/** The owners a stored key names (malformed entries ignored: an untagged key has none). */
function ownersOf(k: StoredKey): string[] {
  return Array.isArray(k.mayfly_owners) ? k.mayfly_owners.filter((o): o is string => typeof o === 'string') : [];
}

/** The stored form of an updated key, members in one order, so an unchanged merge compares equal. */
function canonical(k: StoredKey): StoredKey {
  const out: StoredKey = {};
  for (const m of [...JWK_MEMBERS, 'mayfly_not_after', 'mayfly_tainted', 'mayfly_owners']) if (k[m] !== undefined) out[m] = k[m];
  return out;
}

function sameKeyMaterial(a: StoredKey, b: StoredKey): boolean {
  return ['kty', 'crv', 'x', 'y', 'n', 'e'].every((m) => a[m] === b[m]);
}

/** Checks a merge request; returns the keys to add in stored form and the identities to remove. */
export function checkBundleMerge(m: BundleMerge): { trustDomain: TrustDomain; add: StoredKey[]; remove: Set<string>; owner: string | undefined } {
  if (typeof m !== 'object' || m === null) throw new TypeError('mergeBundle needs an object');
  const trustDomain = TrustDomain.parse(checkTrustDomainArg(m.trustDomain, 'bundle trustDomain'));
  const add = m.add ?? [];
  const remove = m.remove ?? [];
  if (!Array.isArray(add) || add.length > MAX_BUNDLE_KEYS) throw invalid(`add must be an array of at most ${MAX_BUNDLE_KEYS} authorities`);
  if (!Array.isArray(remove) || remove.length > MAX_BUNDLE_KEYS) throw invalid(`remove must be an array of at most ${MAX_BUNDLE_KEYS} authorities`);
  if (m.pruneExpiredBefore !== undefined) checkTime(m.pruneExpiredBefore, 'pruneExpiredBefore');
  if (m.minSequence !== undefined && (typeof m.minSequence !== 'number' || !Number.isSafeInteger(m.minSequence) || m.minSequence < 0)) {
    throw invalid('minSequence must be a non-negative integer');
  }
  if (m.refreshHintSeconds !== undefined && (typeof m.refreshHintSeconds !== 'number' || !Number.isSafeInteger(m.refreshHintSeconds) || m.refreshHintSeconds < 0)) {
    throw invalid('refreshHintSeconds must be a non-negative integer');
  }
  if (m.owner !== undefined && (typeof m.owner !== 'string' || !OWNER_RE.test(m.owner))) {
    throw invalid('owner must be 1 to 128 characters of A-Z a-z 0-9 . _ : -');
  }
  const added: StoredKey[] = [];
  add.forEach((a, i) => {
    if (typeof a !== 'object' || a === null || typeof a.jwk !== 'object' || a.jwk === null) throw invalid(`add[${i}] must be { jwk, notAfter?, tainted? }`);
    const jwk = a.jwk as unknown as StoredKey;
    if (jwk.use !== 'x509-svid' && jwk.use !== 'jwt-svid') throw invalid(`add[${i}].jwk.use must be "x509-svid" or "jwt-svid"`);
    try {
      // The same checks as any bundle we accept: certificate and key parameters agree, no private members.
      const parsed = parseBundle(JSON.stringify({ keys: [jwk] }), trustDomain);
      if (parsed.x509Authorities.length + parsed.jwtAuthorities.size !== 1) throw invalid(`add[${i}].jwk is a key type a bundle cannot carry`);
    } catch (err) {
      if (isMayflyError(err, 'ERR_DATASTORE_INVALID')) throw err;
      throw invalid(`add[${i}].jwk is not a valid SPIFFE bundle key: ${(err as Error).message}`);
    }
    const k: StoredKey = {};
    for (const member of JWK_MEMBERS) if (jwk[member] !== undefined) k[member] = member === 'x5c' ? [...(jwk.x5c as string[])] : jwk[member];
    if (a.notAfter !== undefined) k.mayfly_not_after = checkTime(a.notAfter, `add[${i}].notAfter`);
    if (a.tainted !== undefined && typeof a.tainted !== 'boolean') throw invalid(`add[${i}].tainted must be a boolean`);
    if (a.tainted === true) k.mayfly_tainted = true;
    if (m.owner !== undefined) k.mayfly_owners = [m.owner];
    added.push(k);
  });
  const removed = new Set<string>();
  remove.forEach((r, i) => {
    const ref = r as { x509?: unknown; jwtKid?: unknown } | null;
    if (typeof ref === 'object' && ref !== null && typeof ref.x509 === 'string' && ref.x509 !== '' && ref.jwtKid === undefined) {
      removed.add(`x509:${Buffer.from(ref.x509, 'base64').toString('base64')}`);
    } else if (typeof ref === 'object' && ref !== null && typeof ref.jwtKid === 'string' && ref.jwtKid !== '' && ref.x509 === undefined) {
      removed.add(`jwt:${ref.jwtKid}`);
    } else {
      throw invalid(`remove[${i}] must be { x509: <base64 DER certificate> } or { jwtKid: <key ID> }`);
    }
  });
  return { trustDomain, add: added, remove: removed, owner: m.owner };
}

/**
 * Applies a checked merge to the stored bundle (undefined: none yet). Returns the record to
 * write, or undefined when nothing changes (or there is nothing to create).
 */
export function applyBundleMerge(
  existing: StoredBundle | undefined,
  m: BundleMerge,
  checked: ReturnType<typeof checkBundleMerge>,
  nowSeconds: number,
): StoredBundle | undefined {
  let doc: { keys: StoredKey[]; [k: string]: unknown } = { keys: [] };
  if (existing !== undefined) {
    try {
      parseBundle(existing.bundle, checked.trustDomain, { maxBytes: MAX_BUNDLE_BYTES });
      doc = JSON.parse(existing.bundle) as typeof doc;
    } catch (err) {
      throw new DatastoreError(
        'ERR_DATASTORE_INVALID',
        `the stored bundle of ${checked.trustDomain.name} is not a valid SPIFFE bundle (${(err as Error).message}); replace it with setBundle before merging into it`,
        { cause: err },
      );
    }
  }
  const before = JSON.stringify({ keys: doc.keys, hint: doc.spiffe_refresh_hint });
  let keys = doc.keys.filter((k) => {
    const id = keyIdentity(k);
    return id === undefined || !checked.remove.has(id);
  });
  for (const k of checked.add) {
    const id = keyIdentity(k) as string;
    const at = keys.findIndex((s) => keyIdentity(s) === id);
    if (at < 0) {
      keys.push(k);
      continue;
    }
    const stored = keys[at] as StoredKey;
    if (!sameKeyMaterial(stored, k)) {
      throw new DatastoreError('ERR_DATASTORE_CONFLICT', `the bundle of ${checked.trustDomain.name} already holds a different key with key ID ${JSON.stringify(k.kid)}; a key ID names one key`);
    }
    // A taint is never lifted by a merge (SPIRE has no untaint); the newest expiry wins;
    // owners accumulate (several servers may publish one key, e.g. a shared upstream root).
    const next: StoredKey = { ...k };
    if (stored.mayfly_tainted === true) next.mayfly_tainted = true;
    if (next.mayfly_not_after === undefined && stored.mayfly_not_after !== undefined) next.mayfly_not_after = stored.mayfly_not_after;
    const owners = [...new Set([...ownersOf(stored), ...ownersOf(k)])].sort();
    next.mayfly_owners = owners.length > 0 ? owners : undefined;
    keys[at] = canonical(next);
  }
  if (checked.owner !== undefined) {
    // `add` is the owner's complete set: its tag comes off every other key it tagged before.
    const owner = checked.owner;
    const published = new Set(checked.add.map(keyIdentity));
    const stale = (k: StoredKey): boolean => !published.has(keyIdentity(k)) && ownersOf(k).includes(owner);
    const goes = (k: StoredKey): boolean => stale(k) && ownersOf(k).length === 1;
    // Never every X.509 authority (as pruning): then the owner's stale ones stay, still tagged.
    const keepX509 = keys.some((k) => k.use === 'x509-svid') && keys.every((k) => k.use !== 'x509-svid' || goes(k));
    keys = keys.flatMap((k) => {
      if (!stale(k)) return [k];
      if (!goes(k)) return [{ ...k, mayfly_owners: ownersOf(k).filter((o) => o !== owner) }];
      return keepX509 && k.use === 'x509-svid' ? [k] : [];
    });
  }
  if (m.pruneExpiredBefore !== undefined) {
    const cutoff = m.pruneExpiredBefore;
    const expired = (k: StoredKey): boolean => {
      const n = notAfterOf(k);
      return n !== undefined && n < cutoff;
    };
    const x509Left = keys.filter((k) => k.use === 'x509-svid' && !expired(k)).length;
    const anyX509 = keys.some((k) => k.use === 'x509-svid');
    keys = keys.filter((k) => !expired(k) || (k.use === 'x509-svid' && anyX509 && x509Left === 0));
  }
  const hint = m.refreshHintSeconds ?? doc.spiffe_refresh_hint;
  if (existing === undefined && keys.length === 0) return undefined;
  if (existing !== undefined && JSON.stringify({ keys, hint }) === before) return undefined;
  const sequence = Math.max(existing === undefined ? 1 : existing.sequence + 1, m.minSequence ?? 0);
  const out: Record<string, unknown> = { ...doc, keys, spiffe_sequence: sequence };
  if (hint !== undefined) out.spiffe_refresh_hint = hint;
  const text = JSON.stringify(out);
  if (Buffer.byteLength(text, 'utf8') > MAX_BUNDLE_BYTES) throw invalid(`the merged bundle of ${checked.trustDomain.name} would be larger than ${MAX_BUNDLE_BYTES} bytes`);
  try {
    parseBundle(text, checked.trustDomain, { maxBytes: MAX_BUNDLE_BYTES });
  } catch (err) {
    throw invalid(`the merged bundle of ${checked.trustDomain.name} is not a valid SPIFFE bundle: ${(err as Error).message}`);
  }
  return { trustDomain: checked.trustDomain.name, bundle: text, sequence, updatedAt: nowSeconds };
}

