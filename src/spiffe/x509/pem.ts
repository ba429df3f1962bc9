/**
 * @module spiffe/x509/pem
 *
 * Certificate containers: the Workload API's concatenated DER (`x509_svid`, `bundle`) and
 * PEM. Splitting is strict (every byte must belong to one complete DER SEQUENCE) so a
 * truncated or padded field is reported instead of silently dropping a certificate.
 */
import { X509SvidError } from '../errors.js';
import { DerError, readTlv, TAG } from './der.js';

/** Splits concatenated DER certificates. Throws X509SvidError ERR_X509_MALFORMED on junk. */
export function splitDerCertificates(concatenated: Uint8Array): Buffer[] {
  const buf = Buffer.from(concatenated.buffer, concatenated.byteOffset, concatenated.byteLength);
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    let end: number;
    try {
      const t = readTlv(buf, off);
      if (t.tag !== TAG.SEQUENCE) throw new DerError(`expected a SEQUENCE, found tag 0x${t.tag.toString(16)}`);
      end = t.end;
    } catch (cause) {
      throw new X509SvidError('ERR_X509_MALFORMED', `certificate #${out.length + 1} in the DER sequence is malformed at byte ${off}: ${(cause as Error).message}`, { cause });
    }
    out.push(Buffer.from(buf.subarray(off, end)));
    off = end;
  }
  if (out.length === 0) throw new X509SvidError('ERR_X509_MALFORMED', 'no certificates: the DER field is empty');
  return out;
}

/** Concatenates DER certificates (leaf first for an SVID). */
export function concatDer(certs: readonly Uint8Array[]): Buffer {
  return Buffer.concat(certs.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)));
}

/** PEM `CERTIFICATE` blocks, one per certificate, 64-column base64. */
export function pemEncodeCertificates(certs: readonly Uint8Array[]): string {
  let out = '';
  for (const c of certs) {
    const b64 = Buffer.from(c.buffer, c.byteOffset, c.byteLength).toString('base64');
    out += '-----BEGIN CERTIFICATE-----\n';
    for (let i = 0; i < b64.length; i += 64) out += b64.slice(i, i + 64) + '\n';
    out += '-----END CERTIFICATE-----\n';
  }
  return out;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/**
 * Parses every `CERTIFICATE` block. Text outside blocks (comments) is ignored; other block
 * types, bad base64, or bodies that are not one DER SEQUENCE are errors.
 */
export function parsePemCertificates(pem: string): Buffer[] {
  if (typeof pem !== 'string') throw new TypeError('PEM input must be a string');
  const out: Buffer[] = [];
  for (const m of pem.matchAll(PEM_BLOCK)) {
    const label = m[1] as string;
    if (label !== 'CERTIFICATE') {
      throw new X509SvidError('ERR_X509_MALFORMED', `PEM block #${out.length + 1} is "${label}", expected "CERTIFICATE"`);
    }
    const body = (m[2] as string).replace(/[\r\n\t ]/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) {
      throw new X509SvidError('ERR_X509_MALFORMED', `PEM block #${out.length + 1} holds invalid base64`);
    }
    const der = Buffer.from(body, 'base64');
    const certs = splitDerCertificates(der);
    if (certs.length !== 1) throw new X509SvidError('ERR_X509_MALFORMED', `PEM block #${out.length + 1} holds ${certs.length} DER values, expected 1`);
    out.push(certs[0] as Buffer);
  }
  if (out.length === 0) throw new X509SvidError('ERR_X509_MALFORMED', 'no PEM CERTIFICATE blocks found');
  return out;
}
