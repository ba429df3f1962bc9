/**
 * @module server/api/issue
 *
 * One X509-SVID from one CSR (agent attestation and renewal, admin `x509 mint`; batches
 * of agent CSRs go through `mintX509SvidsFromCsrs` in ca/mint, with the same checks). The
 * CSR contributes only its public key, after its self-signature (proof of possession) and
 * key strength are checked; the SPIFFE ID, DNS names and lifetime are the caller's
 * arguments (taken from an entry or an admin request), never from the CSR.
 */
import { parseCsr } from '../../spiffe/x509/csr.js';
import { parseCertificate } from '../../spiffe/x509/parse.js';
import type { SpiffeId } from '../../spiffe/id.js';
import type { ApiContext } from '../context.js';
import type { WireX509Svid } from '../messages.js';
import { badRequest } from '../status.js';

export interface IssuedX509Svid {
  wire: WireX509Svid;
  serialHex: string;
  notAfter: number;
}

export function csrFromWire(csr: Buffer | undefined): Buffer {
  if (!(csr instanceof Uint8Array) || csr.length === 0) throw badRequest('csr is missing');
  return csr;
}

export interface IssueX509SvidRequest {
  spiffeId: SpiffeId;
  csr: Buffer | undefined;
  ttlSeconds: number;
  dnsNames?: readonly string[];
  /** The registration entry the SVID is for ('' or absent: agent SVIDs, admin mints); recorded with it (issue 10). */
  entryId?: string;
}

export async function issueX509Svid(ctx: ApiContext, req: IssueX509SvidRequest): Promise<IssuedX509Svid> {
  const { spki } = parseCsr(csrFromWire(req.csr));
  const issued = signWithSpki(ctx, req, spki);
  // Recorded before the SVID leaves the server, so revoking by SPIFFE ID or entry finds it
  // (issue 10); a store that cannot record it fails the call (UNAVAILABLE).
  await ctx.ds.recordX509SvidIssuances([
    { serialHex: issued.serialHex, spiffeId: req.spiffeId.toString(), entryId: req.entryId ?? '', authorityId: issued.authorityId, notAfter: issued.notAfter },
  ]);
  return issued;
}

function signWithSpki(ctx: ApiContext, req: IssueX509SvidRequest, spki: Buffer): IssuedX509Svid & { authorityId: string } {
  const signed = ctx.ca.signX509Svid({ spiffeId: req.spiffeId, publicKeySpki: spki, ttlSeconds: req.ttlSeconds, dnsNames: req.dnsNames ?? [] });
  const chain = signed.certificates;
  ctx.noteChain(chain);
  const leaf = parseCertificate(chain[0] as Buffer);
  const notAfter = Math.floor(leaf.notAfter.getTime() / 1000);
  return {
    wire: { spiffe_id: req.spiffeId.toString(), cert_chain: chain, expires_at: notAfter, serial_number: leaf.serialHex },
    serialHex: leaf.serialHex,
    notAfter,
    authorityId: signed.authorityId,
  };
}
