/**
 * Error codes are a stable API (CONTRIBUTING.md): each room declares its own codes
 * (`src/<room>/*-error.ts`, registered in `MayflyErrorCodes`, see `src/spiffe/errors.ts`),
 * and together they must stay exactly this list. A renamed or dropped code fails
 * `npm run typecheck` here (the `expectTypeOf` lines are checked by tsc); add new codes to
 * this list when a room adds them.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { AgentErrorCode } from '../../src/agent/agent-error.js';
import { ServerCallError } from '../../src/agent/server-client.js';
import type { AttestorErrorCode } from '../../src/attestors/attestor-error.js';
import { CaError, type CaErrorCode } from '../../src/ca/ca-error.js';
import { CliCallError, type CliErrorCode } from '../../src/cli/cli-error.js';
import { CliUsageError } from '../../src/cli/flags.js';
import type { DatastoreErrorCode } from '../../src/datastore/datastore-error.js';
import { DatastoreError } from '../../src/datastore/records.js';
import { FederationError, type FederationErrorCode } from '../../src/federation/federation-error.js';
import { AuditError, type AuditErrorCode } from '../../src/audit/audit-error.js';
import { DelegationError, type DelegationErrorCode } from '../../src/delegation/delegation-error.js';
import type { RegistrationErrorCode } from '../../src/registration/registration-error.js';
import { SelectorError } from '../../src/registration/selector.js';
import { WorkloadApiError, type SdkErrorCode } from '../../src/sdk/errors.js';
import type { SecureFsErrorCode } from '../../src/securefs/securefs-error.js';
import type { ServerErrorCode } from '../../src/server/server-error.js';
import { isMayflyError, MayflyError, SpiffeIdError, type ErrorCode, type SpiffeErrorCode } from '../../src/spiffe/errors.js';
import type { WorkloadApiEndpointErrorCode } from '../../src/workloadapi/workloadapi-error.js';

/** Every code Mayfly emits, as spelt in the single union that was split by room (plus those added since). */
type StableErrorCode =
  // SPIFFE ID and trust domain parsing (one code per rule of the standard)
  | 'ERR_SPIFFE_ID_EMPTY'
  | 'ERR_SPIFFE_ID_TOO_LONG'
  | 'ERR_SPIFFE_ID_WRONG_SCHEME'
  | 'ERR_SPIFFE_ID_MISSING_TRUST_DOMAIN'
  | 'ERR_SPIFFE_ID_TRUST_DOMAIN_TOO_LONG'
  | 'ERR_SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR'
  | 'ERR_SPIFFE_ID_BAD_PATH_SEGMENT_CHAR'
  | 'ERR_SPIFFE_ID_DOT_SEGMENT'
  | 'ERR_SPIFFE_ID_EMPTY_SEGMENT'
  | 'ERR_SPIFFE_ID_TRAILING_SLASH'
  | 'ERR_SPIFFE_ID_NO_LEADING_SLASH'
  | 'ERR_SPIFFE_ID_NOT_MEMBER'
  | 'ERR_SPIFFE_ID_PATH_REQUIRED'
  // Keys
  | 'ERR_KEY_INVALID'
  | 'ERR_KEY_UNSUPPORTED'
  // X.509-SVID parsing and path validation
  | 'ERR_X509_MALFORMED'
  | 'ERR_X509_SVID_INVALID'
  | 'ERR_X509_CHAIN_INVALID'
  | 'ERR_X509_NO_TRUST'
  | 'ERR_X509_EXPIRED'
  | 'ERR_X509_NOT_YET_VALID'
  | 'ERR_X509_BAD_SIGNATURE'
  | 'ERR_X509_NAME_CONSTRAINTS'
  | 'ERR_X509_KEY_MISMATCH'
  | 'ERR_X509_BUILD'
  | 'ERR_CSR_INVALID'
  // JWT-SVID
  | 'ERR_JWT_MALFORMED'
  | 'ERR_JWT_ALG_NOT_ALLOWED'
  | 'ERR_JWT_TYP_INVALID'
  | 'ERR_JWT_CRIT'
  | 'ERR_JWT_KID_MISSING'
  | 'ERR_JWT_KID_UNKNOWN'
  | 'ERR_JWT_SIGNATURE'
  | 'ERR_JWT_CLAIM_MISSING'
  | 'ERR_JWT_CLAIM_INVALID'
  | 'ERR_JWT_EXPIRED'
  | 'ERR_JWT_NOT_YET_VALID'
  | 'ERR_JWT_AUDIENCE'
  | 'ERR_JWT_NO_BUNDLE'
  // Trust bundles
  | 'ERR_BUNDLE_MALFORMED'
  | 'ERR_BUNDLE_KEY_INVALID'
  | 'ERR_BUNDLE_TRUST_DOMAIN'
  // Datastore
  | 'ERR_DATASTORE_NOT_FOUND'
  | 'ERR_DATASTORE_ALREADY_EXISTS'
  | 'ERR_DATASTORE_CONFLICT'
  | 'ERR_DATASTORE_INVALID'
  | 'ERR_DATASTORE_UNAVAILABLE'
  // CA
  | 'ERR_CA_NOT_READY'
  | 'ERR_CA_MINT_CHECK'
  | 'ERR_CA_AUTHORITY_NOT_FOUND'
  | 'ERR_CA_AUTHORITY_STATE'
  | 'ERR_CA_CONFIG'
  | 'ERR_CA_KEY_PERMISSIONS'
  | 'ERR_CA_JOURNAL_INVALID'
  | 'ERR_CA_UPSTREAM_INVALID'
  // Federation (bundle endpoint URLs and profiles, peer bundles)
  | 'ERR_FEDERATION_INVALID'
  // Audit ledger
  | 'ERR_AUDIT_UNAVAILABLE'
  | 'ERR_AUDIT_INVALID'
  | 'ERR_FEDERATION_FETCH_FAILED'
  // Delegated tokens (RFC 8693 token exchange)
  | 'ERR_DELEGATION_INVALID_REQUEST'
  | 'ERR_DELEGATION_INVALID_GRANT'
  | 'ERR_DELEGATION_UNAUTHORIZED_CLIENT'
  | 'ERR_DELEGATION_INVALID_TARGET'
  | 'ERR_DELEGATION_INVALID_SCOPE'
  | 'ERR_DELEGATION_CONFIG'
  | 'ERR_DELEGATION_UNAVAILABLE'
  | 'ERR_DELEGATION_RATE_LIMITED'
  // Attestation and authorisation
  | 'ERR_ATTESTATION_FAILED'
  | 'ERR_ATTESTATION_MALFORMED'
  | 'ERR_JOIN_TOKEN_INVALID'
  | 'ERR_AGENT_BANNED'
  | 'ERR_AGENT_UNKNOWN'
  | 'ERR_PERMISSION_DENIED'
  | 'ERR_PEER_CREDENTIALS'
  | 'ERR_CALLER_CHANGED'
  | 'ERR_SELECTOR_INVALID'
  | 'ERR_ENTRY_INVALID'
  | 'ERR_CONFIG_INVALID'
  // Agent (node attestation client, entry sync, SVID cache)
  | 'ERR_AGENT_SVID_EXPIRED'
  | 'ERR_AGENT_NOT_READY'
  | 'ERR_AGENT_SERVER_CALL'
  | 'ERR_AGENT_STATE_INVALID'
  // Server API requests (mapped to gRPC statuses in src/server/status.ts)
  | 'ERR_UNAUTHENTICATED'
  | 'ERR_REQUEST_INVALID'
  | 'ERR_REQUEST_TOO_LARGE'
  | 'ERR_SERVER_ADDRESS_IN_USE'
  | 'ERR_SVID_ALREADY_EXPIRED'
  | 'ERR_CERTIFICATION_REFUSED'
  // Workload API client (SDK) and command line
  | 'ERR_WORKLOAD_API_ENDPOINT'
  | 'ERR_WORKLOAD_API_CALL'
  | 'ERR_WORKLOAD_API_RESPONSE'
  | 'ERR_WORKLOAD_API_HTTP2'
  | 'ERR_PEER_UNAUTHORIZED'
  | 'ERR_DELEGATED_TOKEN_INVALID'
  | 'ERR_TOKEN_EXCHANGE_REFUSED'
  | 'ERR_TOKEN_EXCHANGE_FAILED'
  | 'ERR_CLI_USAGE'
  | 'ERR_CLI_FAILED'
  | 'ERR_CLI_INVALID_INPUT'
  | 'ERR_CLI_NOT_FOUND'
  | 'ERR_CLI_PERMISSION_DENIED'
  | 'ERR_CLI_UNREACHABLE'
  // Files, directories and socket paths (src/securefs)
  | 'ERR_FILE_PERMISSIONS'
  | 'ERR_FILE_NOT_REGULAR'
  | 'ERR_FILE_NOT_DIRECTORY'
  | 'ERR_PATH_UNTRUSTED';

describe('error codes', () => {
  it('are exactly the stable list, each owned by one room', () => {
    expectTypeOf<ErrorCode>().toEqualTypeOf<StableErrorCode>();
    expectTypeOf<
      | SpiffeErrorCode
      | RegistrationErrorCode
      | CaErrorCode
      | DatastoreErrorCode
      | FederationErrorCode
      | AuditErrorCode
      | DelegationErrorCode
      | AttestorErrorCode
      | ServerErrorCode
      | AgentErrorCode
      | WorkloadApiEndpointErrorCode
      | SdkErrorCode
      | CliErrorCode
      | SecureFsErrorCode
    >().toEqualTypeOf<StableErrorCode>();
  });

  it('a room error class carries its room code, and isMayflyError recognises any code', () => {
    const errors: Array<[MayflyError, ErrorCode]> = [
      [new SpiffeIdError('ERR_SPIFFE_ID_EMPTY', 'm'), 'ERR_SPIFFE_ID_EMPTY'],
      [new SelectorError('m'), 'ERR_SELECTOR_INVALID'],
      [new CaError('ERR_CA_NOT_READY', 'm'), 'ERR_CA_NOT_READY'],
      [new DatastoreError('ERR_DATASTORE_CONFLICT', 'm'), 'ERR_DATASTORE_CONFLICT'],
      [new FederationError('ERR_FEDERATION_INVALID', 'm'), 'ERR_FEDERATION_INVALID'],
      [new AuditError('ERR_AUDIT_UNAVAILABLE', 'm'), 'ERR_AUDIT_UNAVAILABLE'],
      [new DelegationError('ERR_DELEGATION_INVALID_SCOPE', 'm'), 'ERR_DELEGATION_INVALID_SCOPE'],
      [new ServerCallError(14, 'm'), 'ERR_AGENT_SERVER_CALL'],
      [new WorkloadApiError('ERR_WORKLOAD_API_CALL', 'm'), 'ERR_WORKLOAD_API_CALL'],
      [new CliUsageError('m'), 'ERR_CLI_USAGE'],
      [new CliCallError('ERR_CLI_NOT_FOUND', 'm'), 'ERR_CLI_NOT_FOUND'],
      [new MayflyError('ERR_ATTESTATION_FAILED', 'm'), 'ERR_ATTESTATION_FAILED'],
    ];
    for (const [err, code] of errors) {
      expect(err).toBeInstanceOf(Error);
      expect(isMayflyError(err)).toBe(true);
      expect(isMayflyError(err, code)).toBe(true);
      expect(err.code).toBe(code);
    }
    expect(isMayflyError(new CaError('ERR_CA_NOT_READY', 'm'), 'ERR_CA_CONFIG')).toBe(false);
    expect(isMayflyError(new Error('m'))).toBe(false);
  });
});
