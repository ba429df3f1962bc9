/**
 * @module spiffe/x509/slow
 *
 * The reference mint path: the same leaf as X509SvidMinter, assembled with the
 * @peculiar/asn1-x509 schema classes and serialized by @peculiar/asn1-schema. It shares no
 * encoding code with the fast path, which is what makes it useful for cross-checking.
 * Nothing in the server or agent mints with it: it is that cross-check (mint.test.ts
 * compares the two leaves field by field, all but serial and signature; openssl.test.ts
 * has OpenSSL verify its leaf) and a line of `npm run bench`.
 */
import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier, AttributeTypeAndValue, AttributeValue, AuthorityKeyIdentifier, BasicConstraints, Certificate,
  ExtendedKeyUsage, Extension, Extensions, GeneralName, KeyIdentifier, KeyUsage, KeyUsageFlags, Name, RelativeDistinguishedName,
  SubjectAlternativeName, SubjectKeyIdentifier, SubjectPublicKeyInfo, TBSCertificate, Validity, Version,
} from '@peculiar/asn1-x509';
import { X509SvidError } from '../errors.js';
import { SpiffeId } from '../id.js';
import { keyTypeOf } from '../keys.js';
import { BACKDATE_MS } from './ca.js';
import { checkDnsName, OID } from './build.js';
import type { MintRequest } from './minter.js';
import { parseCertificate } from './parse.js';

export interface SlowMintRequest extends MintRequest {
  caCertificate: Uint8Array;
  caPrivateKey: KeyObject;
}

function ext(id: string, critical: boolean, value: unknown): Extension {
  return new Extension({ extnID: id, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

function nameOf(s: MintRequest['subject']): Name {
  const rdns: RelativeDistinguishedName[] = [];
  const add = (type: string, value: AttributeValue): void => {
    rdns.push(new RelativeDistinguishedName([new AttributeTypeAndValue({ type, value })]));
  };
  if (s?.country) add(OID.countryName, new AttributeValue({ printableString: s.country }));
  if (s?.organization) add(OID.organizationName, new AttributeValue({ utf8String: s.organization }));
  if (s?.commonName) add(OID.commonName, new AttributeValue({ utf8String: s.commonName }));
  return new Name(rdns);
}

/** Mints a leaf X.509-SVID with an ASN.1 library (reference path; tens of times slower than the minter, see `npm run bench`). */
export function mintX509SvidSlow(req: SlowMintRequest): Buffer {
  if (!(req.spiffeId instanceof SpiffeId)) throw new TypeError('spiffeId must be a SpiffeId');
  if (req.spiffeId.isTrustDomainId) throw new X509SvidError('ERR_X509_BUILD', `${req.spiffeId} is a trust domain ID; an X.509-SVID needs a workload ID with a path`);
  const ca = parseCertificate(req.caCertificate);
  const now = (req.now ?? new Date()).getTime();
  if (now >= ca.notAfter.getTime()) throw new X509SvidError('ERR_X509_EXPIRED', 'the CA certificate has expired; rotate the CA before minting');

  const spkiDer = req.publicKeySpki
    ? Buffer.from(req.publicKeySpki)
    : req.publicKey
      ? req.publicKey.export({ type: 'spki', format: 'der' })
      : undefined;
  if (!spkiDer) throw new TypeError('publicKey or publicKeySpki is required');
  const spki = AsnConvert.parse(spkiDer, SubjectPublicKeyInfo);
  const ski = createHash('sha1').update(Buffer.from(spki.subjectPublicKey)).digest();
  const caSki = ca.subjectKeyId ?? createHash('sha1').update(Buffer.from(AsnConvert.parse(ca.spki, SubjectPublicKeyInfo).subjectPublicKey)).digest();

  const caType = keyTypeOf(req.caPrivateKey);
  const sigAlg = caType === 'rsa-2048'
    ? new AlgorithmIdentifier({ algorithm: OID.sha256WithRsa, parameters: null })
    : new AlgorithmIdentifier({ algorithm: caType === 'ec-p384' ? OID.ecdsaWithSha384 : OID.ecdsaWithSha256 });
  const hash = caType === 'ec-p384' ? 'sha384' : 'sha256';

  let serial = randomBytes(16);
  if (serial[0] === 0) serial[0] = 1;
  if ((serial[0] as number) & 0x80) serial = Buffer.concat([Buffer.from([0]), serial]);

  const subject = nameOf(req.subject);
  for (const d of req.dnsNames ?? []) checkDnsName(d);
  const san = new SubjectAlternativeName([
    new GeneralName({ uniformResourceIdentifier: req.spiffeId.toString() }),
    ...(req.dnsNames ?? []).map((d) => new GeneralName({ dNSName: d })),
  ]);
  const ku = new KeyUsage(KeyUsageFlags.digitalSignature);
  const notAfter = Math.min(now + req.ttlSeconds * 1000, ca.notAfter.getTime());

  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: new Uint8Array(serial).buffer,
    signature: sigAlg,
    issuer: AsnConvert.parse(ca.subject, Name),
    validity: new Validity({ notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(notAfter) }),
    subject,
    subjectPublicKeyInfo: spki,
    extensions: new Extensions([
      ext(OID.basicConstraints, true, new BasicConstraints({ cA: false })),
      ext(OID.keyUsage, true, ku),
      ext(OID.extKeyUsage, false, new ExtendedKeyUsage([OID.serverAuth, OID.clientAuth])),
      ext(OID.authorityKeyIdentifier, false, new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(new Uint8Array(caSki)) })),
      ext(OID.subjectAltName, subject.length === 0, san),
      ext(OID.subjectKeyIdentifier, false, new SubjectKeyIdentifier(new Uint8Array(ski))),
    ]),
  });
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
  const signature = sign(hash, tbsDer, req.caPrivateKey);
  const cert = new Certificate({ tbsCertificate: tbs, signatureAlgorithm: sigAlg, signatureValue: new Uint8Array(signature).buffer });
  return Buffer.from(AsnConvert.serialize(cert));
}
