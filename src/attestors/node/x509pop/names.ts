/**
 * @module attestors/node/x509pop/names
 *
 * A certificate's distinguished names as Go's `pkix.Name` presents them to SPIRE's
 * `agent_path_template` (`.Subject.CommonName`, `.Subject.Organization`, ...; the last
 * CommonName and SerialNumber win, the other attributes are lists in order), and the
 * template data SPIRE's x509pop passes (`agentPathTemplateData`: the certificate's fields
 * plus PluginName, Fingerprint, SerialNumberHex, TrustDomain, SVIDPathTrimmed,
 * URISanSelectors).
 */
import { readTlv, TAG, type Tlv } from '../../../spiffe/x509/der.js';
import type { ParsedCertificate } from '../../../spiffe/x509/parse.js';
import type { TemplateRecord } from './template.js';

const ATTRS: Readonly<Record<string, { field: string; short: string; list: boolean }>> = {
  '2.5.4.3': { field: 'CommonName', short: 'CN', list: false },
  '2.5.4.5': { field: 'SerialNumber', short: 'SERIALNUMBER', list: false },
  '2.5.4.6': { field: 'Country', short: 'C', list: true },
  '2.5.4.7': { field: 'Locality', short: 'L', list: true },
  '2.5.4.8': { field: 'Province', short: 'ST', list: true },
  '2.5.4.9': { field: 'StreetAddress', short: 'STREET', list: true },
  '2.5.4.10': { field: 'Organization', short: 'O', list: true },
  '2.5.4.11': { field: 'OrganizationalUnit', short: 'OU', list: true },
  '2.5.4.17': { field: 'PostalCode', short: 'POSTALCODE', list: true },
};

function oidString(buf: Uint8Array, t: Tlv): string {
  const arcs: number[] = [];
  let v = 0;
  for (let i = t.contentStart; i < t.end; i++) {
    const b = buf[i] as number;
    v = v * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      if (arcs.length === 0) arcs.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else arcs.push(v);
      v = 0;
    }
  }
  return arcs.join('.');
}

function children(buf: Uint8Array, t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let off = t.contentStart; off < t.end; ) {
    const c = readTlv(buf, off, t.end);
    out.push(c);
    off = c.end;
  }
  return out;
}

const STRING_TAGS = new Set<number>([TAG.UTF8_STRING, TAG.PRINTABLE_STRING, TAG.IA5_STRING, 0x14 /* T61 */, 0x1e /* BMP */]);

function text(buf: Uint8Array, t: Tlv): string | undefined {
  if (!STRING_TAGS.has(t.tag)) return undefined;
  const bytes = Buffer.from(buf.subarray(t.contentStart, t.end));
  if (t.tag === 0x1e) return bytes.swap16().toString('utf16le');
  return bytes.toString(t.tag === 0x14 ? 'latin1' : 'utf8');
}

export interface DistinguishedName {
  readonly CommonName: string;
  readonly SerialNumber: string;
  readonly Country: readonly string[];
  readonly Organization: readonly string[];
  readonly OrganizationalUnit: readonly string[];
  readonly Locality: readonly string[];
  readonly Province: readonly string[];
  readonly StreetAddress: readonly string[];
  readonly PostalCode: readonly string[];
  /** RFC 2253 form (what Go prints for a bare `.Subject`). */
  readonly String: string;
}

/** Reads a Name (DER SEQUENCE OF RDN); unknown attributes appear only in `String`. */
export function parseName(der: Uint8Array): DistinguishedName {
  const lists: Record<string, string[]> = {};
  const single: Record<string, string> = { CommonName: '', SerialNumber: '' };
  const rdns: string[] = [];
  try {
    const seq = readTlv(der, 0);
    for (const set of children(der, seq)) {
      const parts: string[] = [];
      for (const atv of children(der, set)) {
        const [o, v] = children(der, atv);
        if (o === undefined || v === undefined || o.tag !== TAG.OID) continue;
        const oid = oidString(der, o);
        const value = text(der, v) ?? '';
        const a = ATTRS[oid];
        parts.push(`${a?.short ?? oid}=${value.replace(/([,+"\\<>;])/g, '\\$1')}`);
        if (a === undefined) continue;
        if (a.list) (lists[a.field] ??= []).push(value);
        else single[a.field] = value;
      }
      rdns.push(parts.join('+'));
    }
  } catch {
    // parseCertificate has already checked the certificate's DER; a Name we cannot read is empty.
  }
  const l = (f: string): readonly string[] => lists[f] ?? [];
  return {
    CommonName: single.CommonName as string,
    SerialNumber: single.SerialNumber as string,
    Country: l('Country'),
    Organization: l('Organization'),
    OrganizationalUnit: l('OrganizationalUnit'),
    Locality: l('Locality'),
    Province: l('Province'),
    StreetAddress: l('StreetAddress'),
    PostalCode: l('PostalCode'),
    String: rdns.reverse().join(','),
  };
}

export interface TemplateInputs {
  readonly leaf: ParsedCertificate;
  readonly trustDomain: string;
  readonly fingerprint: string;
  readonly serialNumberHex: string;
  readonly svidPathTrimmed: string;
  readonly sanSelectors: Readonly<Record<string, string>>;
}

/** SPIRE's agentPathTemplateData for `leaf`. */
export function templateData(i: TemplateInputs): TemplateRecord {
  return {
    PluginName: 'x509pop',
    Fingerprint: i.fingerprint,
    SerialNumberHex: i.serialNumberHex,
    TrustDomain: i.trustDomain,
    SVIDPathTrimmed: i.svidPathTrimmed,
    URISanSelectors: i.sanSelectors,
    Subject: parseName(i.leaf.subject) as unknown as TemplateRecord,
    Issuer: parseName(i.leaf.issuer) as unknown as TemplateRecord,
    SerialNumber: BigInt(`0x${i.leaf.serialNumber.toString('hex')}`).toString(10),
    Version: i.leaf.version,
    DNSNames: i.leaf.dnsSans,
    EmailAddresses: i.leaf.emailSans,
  };
}
