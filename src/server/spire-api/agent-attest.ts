/**
 * @module server/spire-api/agent-attest
 *
 * SPIRE's node attestation and agent renewal (`spire.api.server.agent.v1.Agent`
 * AttestAgent, RenewAgent), over Mayfly's own AttestAgent / RenewAgent handlers
 * (server/api/agent): one implementation, so authentication, the ban check, the CSR's
 * proof of possession, single-use evidence, issuance records and audit are the same
 * whichever API an agent speaks.
 *
 * Threat: a node claiming an identity its evidence does not support. AttestAgent is a
 * stream so that challenge–response attestors (x509pop) can ask the agent to prove
 * possession of a key: any node attestor of the catalog runs through here, given the
 * stream as `NodeAttestationContext.challenge` (server/api/attest-challenge); an agent
 * that answers out of turn, or not at all, fails attestation.
 *
 * PostStatus stays UNIMPLEMENTED, as on SPIRE's server (SPIRE's agent never calls it).
 * Deliberate differences from SPIRE (v1.13.3):
 * - the CSR's self-signature is checked at attestation (SPIRE only parses it);
 * - an agent that attested with single-use evidence cannot attest again under the same ID
 *   (SPIRE re-attests any agent that is not banned; with join tokens both refuse, the token
 *   being gone);
 * - RenewAgent renews a re-attestable agent too (SPIRE answers PERMISSION_DENIED
 *   AGENT_MUST_REATTEST; its agents never renew then), and the new SVID replaces the old
 *   one at once (SPIRE keeps the old serial valid until the new one is first used).
 */
import { Metadata, status as GrpcStatus, type ServerDuplexStream, type ServiceError, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { ATTEST_CHALLENGE, type AttestChallenge } from '../api/attest-challenge.js';
import type { Transport } from '../auth.js';
import type { ApiContext } from '../context.js';
import type { WireX509Svid } from '../messages.js';
import { badRequest, toServiceError } from '../status.js';
import { toSpireError } from './agent-status.js';
import { viaMayfly, type MayflyImpls } from './delegate.js';
import { spireErrors, StreamReader } from './stream.js';
import { x509SvidToSpire, type SpireX509Svid } from './types.js';

interface SpireAttestRequest {
  step?: 'params' | 'challenge_response';
  params: { data: { type: string; payload: Buffer } | null; params: { csr: Buffer } | null } | null;
  challenge_response: Buffer;
}

type SpireAttestResponse = { result: { svid: SpireX509Svid; reattestable: boolean } } | { challenge: Buffer };

/** SPIRE's `validateAttestAgentParams`: what is missing, or undefined. */
function missingParam(p: SpireAttestRequest['params']): string | undefined {
  if (p === null || p === undefined) return 'missing params';
  if (p.data === null || p.data === undefined) return 'missing attestation data';
  if (p.params === null || p.params === undefined) return 'missing X509-SVID parameters';
  if (!p.params.csr || p.params.csr.length === 0) return 'missing CSR';
  if (p.data.type === '') return 'missing attestation data type';
  if (!p.data.payload || p.data.payload.length === 0) return 'missing attestation data payload';
  return undefined;
}

/** Challenge rounds one attestation may take (x509pop needs one). */
const MAX_CHALLENGES = 8;
/** How long the server waits for each challenge response: a silent agent does not hold the stream open. */
const CHALLENGE_TIMEOUT_MS = 30_000;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(badRequest(`no ${what} within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export function agentAttestHandlers(ctx: ApiContext, _t: Transport, mayfly: MayflyImpls): UntypedServiceImplementation {
  const attest = mayfly.Agent?.AttestAgent;
  const renew = mayfly.Agent?.RenewAgent;
  if (typeof attest !== 'function' || typeof renew !== 'function') throw new TypeError('SPIRE AttestAgent/RenewAgent need Mayfly\'s Agent service');
  const inner = attest as (call: unknown, cb: (err: ServiceError | null, res?: { svid: WireX509Svid }) => void) => void;

  const AttestAgent = (call: ServerDuplexStream<SpireAttestRequest, SpireAttestResponse>): void => {
    const reader = new StreamReader(call);
    const fail = (err: unknown): void => {
      call.emit('error', toSpireError(isServiceError(err) ? err : toServiceError(err)));
    };
    void (async () => {
      const first = await reader.next();
      if (first === null) throw badRequest('failed to receive request from stream');
      const problem = first.step === 'params' ? missingParam(first.params) : 'missing params';
      if (problem !== undefined) throw badRequest(`malformed param: ${problem}`);
      const p = first.params as NonNullable<SpireAttestRequest['params']>;
      const data = p.data as NonNullable<typeof p.data>;
      // SPIRE: FAILED_PRECONDITION "error getting node attestor" (Mayfly's own API says INVALID_ARGUMENT).
      if (!ctx.attestors.has(data.type)) throw statusError(GrpcStatus.FAILED_PRECONDITION, `error getting node attestor: could not find node attestor type ${JSON.stringify(data.type.slice(0, 64))}`);
      let rounds = 0;
      const challenge: AttestChallenge = async (c) => {
        if (++rounds > MAX_CHALLENGES) throw badRequest(`node attestation took more than ${MAX_CHALLENGES} challenge rounds`);
        call.write({ challenge: Buffer.from(c) });
        const answer = await withTimeout(reader.next(), CHALLENGE_TIMEOUT_MS, 'challenge response from the agent');
        if (answer === null) throw badRequest('failed to receive challenge response from agent');
        if (answer.step !== 'challenge_response') throw badRequest('expected a challenge response from the agent');
        return answer.challenge_response;
      };
      // Mayfly's handler on the real call (peer certificate, cancellation), with only the
      // request replaced and the challenge channel attached.
      const proxied = Object.create(call, {
        request: { value: { attestation_data: { type: data.type, payload: data.payload }, csr: p.params?.csr }, enumerable: true },
        [ATTEST_CHALLENGE]: { value: challenge },
      }) as unknown;
      const res = await new Promise<{ svid: WireX509Svid }>((resolve, reject) =>
        inner(proxied, (err, r) => (err !== null && err !== undefined ? reject(err) : r === undefined ? reject(new Error('AttestAgent answered nothing')) : resolve(r))),
      );
      const agent = await ctx.ds.getAgent(res.svid.spiffe_id);
      call.write({ result: { svid: x509SvidToSpire(res.svid), reattestable: agent?.canReattest ?? false } });
      call.end();
    })().catch(fail);
  };

  return {
    AttestAgent,
    RenewAgent: spireErrors(
      viaMayfly<{ params: { csr: Buffer } | null }, { csr: Buffer }, { svid: WireX509Svid }, { svid: SpireX509Svid }>(
        renew,
        // An empty CSR reaches Mayfly's handler, which refuses it after authenticating the caller.
        (req) => ({ csr: req.params?.csr ?? Buffer.alloc(0) }),
        (res) => ({ svid: x509SvidToSpire(res.svid) }),
      ),
    ),
  };
}

function statusError(code: GrpcStatus, message: string): ServiceError {
  const e = new Error(message) as ServiceError;
  e.code = code;
  e.details = message;
  e.metadata = new Metadata();
  return e;
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number';
}
