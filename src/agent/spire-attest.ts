/**
 * @module agent/spire-attest
 *
 * Node attestation over SPIRE's `spire.api.server.agent.v1.Agent/AttestAgent` stream, for
 * evidence that must answer the server's challenges (x509pop): the agent sends
 * `params { data { type, payload }, params { csr } }`, answers each `challenge` with a
 * `challenge_response`, and ends on `result { svid, reattestable }`. Mayfly's own
 * Agent.AttestAgent is unary and cannot carry challenges, so this is the one call the
 * agent makes on SPIRE's API (one API, not two: the stream is already served). The bundle,
 * which SPIRE's result does not carry, then comes from Bundle.GetBundle on the same
 * channel (public, as SPIRE's).
 *
 * Threat: a server that keeps challenging (each answer is a signature by the node key):
 * at most MAX_CHALLENGES are answered and the whole exchange has one deadline.
 */
import * as grpc from '@grpc/grpc-js';
import { spireApiServiceDefinition } from '../wire/spire/definition.js';
import { GrpcCode, ServerCallError, type IssuedX509Svid } from './server-client.js';

/** Challenges answered in one attestation (x509pop sends one). */
export const MAX_CHALLENGES = 4;

let ctor: grpc.ServiceClientConstructor | undefined;

/** A client of SPIRE's Agent service sharing `opts.channelOverride`. */
export function spireAgentClient(address: string, creds: grpc.ChannelCredentials, opts: grpc.ClientOptions): grpc.Client {
  ctor ??= grpc.makeClientConstructor(spireApiServiceDefinition('Agent') as unknown as grpc.ServiceDefinition, 'spire.api.server.agent.v1.Agent');
  return new ctor(address, creds, opts);
}

interface WireSpireX509Svid {
  cert_chain?: Buffer[];
  id?: { trust_domain?: string; path?: string } | null;
  expires_at?: number;
}
interface WireAttestAgentResponse {
  step?: 'result' | 'challenge';
  challenge?: Buffer;
  result?: { svid?: WireSpireX509Svid | null; reattestable?: boolean } | null;
}

export interface SpireAttestRequest {
  readonly type: string;
  readonly payload: Buffer;
  readonly csr: Buffer;
  answerChallenge(challenge: Buffer): Promise<Buffer>;
}

/** Runs one AttestAgent exchange; failures reject with ServerCallError (via `callError`). */
export function attestOverSpireStream(
  client: grpc.Client,
  req: SpireAttestRequest,
  timeoutMs: number,
  callError: (err: grpc.ServiceError | Error) => ServerCallError,
): Promise<IssuedX509Svid> {
  const fn = (client as unknown as Record<string, (opts: grpc.CallOptions) => grpc.ClientDuplexStream<unknown, WireAttestAgentResponse>>).AttestAgent;
  if (typeof fn !== 'function') return Promise.reject(new TypeError('no RPC AttestAgent'));
  return new Promise<IssuedX509Svid>((resolve, reject) => {
    let stream: grpc.ClientDuplexStream<unknown, WireAttestAgentResponse>;
    try {
      stream = fn.call(client, { deadline: Date.now() + timeoutMs });
    } catch (err) {
      reject(callError(err as Error));
      return;
    }
    let done = false;
    let challenges = 0;
    const finish = (err: ServerCallError | undefined, svid?: IssuedX509Svid): void => {
      if (done) return;
      done = true;
      if (err !== undefined) {
        stream.cancel();
        reject(err);
      } else {
        stream.end();
        resolve(svid as IssuedX509Svid);
      }
    };
    const malformed = (what: string): ServerCallError => new ServerCallError(GrpcCode.UNAVAILABLE, `server sent a malformed ${what}`);
    stream.on('data', (msg: WireAttestAgentResponse) => {
      if (done) return;
      if (msg.step === 'challenge' && Buffer.isBuffer(msg.challenge)) {
        if (++challenges > MAX_CHALLENGES) {
          finish(new ServerCallError(GrpcCode.UNAVAILABLE, `the server sent more than ${MAX_CHALLENGES} attestation challenges`));
          return;
        }
        req.answerChallenge(msg.challenge).then(
          (answer) => {
            if (!done) stream.write({ challenge_response: answer });
          },
          (err: unknown) => finish(err instanceof ServerCallError ? err : new ServerCallError(GrpcCode.CANCELLED, `cannot answer the server's challenge: ${(err as Error).message}`, { cause: err })),
        );
        return;
      }
      const svid = msg.step === 'result' ? msg.result?.svid : undefined;
      const chain = Array.isArray(svid?.cert_chain) ? svid.cert_chain : [];
      if (svid === undefined || svid === null || chain.length === 0 || !chain.every((c) => Buffer.isBuffer(c))) {
        finish(malformed('AttestAgent answer'));
        return;
      }
      const id = svid.id;
      const spiffeId = id?.trust_domain ? `spiffe://${id.trust_domain}${id.path ?? ''}` : '';
      finish(undefined, { spiffeId, certChain: chain, expiresAt: Number(svid.expires_at ?? 0) });
    });
    stream.on('error', (err: grpc.ServiceError) => finish(callError(err)));
    stream.on('end', () => finish(new ServerCallError(GrpcCode.UNAVAILABLE, 'the server ended AttestAgent without a result')));
    stream.write({ params: { data: { type: req.type, payload: req.payload }, params: { csr: req.csr } } });
  });
}
