/**
 * @module server/spire-api/csr-names
 *
 * The names a PKCS#10 CSR asks for (its extensionRequest's subjectAltName: URI and DNS
 * names), which SPIRE's MintX509SVID takes the SVID's SPIFFE ID and DNS names from
 * (`spire-server x509 mint` sends no other). Only reads: the CSR's signature is checked by
 * spiffe/x509/csr `parseCsr`, and Mayfly's CA signs only its public key.
 */
import { asnCsr, asnSchema, asnX509 } from '../../spiffe/x509/asn1-lazy.js';

const EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const SUBJECT_ALT_NAME = '2.5.29.17';

export interface CsrNames {
  uris: string[];
  dnsNames: string[];
}

/** The CSR's requested URI and DNS SANs; throws (any Error) when the CSR does not parse. */
export function csrNames(der: Uint8Array): CsrNames {
  const { AsnConvert } = asnSchema();
  const { Extensions, SubjectAlternativeName } = asnX509();
  const req = AsnConvert.parse(Buffer.from(der), asnCsr().CertificationRequest);
  const out: CsrNames = { uris: [], dnsNames: [] };
  for (const attr of req.certificationRequestInfo.attributes) {
    if (attr.type !== EXTENSION_REQUEST) continue;
    for (const value of attr.values) {
      const exts = AsnConvert.parse(value, Extensions);
      for (const ext of exts) {
        if (ext.extnID !== SUBJECT_ALT_NAME) continue;
        const san = AsnConvert.parse(ext.extnValue.buffer, SubjectAlternativeName);
        for (const gn of san) {
          if (gn.uniformResourceIdentifier !== undefined) out.uris.push(gn.uniformResourceIdentifier);
          if (gn.dNSName !== undefined) out.dnsNames.push(gn.dNSName);
        }
      }
    }
  }
  return out;
}
