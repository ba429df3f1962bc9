/**
 * @module agent/x509-accept
 *
 * The checks an X509-SVID returned by the server must pass before the agent's cache keeps
 * it for an entry, and the cached form it then takes.
 *
 * Threat it stops: a buggy or hostile server answer handing a workload an identity it is
 * not entitled to, or an SVID relying parties will refuse. The leaf's only URI SAN must be
 * the entry's SPIFFE ID, it must certify the key this agent generated for that entry, and
 * the chain must verify against the current bundle.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { RegistrationEntry } from '../registration/entry.js';
import { exportPkcs8Der } from '../spiffe/keys.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { renewalTime } from './clock.js';

/** One X509-SVID held for one entry. */
export interface CachedX509Svid {
  readonly entryId: string;
  readonly spiffeId: string;
  /** Sorted DNS names it was requested with (a changed entry needs a new SVID). */
  readonly dnsKey: string;
  readonly certChain: readonly Buffer[];
  readonly privateKeyPkcs8: Buffer;
  readonly serialHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly renewAt: Date;
  /** Its chain no longer verifies against the current bundle: re-issue now. */
  stale: boolean;
}

export function dnsKeyOf(e: RegistrationEntry): string {
  return [...e.dnsNames].sort().join(',');
}

/**
 * The SVID to cache for `entry`, or `{ rejected: why }`. `verifies` judges the chain
 * against the current bundle; `random` jitters the renewal time.
 */
export function acceptX509Svid(
  entry: RegistrationEntry,
  chain: readonly Buffer[],
  key: KeyObject,
  ctx: { verifies: (chain: readonly Buffer[]) => boolean; random: () => number },
): CachedX509Svid | { rejected: string } {
  const reject = (why: string): { rejected: string } => ({ rejected: why });
  if (chain.length === 0) return reject('empty certificate chain');
  let leaf;
  try {
    leaf = parseCertificate(chain[0] as Buffer);
  } catch (err) {
    return reject(`leaf cannot be parsed (${(err as Error).message})`);
  }
  if (leaf.uriSans.length !== 1 || leaf.uriSans[0] !== entry.spiffeId) return reject(`its URI SAN ${JSON.stringify(leaf.uriSans)} is not the entry's SPIFFE ID`);
  const pub = createPublicKey(key).export({ type: 'spki', format: 'der' });
  if (!pub.equals(leaf.spki)) return reject('it does not certify the key this agent generated');
  if (!ctx.verifies(chain)) return reject('it does not verify against the trust bundle');
  return {
    entryId: entry.entryId,
    spiffeId: entry.spiffeId,
    dnsKey: dnsKeyOf(entry),
    certChain: chain.map((c) => Buffer.from(c)),
    privateKeyPkcs8: exportPkcs8Der(key),
    serialHex: leaf.serialHex,
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
    renewAt: renewalTime(leaf.notBefore, leaf.notAfter, ctx.random),
    stale: false,
  };
}
