/**
 * @module server/api/issue
 *
 * The one path from a CSR to an X509-SVID. The CSR contributes only its public key, after
 * its self-signature (proof of possession) and key strength are checked; the SPIFFE ID,
 * DNS names and lifetime are the caller's arguments (taken from an entry or an admin
 * request), never from the CSR.
 */
import { parseCsr } from '../../spiffe/x509/csr.js';
import { parseCertificate } from '../../spiffe/x509/parse.js';
import type { SpiffeId } from '../../spiffe/id.js';
import type { ApiContext } from '../context.js';
import type { WireX509Svid } from '../messages.js';
import { parseCsrOutcome } from '../csr-pool.js';
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
}

export async function issueX509Svid(ctx: ApiContext, req: IssueX509SvidRequest): Promise<IssuedX509Svid> {
  const { spki } = parseCsr(csrFromWire(req.csr));
  return signWithSpki(ctx, req, spki);
}

/**
 * A batch of `issueX509Svid`: the CSRs are checked together (on ctx.csrParser's worker
 * threads when there is one, by the same `parseCsr`), then each SVID is minted. One
 * outcome per request, in order; a bad CSR fails only its own item.
 */
export async function issueX509Svids(ctx: ApiContext, reqs: readonly IssueX509SvidRequest[]): Promise<({ issued: IssuedX509Svid } | { error: unknown })[]> {
  const csrs: Uint8Array[] = [];
  const slotOf: number[] = [];
  const out: ({ issued: IssuedX509Svid } | { error: unknown } | undefined)[] = reqs.map(() => undefined);
  reqs.forEach((r, i) => {
    try {
      csrs.push(csrFromWire(r.csr));
      slotOf.push(i);
    } catch (error) {
      out[i] = { error };
    }
  });
  const parsed = ctx.csrParser ? await ctx.csrParser.parse(csrs) : csrs.map(parseCsrOutcome);
  parsed.forEach((p, k) => {
    const i = slotOf[k] as number;
    if ('error' in p) {
      out[i] = { error: p.error };
      return;
    }
    try {
      out[i] = { issued: signWithSpki(ctx, reqs[i] as IssueX509SvidRequest, p.spki) };
    } catch (error) {
      out[i] = { error };
    }
  });
  return out as ({ issued: IssuedX509Svid } | { error: unknown })[];
}

function signWithSpki(ctx: ApiContext, req: IssueX509SvidRequest, spki: Buffer): IssuedX509Svid {
  const chain = ctx.ca.signX509Svid({ spiffeId: req.spiffeId, publicKeySpki: spki, ttlSeconds: req.ttlSeconds, dnsNames: req.dnsNames ?? [] }).certificates;
  ctx.noteChain(chain);
  const leaf = parseCertificate(chain[0] as Buffer);
  const notAfter = Math.floor(leaf.notAfter.getTime() / 1000);
  return {
    wire: { spiffe_id: req.spiffeId.toString(), cert_chain: chain, expires_at: notAfter, serial_number: leaf.serialHex },
    serialHex: leaf.serialHex,
    notAfter,
  };
}
