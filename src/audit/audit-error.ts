/**
 * @module audit/audit-error
 *
 * The codes the audit ledger raises (stable: never rename one).
 */
import { MayflyError } from '../spiffe/errors.js';

export type AuditErrorCode =
  /** The ledger could not make a record durable; what needed it (an issuance, a change) was refused. */
  | 'ERR_AUDIT_UNAVAILABLE'
  /** An audit event or query that cannot be recorded or answered as given. */
  | 'ERR_AUDIT_INVALID';

declare module '../spiffe/errors.js' {
  interface MayflyErrorCodes extends Record<AuditErrorCode, 'audit'> {}
}

export class AuditError extends MayflyError<AuditErrorCode> {}
