/**
 * @module sdk/exchange-via-agent
 *
 * The agent-local token exchange: for a workload with a user token but no SVID handling of
 * its own, `ExchangeForUser` on the agent's Workload API socket (Mayfly's own service,
 * proto/agent-delegation.proto). The agent attests the caller, authenticates the exchange
 * with a JWT-SVID of the caller's identity, and returns the delegated token: it names the
 * user and this workload, for one audience, and is unbound (a Bearer token), so send it
 * over TLS only. Served by mayfly-agent when `tokenExchange` (agent.conf
 * `agent { token_exchange { … } }`) is set; other agents answer UNIMPLEMENTED.
 *
 * Threat: an agent answer that would make the workload act outside its request (the
 * audience must be the one asked, the scope within the request).
 */
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { AGENT_DELEGATION_SERVICE, agentDelegationServiceDefinition, OAUTH_ERROR_METADATA, type ExchangeForUserRequestMessage, type ExchangeForUserResponseMessage } from '../wire/workload/delegation-proto.js';
import { SECURITY_HEADER } from '../wire/workload/proto.js';
import { actorChainOf, decodeClaims } from './delegated-claims.js';
import { resolveEndpoint, type EndpointOptions } from './endpoint.js';
import { TokenExchangeError } from './errors.js';
import type { UserDelegatedToken } from './exchange-for-user.js';

export interface ExchangeViaAgentOptions extends EndpointOptions {
  readonly audience: string;
  readonly scope?: string | readonly string[];
  /** Act as this identity of the workload (default: its default identity). */
  readonly spiffeId?: string;
  readonly subjectTokenType?: string;
  readonly timeoutMs?: number;
}

const failed = (msg: string, cause?: unknown): TokenExchangeError => new TokenExchangeError('ERR_TOKEN_EXCHANGE_FAILED', msg, cause === undefined ? undefined : { cause });

/** Asks the local agent to exchange `userToken`; throws TokenExchangeError, TypeError for misuse. */
export async function exchangeForUserViaAgent(userToken: string, options: ExchangeViaAgentOptions): Promise<UserDelegatedToken> {
  if (typeof userToken !== 'string' || userToken === '') throw new TypeError('exchangeForUserViaAgent needs the user token as a non-empty string');
  if (typeof options !== 'object' || options === null || typeof options.audience !== 'string' || options.audience === '') throw new TypeError('exchangeForUserViaAgent needs options { audience }');
  const scope = options.scope === undefined ? [] : typeof options.scope === 'string' ? options.scope.split(' ').filter((s) => s !== '') : [...options.scope];
  if (!scope.every((s) => typeof s === 'string' && s !== '' && !/\s/.test(s))) throw new TypeError('exchangeForUserViaAgent: scope must be scope names without whitespace');
  if (options.timeoutMs !== undefined && (!Number.isFinite(options.timeoutMs) || options.timeoutMs <= 0)) throw new TypeError('exchangeForUserViaAgent: timeoutMs must be a positive number');
  const endpoint = resolveEndpoint(options);
  const method = agentDelegationServiceDefinition().ExchangeForUser;
  if (method === undefined) throw new Error(`proto/agent-delegation.proto lacks ${AGENT_DELEGATION_SERVICE}/ExchangeForUser`);
  const client = new Client(endpoint.target, credentials.createInsecure(), { 'grpc.default_authority': 'localhost' });
  const md = new Metadata();
  md.set(SECURITY_HEADER, 'true');
  const req: ExchangeForUserRequestMessage = { subject_token: userToken, subject_token_type: options.subjectTokenType ?? '', audience: options.audience, scope, spiffe_id: options.spiffeId ?? '' };
  let res: ExchangeForUserResponseMessage;
  try {
    res = await new Promise<ExchangeForUserResponseMessage>((resolve, reject) => {
      client.makeUnaryRequest(
        method.path,
        method.requestSerialize as (v: ExchangeForUserRequestMessage) => Buffer,
        method.responseDeserialize as (b: Buffer) => ExchangeForUserResponseMessage,
        req,
        md,
        { deadline: new Date(Date.now() + (options.timeoutMs ?? 15_000)) },
        (err, value) => (err !== null || value === undefined ? reject(err ?? new Error('no answer')) : resolve(value)),
      );
    });
  } catch (err) {
    const e = err as ServiceError;
    const oauth = e.metadata?.get(OAUTH_ERROR_METADATA)[0];
    if (typeof oauth === 'string') throw new TokenExchangeError('ERR_TOKEN_EXCHANGE_REFUSED', `the token exchange was refused (${oauth}): ${e.details}`, { oauthError: oauth, description: e.details, cause: err });
    throw failed(`the agent did not exchange the token: ${e.details ?? e.message}`, err);
  } finally {
    client.close();
  }
  const claims = decodeClaims(res.access_token);
  const aud = Array.isArray(claims.aud) && claims.aud.length === 1 ? claims.aud[0] : claims.aud;
  if (aud !== options.audience) throw failed(`the issued token is for ${JSON.stringify(claims.aud)}, not the audience asked (${options.audience})`);
  if (typeof claims.sub !== 'string' || typeof claims.exp !== 'number') throw failed('the issued token names no user or no exp');
  const granted = typeof claims.scope === 'string' ? claims.scope.split(' ').filter((s) => s !== '') : [];
  if (scope.length > 0 && granted.some((s) => !scope.includes(s))) throw failed(`the issued token carries scope ${granted.join(' ')}, beyond what was asked`);
  const actorChain = actorChainOf(claims);
  if (actorChain[0] !== res.spiffe_id) throw failed(`the issued token's actor is ${JSON.stringify(actorChain[0])}, not ${res.spiffe_id}`);
  return {
    accessToken: res.access_token,
    tokenType: res.token_type === '' ? 'Bearer' : res.token_type,
    issuedTokenType: res.issued_token_type,
    expiresIn: res.expires_in,
    expiresAt: new Date(claims.exp * 1000),
    audience: options.audience,
    scope: granted,
    user: claims.sub,
    actorChain,
    claims,
  };
}
