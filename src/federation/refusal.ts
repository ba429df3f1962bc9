/**
 * @module federation/refusal
 *
 * Why a peer's bundle was not taken: one stable reason per kind of failure (the label of the
 * `mayfly_federation_bundle_refusals_total` counter and the `reason` field of the log line).
 */
import { FederationError } from './federation-error.js';

export const REFUSAL_REASONS = [
  /** TCP/TLS connection failed (refused, reset, DNS). */
  'connect_failed',
  /** No answer within the connect or total timeout. */
  'timeout',
  /** The endpoint's certificate does not chain to the trusted roots (https_spiffe: the stored bundle; https_web: Web PKI). */
  'tls_untrusted',
  /** https_spiffe: the certificate is a valid SVID of another SPIFFE ID than the configured one. */
  'tls_wrong_spiffe_id',
  /** https_web: the certificate is not for the URL's host name. */
  'tls_wrong_host',
  /** https_spiffe: no bundle is stored for the endpoint SPIFFE ID's trust domain (bootstrap one). */
  'no_trust_bundle',
  /** A 3xx answer: redirects are never followed. */
  'redirect',
  /** Any other status than 200. */
  'http_status',
  /** The body is larger than the cap. */
  'body_too_large',
  /** The body is not a SPIFFE bundle. */
  'invalid_bundle',
  /** The bundle is not the peer trust domain's own. */
  'wrong_trust_domain',
  /** Its spiffe_sequence is lower than the stored bundle's. */
  'sequence_downgrade',
  /** The datastore refused the write. */
  'store_failed',
] as const;

export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** A peer bundle refused (or not fetched) for `reason`; the message names the peer and says why. */
export class BundleRefusal extends FederationError {
  readonly reason: RefusalReason;
  constructor(reason: RefusalReason, message: string, options?: { cause?: unknown }) {
    super('ERR_FEDERATION_FETCH_FAILED', message, options);
    this.reason = reason;
  }
}
