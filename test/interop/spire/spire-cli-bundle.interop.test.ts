/**
 * SPIRE v1.13.3's own `spire-server` CLI, unchanged, against Mayfly's admin socket (issue
 * 14): `bundle show|list|set|delete|count`, `x509 mint`, `jwt mint`, `localauthority
 * x509|jwt show|prepare|activate|taint|revoke` (`federation …`: spire-cli-federation).
 * Each is checked against what Mayfly's own CLI (`bin/mayfly-server.js`,
 * from dist/) reports on the same server, and minted SVIDs against verifiers we did not
 * write (`openssl verify`, jose) as well as ours. Hostile requests SPIRE's CLI never sends
 * go through a bare grpc-js client of SPIRE's protos; every refusal carries SPIRE's code
 * and message (pkg/server/api/{bundle,svid,localauthority,trustdomain}/v1 at v1.13.3).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bundle } from '../../../src/spiffe/bundle/bundle.js';
import { parseBundle } from '../../../src/spiffe/bundle/parse.js';
import { TrustDomain } from '../../../src/spiffe/id.js';
import { validateJwtSvid } from '../../../src/spiffe/jwt/validate.js';
import { createCsr } from '../../../src/spiffe/x509/csr.js';
import { parseCertificate } from '../../../src/spiffe/x509/parse.js';
import { parsePemCertificates, pemEncodeCertificates } from '../../../src/spiffe/x509/pem.js';
import { makeTestCa } from '../../../src/spiffe/x509/testing.js';
import { verifyX509Svid } from '../../../src/spiffe/x509/verify.js';
import { runProcess, startMayfly, type MayflyDeployment } from '../harness.js';
import { spireBinary } from './bin.js';
import { spireServerCli, waitFor } from './peers.js';
import { rawSpireClient, rawSpireClientTcp, type RawSpireClient } from './spire-raw-client.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MAYFLY = join(ROOT, 'bin', 'mayfly-server.js');
const TD = 'mayfly.test';
const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;
const ALREADY_EXISTS = 6;
const FAILED_PRECONDITION = 9;
const PERMISSION_DENIED = 7;
const UNAUTHENTICATED = 16;

let dep: MayflyDeployment;
let sock: string;
let dir: string;
let raw: RawSpireClient;

const spire = (args: string[], input?: string) => spireServerCli(sock, args, input);
const mayfly = (args: string[], input?: string) => runProcess(process.execPath, [MAYFLY, ...args, '-socketPath', sock], input === undefined ? {} : { input });
async function ok(p: Promise<{ code: number | null; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}
async function fails(p: Promise<{ code: number | null; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  expect(r.code, r.stdout).not.toBe(0);
  return r.stderr;
}

/** A SPIFFE bundle document's keys, comparable whoever printed them. */
function keysOf(json: string): string[] {
  const doc = JSON.parse(json) as { keys?: Record<string, unknown>[] };
  return (doc.keys ?? []).map((k) => JSON.stringify([k.use, k.kid ?? '', k.x5c ?? [], k.x ?? k.n, k.y ?? k.e])).sort();
}

interface Slots {
  active?: string;
  prepared?: string;
  old?: string;
}
/** The authority IDs of `localauthority … show` (SPIRE's or Mayfly's wording of it). */
function slotsOf(out: string): Slots {
  const s: Slots = {};
  for (const [label, key] of [['Active', 'active'], ['Prepared', 'prepared'], ['Old', 'old']] as const) {
    const m = new RegExp(`${label} [^\\n]* authority:\\n\\s+Authority ID\\s*:\\s+(\\S+)`).exec(out);
    if (m?.[1] !== undefined) s[key] = m[1];
  }
  return s;
}
const skiOf = (der: Buffer): string => Buffer.from(parseCertificate(der).subjectKeyId as Buffer).toString('hex');

beforeAll(async () => {
  spireBinary('spire-server');
  dep = await startMayfly({ trustDomain: TD, defaultEntryPath: null });
  sock = join(dep.workDir, 'server', 'admin', 'admin.sock');
  dir = mkdtempSync(join(tmpdir(), 'mayfly-spire-cli-bundle-'));
  raw = rawSpireClient(sock);
});

afterAll(async () => {
  raw?.close();
  await dep?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('spire-server bundle against mayfly-server', () => {
  const peer = makeTestCa({ trustDomain: 'peer.test' });
  const peerPem = pemEncodeCertificates([peer.certificate]);

  it('show prints the certificates and the SPIFFE bundle document mayfly-server bundle show prints', async () => {
    const pem = await ok(spire(['bundle', 'show']));
    expect(pem).toBe(await ok(mayfly(['bundle', 'show'])));
    expect(parsePemCertificates(pem).map((c) => c.toString('base64'))).toEqual(dep.server.ca.getBundle().x509Authorities.map((c) => c.toString('base64')));
    const doc = await ok(spire(['bundle', 'show', '-format', 'spiffe']));
    const ours = await ok(mayfly(['bundle', 'show', '-format', 'spiffe']));
    expect(keysOf(doc)).toEqual(keysOf(ours));
    expect(keysOf(doc).some((k) => k.startsWith('["jwt-svid"'))).toBe(true);
    expect(JSON.parse(doc).spiffe_sequence).toBe(JSON.parse(ours).spiffe_sequence);
    expect(await ok(spire(['bundle', 'count']))).toBe(await ok(mayfly(['bundle', 'count'])));
    // JWT authorities carry their expiry, as SPIRE's do; an output mask keeps only what it names.
    const full = await raw.call<{ jwt_authorities: { expires_at: number }[]; sequence_number: number }>('Bundle', 'GetBundle', {});
    expect(full.jwt_authorities.every((k) => k.expires_at > Date.now() / 1000)).toBe(true);
    expect(full.sequence_number).toBeGreaterThan(0);
    const masked = await raw.call<{ x509_authorities: unknown[]; jwt_authorities: unknown[]; sequence_number: number; trust_domain: string }>('Bundle', 'GetBundle', { output_mask: { x509_authorities: true } });
    expect(masked).toMatchObject({ trust_domain: TD, jwt_authorities: [], sequence_number: 0 });
    expect(masked.x509_authorities.length).toBeGreaterThan(0);
  });

  it('set (pem and spiffe) through SPIRE is what both CLIs list', async () => {
    expect(await ok(spire(['bundle', 'set', '-id', 'spiffe://peer.test'], peerPem))).toBe('bundle set.\n');
    expect(await ok(mayfly(['bundle', 'list', '-id', 'spiffe://peer.test']))).toBe(peerPem);
    expect(await ok(spire(['bundle', 'list', '-id', 'spiffe://peer.test']))).toBe(peerPem);

    const peer2 = makeTestCa({ trustDomain: 'peer2.test' });
    const jwtKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const doc = new Bundle({ trustDomain: TrustDomain.parse('peer2.test'), x509Authorities: [peer2.certificate], jwtAuthorities: new Map([['peer2-key', jwtKey]]), refreshHintSeconds: 300, sequence: 5 }).toJson();
    expect(await ok(spire(['bundle', 'set', '-format', 'spiffe', '-id', 'spiffe://peer2.test'], doc))).toBe('bundle set.\n');
    const theirs = await ok(spire(['bundle', 'list', '-id', 'spiffe://peer2.test', '-format', 'spiffe']));
    expect(keysOf(theirs)).toEqual(keysOf(doc));
    expect(keysOf(await ok(mayfly(['bundle', 'list', '-id', 'spiffe://peer2.test', '-format', 'spiffe'])))).toEqual(keysOf(doc));
    expect(JSON.parse(theirs)).toMatchObject({ spiffe_refresh_hint: 300, spiffe_sequence: 5 });

    const listed = await ok(spire(['bundle', 'list']));
    expect(listed).toBe(await ok(mayfly(['bundle', 'list'])));
    expect(listed).toContain(`****************************************\n* peer.test\n****************************************\n${peerPem}`);
    expect(await ok(spire(['bundle', 'count']))).toBe('3 bundles\n');
    expect(await ok(mayfly(['bundle', 'count']))).toBe('3 bundles\n');
  });

  it("refuses our own trust domain and bundle data SPIRE's API refuses, with SPIRE's words", async () => {
    expect(await fails(spire(['bundle', 'set', '-id', `spiffe://${TD}`], peerPem))).toContain("failed to set federated bundle: setting a federated bundle for the server's own trust domain is not allowed");
    const set = async (bundle: object) => (await raw.call<{ results: { status: { code: number; message: string } }[] }>('Bundle', 'BatchSetFederatedBundle', { bundle: [bundle] })).results[0]?.status;
    expect(await set({ trust_domain: 'bad.test', x509_authorities: [{ asn1: Buffer.from('not DER') }] })).toMatchObject({ code: INVALID_ARGUMENT, message: expect.stringMatching(/^failed to convert bundle: unable to parse X\.509 authority: /) });
    const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    expect(await set({ trust_domain: 'bad.test', jwt_authorities: [{ public_key: spki, key_id: '' }] })).toEqual({ code: INVALID_ARGUMENT, message: 'failed to convert bundle: unable to parse JWT authority: missing key ID' });
    expect(await set({ trust_domain: 'Not A Domain' })).toMatchObject({ code: INVALID_ARGUMENT, message: expect.stringMatching(/^trust domain argument is not valid: /) });
    expect(await raw.fail('Bundle', 'GetFederatedBundle', { trust_domain: TD })).toEqual({ code: INVALID_ARGUMENT, details: "getting a federated bundle for the server's own trust domain is not allowed" });
    expect(await raw.fail('Bundle', 'GetFederatedBundle', { trust_domain: 'nobody.test' })).toEqual({ code: NOT_FOUND, details: 'bundle not found' });

    const created = await raw.call<{ results: { status: { code: number; message: string } }[] }>('Bundle', 'BatchCreateFederatedBundle', { bundle: [{ trust_domain: 'peer.test', x509_authorities: [{ asn1: peer.certificate }] }] });
    expect(created.results[0]?.status).toEqual({ code: ALREADY_EXISTS, message: 'bundle already exists' });
    const missing = await raw.call<{ results: { status: { code: number; message: string } }[] }>('Bundle', 'BatchUpdateFederatedBundle', { bundle: [{ trust_domain: 'nobody.test' }] });
    expect(missing.results[0]?.status).toEqual({ code: NOT_FOUND, message: 'bundle not found' });
    const masked = await raw.call<{ results: { status: { code: number }; bundle: { refresh_hint: number; x509_authorities: unknown[] } }[] }>('Bundle', 'BatchUpdateFederatedBundle', {
      bundle: [{ trust_domain: 'peer2.test', refresh_hint: 60 }],
      input_mask: { refresh_hint: true },
    });
    expect(masked.results[0]).toMatchObject({ status: { code: 0 }, bundle: { refresh_hint: 60 } });
    expect(masked.results[0]?.bundle.x509_authorities).toHaveLength(1);

    const page1 = await raw.call<{ bundles: { trust_domain: string }[]; next_page_token: string }>('Bundle', 'ListFederatedBundles', { page_size: 1 });
    expect(page1.bundles.map((b) => b.trust_domain)).toEqual(['peer.test']);
    const page2 = await raw.call<{ bundles: { trust_domain: string }[]; next_page_token: string }>('Bundle', 'ListFederatedBundles', { page_size: 1, page_token: page1.next_page_token });
    expect(page2).toMatchObject({ bundles: [{ trust_domain: 'peer2.test' }], next_page_token: '' });
    expect(await raw.fail('Bundle', 'BatchDeleteFederatedBundle', { trust_domains: ['peer.test'], mode: 7 })).toEqual({ code: INVALID_ARGUMENT, details: 'failed to parse deletion mode: unhandled delete mode "7"' });
  });

  it('delete: RESTRICT refuses while an entry federates with the bundle, DISSOCIATE and DELETE as SPIRE', async () => {
    const entryId = await dep.createEntry(`spiffe://${TD}/federating`, ['unix:uid:4242'], { federatesWith: ['peer.test'], wait: false });
    expect(await fails(spire(['bundle', 'delete', '-id', 'spiffe://peer.test']))).toContain(
      'failed to delete federated bundle "spiffe://peer.test": failed to delete federated bundle: datastore-sql: cannot delete bundle; federated with 1 registration entries',
    );
    const restrict = await raw.call<{ results: { status: { code: number } }[] }>('Bundle', 'BatchDeleteFederatedBundle', { trust_domains: ['peer.test'] });
    expect(restrict.results[0]?.status.code).toBe(FAILED_PRECONDITION);
    expect(await ok(mayfly(['bundle', 'list', '-id', 'spiffe://peer.test']))).toBe(peerPem);

    expect(await ok(spire(['bundle', 'delete', '-id', 'spiffe://peer.test', '-mode', 'dissociate']))).toBe('bundle deleted.\n');
    expect((await dep.server.datastore.getEntry(entryId))?.federatesWith).toEqual([]);
    await fails(mayfly(['bundle', 'list', '-id', 'spiffe://peer.test']));

    await ok(spire(['bundle', 'set', '-id', 'spiffe://peer.test'], peerPem));
    const doomed = await dep.createEntry(`spiffe://${TD}/doomed`, ['unix:uid:4243'], { federatesWith: ['peer.test'], wait: false });
    expect(await ok(spire(['bundle', 'delete', '-id', 'spiffe://peer.test', '-mode', 'delete']))).toBe('bundle deleted.\n');
    expect(await dep.server.datastore.getEntry(doomed)).toBeUndefined();
    expect(await dep.server.datastore.getEntry(entryId)).toBeDefined();
    expect(await ok(mayfly(['bundle', 'count']))).toBe('2 bundles\n');

    expect(await fails(spire(['bundle', 'delete', '-id', `spiffe://${TD}`]))).toContain('removing the bundle for the server trust domain is not allowed');
    expect(await fails(spire(['bundle', 'delete', '-id', 'spiffe://peer.test']))).toContain('failed to delete federated bundle "spiffe://peer.test": bundle not found');
  });
});

describe('spire-server x509 mint and jwt mint against mayfly-server', () => {
  it('x509 mint -write: the chain verifies against the bundle it wrote (ours, openssl) and that bundle is bundle show', async () => {
    const out = join(dir, 'x509');
    mkdirSync(out);
    const before = Date.now();
    const printed = await ok(spire(['x509', 'mint', '-spiffeID', `spiffe://${TD}/minted`, '-dns', 'minted.example.org', '-ttl', '10m', '-write', out]));
    const after = Date.now();
    expect(printed).toBe(`X509-SVID written to ${out}/svid.pem\nPrivate key written to ${out}/key.pem\nRoot CAs written to ${out}/bundle.pem\n`);
    const chain = parsePemCertificates(readFileSync(join(out, 'svid.pem'), 'utf8'));
    const roots = readFileSync(join(out, 'bundle.pem'), 'utf8');
    expect(roots).toBe(await ok(mayfly(['bundle', 'show'])));
    const verified = verifyX509Svid(chain, { trustDomain: TrustDomain.parse(TD), x509Authorities: parsePemCertificates(roots) });
    expect(verified.spiffeId.toString()).toBe(`spiffe://${TD}/minted`);
    const leaf = parseCertificate(chain[0] as Buffer);
    expect(leaf.dnsSans).toEqual(['minted.example.org']);
    expect(leaf.notAfter.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 600_000 - 1000);
    expect(leaf.notAfter.getTime()).toBeLessThanOrEqual(after + 600_000);
    const key = createPublicKey(createPrivateKey(readFileSync(join(out, 'key.pem'), 'utf8'))).export({ type: 'spki', format: 'der' });
    expect(key.equals(leaf.spki)).toBe(true);
    const openssl = await runProcess('openssl', ['verify', '-CAfile', join(out, 'bundle.pem'), '-untrusted', join(out, 'svid.pem'), join(out, 'svid.pem')]);
    expect(openssl.stdout + openssl.stderr).toContain(': OK');

    // Mayfly's own x509 mint, same ID: same issuer.
    const ours = join(dir, 'x509-ours');
    await ok(mayfly(['x509', 'mint', '-spiffeID', `spiffe://${TD}/minted`, '-write', ours]));
    const ourLeaf = parseCertificate(parsePemCertificates(readFileSync(join(ours, 'svid.pem'), 'utf8'))[0] as Buffer);
    expect(ourLeaf.uriSans).toEqual(leaf.uriSans);
    expect(ourLeaf.authorityKeyId?.equals(leaf.authorityKeyId as Buffer)).toBe(true);
  });

  it("x509 mint refuses another trust domain and the reserved namespace; a negative TTL means the server's default, as in SPIRE", async () => {
    expect(await fails(spire(['x509', 'mint', '-spiffeID', 'spiffe://other.test/w']))).toContain(
      `unable to mint SVID: rpc error: code = InvalidArgument desc = CSR URI SAN is invalid: "spiffe://other.test/w" is not a member of trust domain "${TD}"`,
    );
    expect(await fails(spire(['x509', 'mint', '-spiffeID', `spiffe://${TD}/spire/agent/x`]))).toContain('path is in the reserved namespace');
    const out = join(dir, 'x509-negative');
    mkdirSync(out);
    const before = Date.now();
    await ok(spire(['x509', 'mint', '-spiffeID', `spiffe://${TD}/negative`, '-ttl', '-1h', '-write', out]));
    const leaf = parseCertificate(parsePemCertificates(readFileSync(join(out, 'svid.pem'), 'utf8'))[0] as Buffer);
    expect(leaf.notAfter.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 3600_000 - 1000);
    // A TTL beyond the CA's lifetime is capped at it, and SPIRE's CLI says so.
    const long = await spire(['x509', 'mint', '-spiffeID', `spiffe://${TD}/long`, '-ttl', '100000h']);
    expect(long.code, long.stderr).toBe(0);
    expect(long.stderr).toContain('X509-SVID lifetime was capped shorter than specified ttl');
  });

  it('MintX509SVID refuses a CSR whose key does not sign it, a corrupt one, one without a URI SAN, an empty and a malformed one', async () => {
    const a = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const b = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const uri = `spiffe://${TD}/hostile`;
    const csrB = createCsr({ privateKey: b.privateKey, uri });
    const spkiA = a.publicKey.export({ type: 'spki', format: 'der' });
    const spkiB = b.publicKey.export({ type: 'spki', format: 'der' });
    const at = csrB.indexOf(spkiB);
    expect(at).toBeGreaterThan(0);
    const mismatched = Buffer.concat([csrB.subarray(0, at), spkiA, csrB.subarray(at + spkiB.length)]);
    for (const csr of [mismatched, createCsr({ privateKey: a.privateKey, uri, corruptSignature: true })]) {
      const e = await raw.fail('SVID', 'MintX509SVID', { csr });
      expect(e.code).toBe(INVALID_ARGUMENT);
      expect(e.details).toMatch(/^failed to verify CSR signature: /);
    }
    expect(await raw.fail('SVID', 'MintX509SVID', { csr: createCsr({ privateKey: a.privateKey }) })).toEqual({ code: INVALID_ARGUMENT, details: 'CSR URI SAN is required' });
    expect(await raw.fail('SVID', 'MintX509SVID', { csr: Buffer.alloc(0) })).toEqual({ code: INVALID_ARGUMENT, details: 'missing CSR' });
    expect((await raw.fail('SVID', 'MintX509SVID', { csr: Buffer.from('junk') })).details).toMatch(/^malformed CSR: /);
    const res = await raw.call<{ svid: { id: { trust_domain: string; path: string }; expires_at: number; cert_chain: Buffer[] } }>('SVID', 'MintX509SVID', {
      csr: createCsr({ privateKey: a.privateKey, uri }),
      ttl: -5,
    });
    expect(res.svid.id).toEqual({ trust_domain: TD, path: '/hostile' });
    expect(res.svid.expires_at).toBe(Math.floor(parseCertificate(res.svid.cert_chain[0] as Buffer).notAfter.getTime() / 1000));
  });

  it('jwt mint: the token verifies against the JWKS bundle show -format spiffe prints (jose and ours)', async () => {
    const token = (await ok(spire(['jwt', 'mint', '-spiffeID', `spiffe://${TD}/jwt`, '-audience', 'aud-1', '-audience', 'aud-2', '-ttl', '2m']))).trim();
    const doc = await ok(spire(['bundle', 'show', '-format', 'spiffe']));
    const keys = (JSON.parse(doc) as { keys: Record<string, unknown>[] }).keys.filter((k) => k.use === 'jwt-svid').map(({ use: _use, ...k }) => k);
    const { payload } = await jwtVerify(token, createLocalJWKSet({ keys }), { audience: 'aud-1' });
    expect(payload.sub).toBe(`spiffe://${TD}/jwt`);
    expect((payload.exp as number) - (payload.iat as number)).toBe(120);
    const svid = validateJwtSvid(token, { audience: 'aud-2', bundles: parseBundle(doc, TrustDomain.parse(TD)) });
    expect(svid.spiffeId.toString()).toBe(`spiffe://${TD}/jwt`);
    const mine = (await ok(mayfly(['jwt', 'mint', '-spiffeID', `spiffe://${TD}/jwt`, '-audience', 'aud-1']))).trim();
    await jwtVerify(mine, createLocalJWKSet({ keys }), { audience: 'aud-1' });
  });

  it("jwt mint refuses another trust domain and no audience; a negative TTL means the server's default", async () => {
    expect(await fails(spire(['jwt', 'mint', '-spiffeID', 'spiffe://other.test/x', '-audience', 'a']))).toContain(
      `unable to mint SVID: rpc error: code = InvalidArgument desc = invalid SPIFFE ID: "spiffe://other.test/x" is not a member of trust domain "${TD}"`,
    );
    expect(await raw.fail('SVID', 'MintJWTSVID', { id: { trust_domain: TD, path: '/x' }, audience: [] })).toEqual({ code: INVALID_ARGUMENT, details: 'at least one audience is required' });
    expect(await raw.fail('SVID', 'MintJWTSVID', { audience: ['a'] })).toEqual({ code: INVALID_ARGUMENT, details: 'invalid SPIFFE ID: request must specify SPIFFE ID' });
    const res = await raw.call<{ svid: { expires_at: number; issued_at: number; id: unknown } }>('SVID', 'MintJWTSVID', { id: { trust_domain: TD, path: '/x' }, audience: ['a'], ttl: -5 });
    expect(res.svid.expires_at - res.svid.issued_at).toBe(300);
    expect(res.svid.id).toEqual({ trust_domain: TD, path: '/x' });
  });
});

describe('spire-server localauthority against mayfly-server', () => {
  for (const [kind, name, code] of [
    ['x509', 'X.509', 'root CA'],
    ['jwt', 'JWT', 'key'],
  ] as const) {
    it(`${kind}: prepare, activate, taint and revoke through SPIRE's CLI, as mayfly-server shows them`, async () => {
      const show = async () => {
        const theirs = slotsOf(await ok(spire(['localauthority', kind, 'show'])));
        expect(theirs).toEqual(slotsOf(await ok(mayfly(['localauthority', kind, 'show']))));
        return theirs;
      };
      const first = (await show()).active as string;
      expect(first).toBeDefined();
      const prepared = slotsOf(await ok(spire(['localauthority', kind, 'prepare']))).prepared as string;
      expect((await show()).prepared).toBe(prepared);

      expect(await fails(spire(['localauthority', kind, 'activate', '-authorityID', 'no-such-authority']))).toContain(
        `could not activate ${name} authority: rpc error: code = InvalidArgument desc = unexpected authority ID`,
      );
      expect(await ok(spire(['localauthority', kind, 'activate', '-authorityID', prepared]))).toMatch(new RegExp(`^Activated ${name} authority:\\n  Authority ID: ${prepared}\\n`));
      expect(await show()).toMatchObject({ active: prepared, old: first });

      expect(await fails(spire(['localauthority', kind, 'taint', '-authorityID', prepared]))).toContain('unable to taint current local authority');
      expect(await fails(spire(['localauthority', kind, 'revoke', '-authorityID', first]))).toContain(
        `could not revoke ${name} authority: rpc error: code = Internal desc = failed to revoke ${name} authority: it is not possible to revoke an untainted ${code}`,
      );
      expect(await ok(spire(['localauthority', kind, 'taint', '-authorityID', first]))).toMatch(new RegExp(`^Tainted ${name} authority:\\n  Authority ID: ${first}\\n`));
      const bundle = await raw.call<{ x509_authorities: { asn1: Buffer; tainted: boolean }[]; jwt_authorities: { key_id: string; tainted: boolean }[] }>('Bundle', 'GetBundle', {});
      const taintedIds = kind === 'x509' ? bundle.x509_authorities.filter((a) => a.tainted).map((a) => skiOf(a.asn1)) : bundle.jwt_authorities.filter((a) => a.tainted).map((a) => a.key_id);
      expect(taintedIds).toEqual([first]);
      expect(await fails(spire(['localauthority', kind, 'taint', '-authorityID', first]))).toContain(`failed to taint ${name} authority: ${code} is already tainted`);

      expect(await ok(spire(['localauthority', kind, 'revoke', '-authorityID', first]))).toMatch(new RegExp(`^Revoked ${name} authority:\\n  Authority ID: ${first}\\n`));
      const shown = await ok(mayfly(['bundle', 'show', '-format', 'spiffe']));
      const after = await raw.call<{ x509_authorities: { asn1: Buffer }[]; jwt_authorities: { key_id: string }[] }>('Bundle', 'GetBundle', {});
      if (kind === 'x509') expect(after.x509_authorities.map((a) => skiOf(a.asn1))).not.toContain(first);
      else expect(after.jwt_authorities.map((a) => a.key_id)).not.toContain(first);
      expect(keysOf(await ok(spire(['bundle', 'show', '-format', 'spiffe'])))).toEqual(keysOf(shown));
    });
  }
});

describe('the same RPCs on the TCP port', () => {
  it('refuse a caller without an admin SVID before anything is read or written; GetBundle stays public, as in SPIRE', async () => {
    const tcp = rawSpireClientTcp(`127.0.0.1:${dep.server.port}`, Buffer.from(await ok(mayfly(['bundle', 'show']))));
    try {
      expect((await tcp.call<{ trust_domain: string }>('Bundle', 'GetBundle', {})).trust_domain).toBe(TD);
      const stranger = makeTestCa({ trustDomain: 'tcp.test' });
      const calls: [Parameters<RawSpireClient['fail']>[0], string, object][] = [
        ['Bundle', 'CountBundles', {}],
        ['Bundle', 'GetFederatedBundle', { trust_domain: 'peer2.test' }],
        ['Bundle', 'BatchSetFederatedBundle', { bundle: [{ trust_domain: 'tcp.test', x509_authorities: [{ asn1: stranger.certificate }] }] }],
        ['Bundle', 'AppendBundle', { x509_authorities: [{ asn1: stranger.certificate }] }],
        ['SVID', 'MintJWTSVID', { id: { trust_domain: TD, path: '/tcp' }, audience: ['a'] }],
        ['LocalAuthority', 'PrepareX509Authority', {}],
        ['TrustDomain', 'ListFederationRelationships', {}],
      ];
      for (const [service, method, req] of calls) expect([PERMISSION_DENIED, UNAUTHENTICATED], `${service}.${method}`).toContain((await tcp.fail(service, method, req)).code);
      expect(await dep.server.datastore.getBundle('tcp.test')).toBeUndefined();
      expect(parsePemCertificates(await ok(mayfly(['bundle', 'show']))).some((c) => c.equals(stranger.certificate))).toBe(false);
    } finally {
      tcp.close();
    }
  });

  it('let an attested agent read federated bundles (as spire-agent does) and nothing an admin may do', async () => {
    const svid = dep.agent.agentSvid;
    expect(svid).toBeDefined();
    const agent = rawSpireClientTcp(`127.0.0.1:${dep.server.port}`, Buffer.from(await ok(mayfly(['bundle', 'show']))), svid);
    try {
      expect(await agent.call('Bundle', 'GetFederatedBundle', { trust_domain: 'peer2.test' })).toMatchObject({ trust_domain: 'peer2.test' });
      expect(await agent.fail('Bundle', 'GetFederatedBundle', { trust_domain: 'nobody.test' })).toEqual({ code: NOT_FOUND, details: 'bundle not found' });
      for (const [service, method, req] of [
        ['Bundle', 'CountBundles', {}],
        ['Bundle', 'BatchDeleteFederatedBundle', { trust_domains: ['peer2.test'] }],
        ['SVID', 'MintX509SVID', { csr: Buffer.alloc(0) }],
        ['LocalAuthority', 'GetJWTAuthorityState', {}],
      ] as const) {
        expect((await agent.fail(service, method, req)).code, `${service}.${method}`).toBe(PERMISSION_DENIED);
      }
      expect(await ok(mayfly(['bundle', 'list', '-id', 'spiffe://peer2.test']))).not.toBe('');
    } finally {
      agent.close();
    }
  });
});

describe('AppendBundle against mayfly-server', () => {
  it("adds an authority to our own bundle, which both CLIs then show; refuses an empty request and bad data with SPIRE's words", async () => {
    expect(await raw.fail('Bundle', 'AppendBundle', {})).toEqual({ code: INVALID_ARGUMENT, details: 'no authorities to append' });
    expect((await raw.fail('Bundle', 'AppendBundle', { x509_authorities: [{ asn1: Buffer.from('junk') }] })).details).toMatch(/^failed to convert X\.509 authority: /);
    const extra = makeTestCa({ trustDomain: TD });
    const res = await raw.call<{ trust_domain: string; x509_authorities: { asn1: Buffer }[] }>('Bundle', 'AppendBundle', { x509_authorities: [{ asn1: extra.certificate }] });
    expect(res.trust_domain).toBe(TD);
    expect(res.x509_authorities.some((a) => a.asn1.equals(extra.certificate))).toBe(true);
    await waitFor('the appended authority in bundle show', async () => parsePemCertificates((await spire(['bundle', 'show'])).stdout).some((c) => c.equals(extra.certificate)));
    expect(await ok(spire(['bundle', 'show']))).toBe(await ok(mayfly(['bundle', 'show'])));
  });
});
