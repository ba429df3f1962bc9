/**
 * @module spiffe/x509/asn1-lazy
 *
 * @peculiar's ASN.1 schema packages, loaded on first use rather than at import: they cost
 * ~100 ms and several MiB to load, and the strict DER reader handles every common shape, so
 * only the rare ones (a nameConstraints extension, a CSR with unusual attributes) need them.
 * A CLI call or an agent that never meets such a shape never loads them (issue 18).
 * The packages have no ESM build of their own (`main` is CommonJS), so `require` loads the
 * very module instances an `import` would.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

type AsnSchema = typeof import('@peculiar/asn1-schema');
type AsnX509 = typeof import('@peculiar/asn1-x509');
type AsnCsr = typeof import('@peculiar/asn1-csr');

let schema: AsnSchema | undefined;
let x509: AsnX509 | undefined;
let csr: AsnCsr | undefined;

export function asnSchema(): AsnSchema {
  schema ??= require('@peculiar/asn1-schema') as AsnSchema;
  return schema;
}

export function asnX509(): AsnX509 {
  x509 ??= require('@peculiar/asn1-x509') as AsnX509;
  return x509;
}

export function asnCsr(): AsnCsr {
  csr ??= require('@peculiar/asn1-csr') as AsnCsr;
  return csr;
}
