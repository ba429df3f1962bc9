/**
 * @module server/spire-api/svid-agent
 *
 * SPIRE's SVIDs for agents (`spire.api.server.svid.v1.SVID` BatchNewX509SVID, NewJWTSVID)
 * over Mayfly's own handlers (server/api/svid): the entry must be authorised to the
 * calling agent (server/authorized), the CSR contributes only its public key after its
 * self-signature is checked, and the SPIFFE ID, DNS names and lifetime come from the
 * entry; issuance records, usage and audit are written by the same path.
 *
 * Threat: an agent obtaining an identity that is not its to hand out. An entry outside the
 * caller's authorised set answers NOT_FOUND "entry not found or not authorized", as SPIRE
 * answers, whether it exists or not.
 *
 * Statuses as SPIRE's handler returns them: no params at all is INVALID_ARGUMENT for the
 * call; per item, a missing entry ID or CSR INVALID_ARGUMENT, an unauthorised entry
 * NOT_FOUND, a malformed CSR or one whose signature does not verify with its own key
 * INVALID_ARGUMENT; NewJWTSVID for an entry not authorised NOT_FOUND too (agent-status).
 * Deliberate difference: NewDownstreamX509CA is UNIMPLEMENTED: Mayfly's CA signs no
 * downstream intermediate CAs.
 */
import { status as GrpcStatus, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Transport } from '../auth.js';
import type { ApiContext } from '../context.js';
import type { WireJwtSvid, WireX509Svid } from '../messages.js';
import { badRequest, type ItemStatus } from '../status.js';
import { viaMayfly, type MayflyImpls } from './delegate.js';
import { spiffeIdToSpire, type SpireSpiffeId } from './ids.js';
import { spireErrors } from './stream.js';
import { x509SvidToSpire, type SpireX509Svid } from './types.js';

interface SpireParams {
  entry_id: string;
  csr: Buffer;
}

interface SpireBatchResult {
  status: ItemStatus;
  svid: SpireX509Svid | null;
}

interface SpireJwtSvid {
  token: string;
  id: SpireSpiffeId;
  expires_at: number;
  issued_at: number;
  hint: string;
}

/** SPIRE's per-item check before any lookup: what is missing, or undefined. */
function itemProblem(p: Partial<SpireParams> | null | undefined): string | undefined {
  if (typeof p?.entry_id !== 'string' || p.entry_id === '') return 'missing entry ID';
  if (!(p.csr instanceof Uint8Array) || p.csr.length === 0) return 'missing CSR';
  return undefined;
}

/** Mayfly's per-item status as SPIRE's: an unauthorised entry is NOT_FOUND there. */
function itemStatusToSpire(s: ItemStatus): ItemStatus {
  if (s.code === GrpcStatus.PERMISSION_DENIED) return { code: GrpcStatus.NOT_FOUND, message: 'entry not found or not authorized' };
  return s;
}

export function svidAgentHandlers(_ctx: ApiContext, _t: Transport, mayfly: MayflyImpls): UntypedServiceImplementation {
  const svid = mayfly.SVID;
  return {
    BatchNewX509SVID: spireErrors(
      viaMayfly<{ params: SpireParams[] }, { params: SpireParams[] }, { results: { status: ItemStatus; svid: WireX509Svid | null }[] }, { results: SpireBatchResult[] }>(
        svid?.BatchNewX509SVID,
        (req) => {
          const params = req.params ?? [];
          if (params.length === 0) throw badRequest('missing parameters');
          // Items SPIRE refuses before looking anything up never reach Mayfly's handler.
          return { params: params.filter((p) => itemProblem(p) === undefined).map((p) => ({ entry_id: p.entry_id, csr: p.csr })) };
        },
        (res, req) => {
          const theirs = res.results ?? [];
          let k = 0;
          return {
            results: (req.params ?? []).map((p): SpireBatchResult => {
              const problem = itemProblem(p);
              if (problem !== undefined) return { status: { code: GrpcStatus.INVALID_ARGUMENT, message: problem }, svid: null };
              const r = theirs[k++];
              if (r === undefined) return { status: { code: GrpcStatus.INTERNAL, message: 'internal error; see the server log' }, svid: null };
              return { status: itemStatusToSpire(r.status), svid: r.svid === null || r.svid === undefined ? null : x509SvidToSpire(r.svid) };
            }),
          };
        },
      ),
    ),

    NewJWTSVID: spireErrors(
      viaMayfly<{ entry_id: string; audience: string[] }, { entry_id: string; audience: string[] }, { svid: WireJwtSvid }, { svid: SpireJwtSvid }>(
        svid?.NewJWTSVID,
        (req) => ({ entry_id: req.entry_id ?? '', audience: req.audience ?? [] }),
        (res) => ({ svid: { token: res.svid.token, id: spiffeIdToSpire(res.svid.spiffe_id), expires_at: res.svid.expires_at, issued_at: res.svid.issued_at, hint: '' } }),
      ),
    ),
  };
}
