/**
 * @module workloadapi
 *
 * The SPIFFE Workload API endpoint (server side). The agent constructs a
 * `WorkloadApiEndpoint` with its cache (`WorkloadIdentities`), a JWT-SVID validator and
 * the peer credential reader from `src/agent/peercred`.
 *
 * The wire (proto loading, message shapes, Struct conversion) is not here: it lives in
 * `src/wire/workload/`, which the endpoint and the SDK both read.
 */
export { WorkloadApiEndpoint, type WorkloadApiEndpointConfig, type EndpointLogger } from './endpoint.js';
export {
  DEFAULT_WORKLOAD_API_LIMITS,
  resolveWorkloadApiLimits,
  type ConnectionStats,
  type WorkloadApiLimits,
} from './connection-limits.js';
export type {
  BundleMaterial,
  IssuedJwtSvid,
  JwtSvidRequest,
  PeerCredentials,
  PeerCredentialSource,
  Selector,
  ValidateJwtSvid,
  ValidatedJwtSvid,
  WorkloadIdentities,
  WorkloadUpdate,
  X509Identity,
} from './identities.js';
export type { DeliveredSvid, DeliveryCaller, OnDelivered } from './delivery.js';
