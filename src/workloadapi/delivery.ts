/**
 * @module workloadapi/delivery
 *
 * The seam through which the endpoint tells its owner (the agent's delivery log) which
 * local caller received which SVID: `onDelivered(caller, what)`, called after the answer
 * or stream message is handed to grpc-js. It is a notice, not a step of the call: it is
 * called synchronously, its failures are caught and logged, and it never delays, blocks or
 * fails a Workload API call.
 *
 * On a FetchX509SVID stream each (caller, serial) is reported once per stream, however many
 * updates repeat it (a bundle change resends every SVID); a JWT-SVID is reported each time
 * FetchJWTSVID returns it (the agent's delivery log keeps one per process and token).
 */
import { parseCertificate } from '../spiffe/x509/parse.js';
import type { PeerCredentials, Selector, X509Identity } from './identities.js';

/** Who received an SVID: the kernel's view of the connection and the selectors its attestation produced. */
export interface DeliveryCaller {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /** `type:value`, as the workload attestors produced them for this caller. */
  readonly selectors: readonly string[];
}

/** What was delivered. */
export type DeliveredSvid =
  | { readonly kind: 'x509'; readonly spiffeId: string; readonly serial: string; /** Unix seconds. */ readonly notAfter: number }
  | { readonly kind: 'jwt'; readonly spiffeId: string; readonly audience: readonly string[]; /** Unix seconds (0 when the token has no `exp`). */ readonly notAfter: number };

export type OnDelivered = (caller: DeliveryCaller, what: DeliveredSvid) => void;

export function deliveryCaller(cred: PeerCredentials, selectors: readonly Selector[]): DeliveryCaller {
  return { pid: cred.pid, uid: cred.uid, gid: cred.gid, selectors: selectors.map((s) => `${s.type}:${s.value}`) };
}

const leafFacts = new WeakMap<Buffer, { serial: string; notAfter: number }>();

/** The leaf's serial (lowercase hex of the DER INTEGER, as the server's ledger spells it) and notAfter, parsed once per certificate buffer. */
export function x509Delivered(id: X509Identity): DeliveredSvid | undefined {
  const leaf = id.certificates[0];
  if (leaf === undefined) return undefined;
  let facts = leafFacts.get(leaf);
  if (facts === undefined) {
    try {
      const c = parseCertificate(leaf);
      facts = { serial: c.serialHex, notAfter: Math.floor(c.notAfter.getTime() / 1000) };
    } catch {
      return undefined;
    }
    leafFacts.set(leaf, facts);
  }
  return { kind: 'x509', spiffeId: id.spiffeId, ...facts };
}

/** A JWT-SVID's delivery, its expiry read from the token's `exp` (0 when unreadable). */
export function jwtDelivered(spiffeId: string, audience: readonly string[], token: string): DeliveredSvid {
  let notAfter = 0;
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown };
    if (typeof payload.exp === 'number') notAfter = payload.exp;
  } catch {
    // an unreadable token is still recorded, with no expiry
  }
  return { kind: 'jwt', spiffeId, audience: [...audience], notAfter };
}

/** Calls `onDelivered`, never letting it throw into the call. */
export function notifyDelivered(onDelivered: OnDelivered | undefined, warn: (err: unknown) => void, caller: DeliveryCaller, what: DeliveredSvid): void {
  if (onDelivered === undefined) return;
  try {
    onDelivered(caller, what);
  } catch (err) {
    warn(err);
  }
}
