/**
 * @module sdk
 *
 * Mayfly's Node SDK: a Workload API client for any SPIFFE agent, long-lived X.509/JWT/
 * bundle sources, and SPIFFE mTLS helpers for node:tls and node:https.
 */
export { WorkloadApiClient, backoffDelay, isRetryable, type BackoffConfig, type CallOptions, type CancelWatch, type WatchErrorHandler, type WorkloadApiClientConfig } from './client.js';
export { ENDPOINT_ENV, parseEndpointAddress, resolveEndpoint, type EndpointOptions, type ResolvedEndpoint } from './endpoint.js';
export { EndpointError, PeerAuthorizationError, TokenExchangeError, WorkloadApiError, type RefusedPeer } from './errors.js';
export { x509SvidPem, type JwtSvid, type ValidatedJwtSvid, type X509Context, type X509Svid } from './model.js';
export { BundleSource, JwtSource, X509Source, type CreateSourceOptions, type SourceConfig, type X509SourceConfig } from './sources.js';
export {
  authorizeAny, authorizeId, authorizeMemberOf, authorizeOneOf, createClientTlsOptions, createServerTlsOptions, createSpiffeHttpsServer,
  createSpiffeTlsServer, guardTlsServer, peerSpiffeId, PEER_REJECTED_EVENT, REFUSAL_LOG_BURST, REFUSAL_LOG_WINDOW_MS, verifyPeer, type Authorizer, type SpiffeTlsOptions, type X509SvidSourceLike,
} from './tls.js';
// Transports beyond node:tls/node:https (issue 13, item 2)
export { connectSpiffeHttp2, createSpiffeHttp2Server } from './http2.js';
export { createSpiffeChannelCredentials, createSpiffeGrpcListener } from './grpc.js';
export { createSpiffeDispatcher, createSpiffeFetch, type SpiffeDispatcherOptions, type SpiffeFetch } from './fetch.js';
// Delegated tokens for AI agents acting for users (issue 12)
export { exchangeForUser, type ExchangeForUserOptions, type UserDelegatedToken } from './exchange-for-user.js';
export { exchangeForUserViaAgent, type ExchangeViaAgentOptions } from './exchange-via-agent.js';
export { validateDelegatedToken, DelegatedTokenError, type DelegatedToken, type DelegatedTokenOptions } from './delegated-token.js';
export { authorizeCall, type AuthorizeCallOptions, type CallDecision, type CallDecisionRecord, type CallRequest, type CallRule, type CallUser } from './authorize-call.js';
