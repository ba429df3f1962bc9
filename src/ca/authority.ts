/**
 * @module ca/authority
 *
 * The vocabulary of the CA's rotation: an authority (an X.509 CA certificate and key, or a
 * JWT signing key) is `prepared` (published in the bundle, not yet signing), `active`
 * (signing), or `old` (no longer signing, still trusted until it expires or is revoked).
 * An old authority may be `tainted` by an operator: agents then re-issue every SVID it
 * signed, after which the operator can revoke it (drop it from the bundle).
 */
import type { KeyObject } from 'node:crypto';

export type AuthorityKind = 'x509' | 'jwt';
export type AuthorityStatus = 'prepared' | 'active' | 'old';

/** A read-only snapshot of one authority. */
export interface AuthorityInfo {
  readonly kind: AuthorityKind;
  /** X.509: lowercase hex Subject Key Identifier of the CA certificate (as SPIRE). JWT: the `kid`. */
  readonly id: string;
  /** The key manager id of the private key. */
  readonly keyId: string;
  /** X.509 only: the CA certificate, DER. */
  readonly certificate?: Buffer;
  readonly publicKey: KeyObject;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly status: AuthorityStatus;
  readonly tainted: boolean;
  /** X.509 only: hex SKI of the upstream certificate that signed this CA (absent when self-signed). */
  readonly upstreamAuthorityId?: string;
}

/** What `localauthority x509|jwt show` prints. */
export interface AuthorityState {
  readonly active?: AuthorityInfo;
  readonly prepared?: AuthorityInfo;
  /** The most recently deactivated authority (SPIRE's "old" slot). */
  readonly old?: AuthorityInfo;
  /** Every authority, newest first, including older ones still trusted in the bundle. */
  readonly all: readonly AuthorityInfo[];
}

/** Events the CA emits; the server turns them into bundle pushes and agent notices. */
export type CaEvent =
  | { readonly type: 'bundle-updated'; readonly sequence: number }
  | { readonly type: 'authority-prepared'; readonly kind: AuthorityKind; readonly authorityId: string }
  | { readonly type: 'authority-activated'; readonly kind: AuthorityKind; readonly authorityId: string }
  | { readonly type: 'authority-tainted'; readonly kind: AuthorityKind; readonly authorityId: string }
  | { readonly type: 'authority-revoked'; readonly kind: AuthorityKind; readonly authorityId: string }
  | { readonly type: 'authority-expired'; readonly kind: AuthorityKind; readonly authorityId: string };

/** Minimal logger; pino's `(fields, message)` order, so a pino logger fits as is. */
export interface CaLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export const SILENT_LOGGER: CaLogger = { info() {}, warn() {}, error() {} };
