/**
 * @module workloadapi/token-exchange
 *
 * The agent-local path of the token exchange (issue 12, item 2): `ExchangeForUser` on the
 * Workload API socket (proto/agent-delegation.proto), for a local workload that has a user
 * token but no SVID handling of its own. The caller is attested exactly as for
 * FetchJWTSVID; the agent mints a JWT-SVID for the caller's identity (the one asked, if it
 * is entitled to it) with the server's issuer as audience, and hands it, as `actor_token`,
 * with the user token to the server's token endpoint through `exchange` (the agent's
 * client, agent/token-exchange-client). The issued token names the caller as actor.
 *
 * Threats: a local process obtaining a delegated token for an identity it is not entitled
 * to (attested, `spiffe_id` checked against what the caller's selectors grant, never taken
 * from the request alone); a caller flooding the server through the agent (request sizes
 * bounded before attestation; one JWT-SVID per call from the cache).
 */
import * as grpc from '@grpc/grpc-js';
import { SpiffeId } from '../spiffe/id.js';
import { OAUTH_ERROR_METADATA, type ExchangeForUserRequestMessage, type ExchangeForUserResponseMessage } from '../wire/workload/delegation-proto.js';
import { attest, type CallerContext } from './caller-check.js';
import type { WorkloadIdentities } from './identities.js';
import { asStatus, checkSecurityHeader, RpcError } from './rpc-status.js';

const MAX_TOKEN = 16 * 1024;
const JWT = 'urn:ietf:params:oauth:token-type:jwt';

export interface LocalExchangeRequest {
  /** A JWT-SVID of the caller's identity, audience = the server's issuer. */
  readonly actorToken: string;
  readonly actorId: string;
  readonly subjectToken: string;
  readonly subjectTokenType: string;
  readonly audience: string;
  readonly scope: readonly string[];
}

export interface LocalExchangeResult {
  readonly accessToken: string;
  readonly issuedTokenType: string;
  readonly tokenType: string;
  readonly expiresIn: number;
  readonly scope: readonly string[];
}

/** The server refused the exchange: `oauthError` is its RFC 6749 error. */
export class LocalExchangeRefusal extends Error {
  constructor(
    readonly oauthError: string,
    message: string,
  ) {
    super(message);
  }
}

/** What the handler needs from the agent. */
export interface LocalTokenExchange {
  /** The audience of the actor JWT-SVID (the server's issuer). */
  readonly actorAudience: string;
  /** Throws LocalExchangeRefusal for an OAuth refusal, anything else when the server could not be asked. */
  exchange(req: LocalExchangeRequest): Promise<LocalExchangeResult>;
}

export interface TokenExchangeHandlerContext extends CallerContext {
  identities: Pick<WorkloadIdentities, 'attest' | 'fetchJwtSvid'>;
  tokenExchange: LocalTokenExchange;
}

function refused(code: grpc.status, oauthError: string, details: string): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  metadata.set(OAUTH_ERROR_METADATA, oauthError);
  return { code, details, metadata };
}

const STATUS_OF: Record<string, grpc.status> = { unauthorized_client: grpc.status.PERMISSION_DENIED, access_denied: grpc.status.PERMISSION_DENIED };

/** The `AgentDelegation` service implementation. */
export function tokenExchangeHandlers(ctx: TokenExchangeHandlerContext): grpc.UntypedServiceImplementation {
  return {
    ExchangeForUser(call: grpc.ServerUnaryCall<ExchangeForUserRequestMessage, ExchangeForUserResponseMessage>, callback: grpc.sendUnaryData<ExchangeForUserResponseMessage>) {
      void (async (): Promise<ExchangeForUserResponseMessage> => {
        checkSecurityHeader(call);
        const r = call.request;
        if (r.subject_token === '' || r.subject_token.length > MAX_TOKEN) throw new RpcError(grpc.status.INVALID_ARGUMENT, `subject_token must be a token of at most ${MAX_TOKEN} bytes`);
        if (r.audience === '' || r.audience.length > 2048) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'audience must name the one service the token is for');
        if (r.scope.length > 64 || r.scope.some((s) => s === '' || /\s/.test(s) || s.length > 256)) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'scope must be a list of scope names without whitespace');
        if (r.spiffe_id !== '') {
          try {
            SpiffeId.parse(r.spiffe_id);
          } catch (err) {
            throw new RpcError(grpc.status.INVALID_ARGUMENT, `invalid requested SPIFFE ID: ${(err as Error).message}`);
          }
        }
        const { selectors, cred } = await attest(ctx, call, 'ExchangeForUser');
        let svids;
        try {
          svids = await ctx.identities.fetchJwtSvid(selectors, r.spiffe_id === '' ? { audience: [ctx.tokenExchange.actorAudience] } : { audience: [ctx.tokenExchange.actorAudience], spiffeId: r.spiffe_id });
        } catch (err) {
          ctx.logger.warn({ method: 'ExchangeForUser', err }, 'minting the actor JWT-SVID failed');
          throw new RpcError(grpc.status.UNAVAILABLE, 'could not mint the actor JWT-SVID');
        }
        const svid = r.spiffe_id === '' ? svids[0] : svids.find((s) => s.spiffeId === r.spiffe_id);
        if (svid === undefined) throw new RpcError(grpc.status.PERMISSION_DENIED, r.spiffe_id === '' ? 'no identity issued' : `caller is not entitled to SPIFFE ID ${JSON.stringify(r.spiffe_id)}`);
        let out: LocalExchangeResult;
        try {
          out = await ctx.tokenExchange.exchange({ actorToken: svid.token, actorId: svid.spiffeId, subjectToken: r.subject_token, subjectTokenType: r.subject_token_type === '' ? JWT : r.subject_token_type, audience: r.audience, scope: r.scope });
        } catch (err) {
          if (err instanceof LocalExchangeRefusal) {
            ctx.logger.debug({ method: 'ExchangeForUser', caller_pid: cred.pid, actor: svid.spiffeId, audience: r.audience, oauth_error: err.oauthError }, 'token exchange refused by the server');
            throw Object.assign(new RpcError(STATUS_OF[err.oauthError] ?? grpc.status.INVALID_ARGUMENT, err.message), { oauthError: err.oauthError });
          }
          ctx.logger.warn({ method: 'ExchangeForUser', err }, 'the token exchange failed');
          throw new RpcError(grpc.status.UNAVAILABLE, `the token exchange failed: ${(err as Error).message}`);
        }
        return { access_token: out.accessToken, issued_token_type: out.issuedTokenType, token_type: out.tokenType, expires_in: out.expiresIn, scope: [...out.scope], spiffe_id: svid.spiffeId };
      })().then(
        (res) => callback(null, res),
        (err: unknown) => {
          const oauth = (err as { oauthError?: unknown }).oauthError;
          const st = asStatus(err);
          callback((typeof oauth === 'string' ? refused(st.code ?? grpc.status.INVALID_ARGUMENT, oauth, st.details ?? '') : st) as grpc.ServiceError);
        },
      );
    },
  };
}
