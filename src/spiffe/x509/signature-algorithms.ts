/**
 * @module spiffe/x509/signature-algorithms
 *
 * The signature algorithms Mayfly accepts on certificates and CSRs, by OID: the hash to
 * verify with (none for Ed25519) and the key type the signer must hold. One table, so a
 * certificate check and a CSR check cannot disagree about an algorithm.
 */
import { OID } from './build.js';

export interface SignatureAlgorithm {
  readonly hash: string | null;
  readonly key: 'ec' | 'rsa' | 'ed25519';
}

export const SIGNATURE_ALGORITHMS: Readonly<Record<string, SignatureAlgorithm>> = {
  [OID.ecdsaWithSha256]: { hash: 'sha256', key: 'ec' },
  [OID.ecdsaWithSha384]: { hash: 'sha384', key: 'ec' },
  [OID.ecdsaWithSha512]: { hash: 'sha512', key: 'ec' },
  [OID.sha256WithRsa]: { hash: 'sha256', key: 'rsa' },
  [OID.sha384WithRsa]: { hash: 'sha384', key: 'rsa' },
  [OID.sha512WithRsa]: { hash: 'sha512', key: 'rsa' },
  [OID.ed25519]: { hash: null, key: 'ed25519' },
};
