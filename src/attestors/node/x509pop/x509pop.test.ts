import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isMayflyError } from '../../../spiffe/errors.js';
import { TrustDomain } from '../../../spiffe/id.js';
import { generateKeyPair, type KeyType } from '../../../spiffe/keys.js';
import { pemEncodeCertificates } from '../../../spiffe/x509/pem.js';
import { makeHostileCert } from '../../../spiffe/x509/testing.js';
import type { NodeAttestationContext } from '../attestor.js';
import { X509PopAgentAttestor } from './agent.js';
import { parseX509PopAgentPluginData, parseX509PopServerPluginData } from './config.js';
import { decodeChallenge, encodeAttestationData, encodeResponse, NONCE_LEN } from './pop.js';
import { answerWith, evidenceOf, makeNodePki, writeNodeFiles, type IssuedCert, type NodePki } from './testing.js';
import { X509PopAttestor } from './x509pop.js';

const TD = TrustDomain.parse('example.org');
const sha1 = (der: Uint8Array): string => createHash('sha1').update(der).digest('hex');
const dir = mkdtempSync(join(tmpdir(), 'mayfly-x509pop-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ctxAnswering = (answer: (challenge: Uint8Array) => Promise<Uint8Array>, now = new Date()): NodeAttestationContext => ({ trustDomain: TD, now, challenge: answer });
const ctxFor = (node: IssuedCert, now?: Date): NodeAttestationContext => ctxAnswering((c) => answerWith(node.key, c), now);

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    if (isMayflyError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('accepted');
}

const pkis: Record<'ec' | 'rsa', NodePki> = { ec: makeNodePki({ keyType: 'ec-p256', name: 'EC' }), rsa: makeNodePki({ keyType: 'rsa-2048', name: 'RSA' }) };
const attestorFor = (pki: NodePki, extra: { agentPathTemplate?: string } = {}): X509PopAttestor => new X509PopAttestor({ caCertificates: [pki.root.certificate], ...extra });

describe('x509pop attestation', () => {
  for (const [label, keyType] of [['RSA', 'rsa-2048'], ['EC P-256', 'ec-p256'], ['EC P-384', 'ec-p384']] as const) {
    it(`attests a ${label} node: agent ID from the leaf fingerprint, SPIRE's selectors`, async () => {
      const pki = keyType === 'rsa-2048' ? pkis.rsa : pkis.ec;
      const node = pki.node({ keyType: keyType as KeyType, commonName: 'node-7.dc1', uris: ['x509pop://example.org/datacenter/us-east-1', 'x509pop://other.org/zone/z', 'spiffe://example.org/x'] });
      const challenges: Buffer[] = [];
      const res = await attestorFor(pki).attest(evidenceOf(pki, node), ctxAnswering(async (c) => {
        challenges.push(Buffer.from(c));
        return answerWith(node.key, c);
      }));
      expect(res.agentId.toString()).toBe(`spiffe://example.org/spire/agent/x509pop/${sha1(node.certificate)}`);
      expect(res.canReattest).toBe(true);
      const serialHex = (await import('../../../spiffe/x509/parse.js')).parseCertificate(node.certificate).serialNumber.toString('hex');
      expect(res.selectors.map((s) => `${s.type}:${s.value}`)).toEqual([
        'x509pop:subject:cn:node-7.dc1',
        `x509pop:ca:fingerprint:${sha1(pki.intermediate.certificate)}`,
        `x509pop:ca:fingerprint:${sha1(pki.root.certificate)}`,
        `x509pop:serialnumber:${serialHex}`,
        'x509pop:san:datacenter:us-east-1',
      ]);
      // One challenge, shaped as SPIRE's: only the member for the key's algorithm, a 32-byte nonce.
      expect(challenges).toHaveLength(1);
      const json = JSON.parse(challenges[0]?.toString() ?? '') as Record<string, { nonce: string } | null>;
      const member = keyType === 'rsa-2048' ? 'rsa_signature' : 'ecdsa_signature';
      expect(Object.keys(json).sort()).toEqual(['ecdsa_signature', 'rsa_signature']);
      expect(Buffer.from(json[member]?.nonce ?? '', 'base64')).toHaveLength(NONCE_LEN);
      expect(json[member === 'rsa_signature' ? 'ecdsa_signature' : 'rsa_signature']).toBeNull();
    });
  }

  it('sends a fresh nonce for every attestation', async () => {
    const node = pkis.ec.node();
    const nonces = new Set<string>();
    const a = attestorFor(pkis.ec);
    for (let i = 0; i < 5; i++) {
      await a.attest(evidenceOf(pkis.ec, node), ctxAnswering(async (c) => {
        nonces.add(decodeChallenge(c).nonce.toString('hex'));
        return answerWith(node.key, c);
      }));
    }
    expect(nonces.size).toBe(5);
  });

  it('honours agent_path_template with SPIRE\'s values', async () => {
    const node = pkis.ec.node({ commonName: 'web-3', uris: ['x509pop://example.org/rack/r12'] });
    const tmpl = '/{{ .PluginName }}/{{ .TrustDomain }}/{{ .Subject.CommonName | upper }}/{{ .URISanSelectors.rack }}/{{ .SerialNumberHex }}/{{- .Issuer.CommonName | replace " " "_" -}}';
    const res = await attestorFor(pkis.ec, { agentPathTemplate: tmpl }).attest(evidenceOf(pkis.ec, node), ctxFor(node));
    const serialHex = (await import('../../../spiffe/x509/parse.js')).parseCertificate(node.certificate).serialNumber.toString('hex');
    expect(res.agentId.path).toBe(`/spire/agent/x509pop/example.org/WEB-3/r12/${serialHex}/EC_Intermediate_CA`);
  });

  it('refuses when the template names a value the certificate does not have (missingkey=error)', async () => {
    const node = pkis.ec.node();
    const r = await refusal(attestorFor(pkis.ec, { agentPathTemplate: '/x/{{ .URISanSelectors.rack }}' }).attest(evidenceOf(pkis.ec, node), ctxFor(node)));
    expect(r.code).toBe('ERR_ATTESTATION_FAILED');
    expect(r.message).toMatch(/agent_path_template.*rack/);
  });

  it('accepts intermediates in any order and extra unrelated certificates', async () => {
    const node = pkis.rsa.node();
    const stranger = makeNodePki({ name: 'Unrelated' }).intermediate.certificate;
    const ev = encodeAttestationData([node.certificate, stranger, pkis.rsa.intermediate.certificate]);
    const res = await attestorFor(pkis.rsa).attest(ev, ctxFor(node));
    expect(res.agentId.path).toBe(`/spire/agent/x509pop/${sha1(node.certificate)}`);
  });
});

describe('x509pop refusals (SPIRE: PermissionDenied → ERR_ATTESTATION_FAILED, InvalidArgument → ERR_ATTESTATION_MALFORMED)', () => {
  const pki = pkis.ec;

  it('a certificate not chaining to the bundle', async () => {
    const other = makeNodePki({ name: 'Other' });
    const node = other.node();
    const r = await refusal(attestorFor(pki).attest(evidenceOf(other, node), ctxFor(node)));
    expect(r.code).toBe('ERR_ATTESTATION_FAILED');
    expect(r.message).toMatch(/certificate verification failed/);
  });

  it('a self-signed certificate naming the trusted intermediate as issuer', async () => {
    const key = generateKeyPair('ec-p256');
    const forged = makeHostileCert({ key, subject: { commonName: 'EC Intermediate CA', organization: 'Mayfly tests' } });
    const fake = makeHostileCert({ issuer: { certificate: forged.certificate, privateKey: key.privateKey }, subject: { commonName: 'evil' } });
    const r = await refusal(attestorFor(pki).attest(encodeAttestationData([fake.certificate, pki.intermediate.certificate]), ctxFor(fake)));
    expect(r.code).toBe('ERR_ATTESTATION_FAILED');
  });

  it('a chain padded with look-alike CA certificates: the search is bounded and refused', async () => {
    const key = generateKeyPair('ec-p256');
    const subject = { commonName: 'Look-alike CA' };
    // Fifteen CA certificates with one name and one key, each verifying every other: n! paths.
    const lookAlikes = Array.from({ length: 15 }, () => makeHostileCert({ key, isCA: true, subject }).certificate);
    const leaf = makeHostileCert({ issuer: { certificate: lookAlikes[0] as Buffer, privateKey: key.privateKey }, subject: { commonName: 'n' } });
    const r = await refusal(attestorFor(pki).attest(encodeAttestationData([leaf.certificate, ...lookAlikes]), ctxFor(leaf)));
    expect(r.code).toBe('ERR_ATTESTATION_FAILED');
    expect(r.message).toMatch(/gave up after 100 candidate issuers/);
  });

  it('an expired certificate, and one not yet valid', async () => {
    const expired = pki.node({ notBefore: new Date(Date.now() - 7_200_000), notAfter: new Date(Date.now() - 60_000) });
    const r1 = await refusal(attestorFor(pki).attest(evidenceOf(pki, expired), ctxFor(expired)));
    expect(r1).toMatchObject({ code: 'ERR_ATTESTATION_FAILED' });
    expect(r1.message).toMatch(/expired at/);
    const early = pki.node({ notBefore: new Date(Date.now() + 3_600_000), notAfter: new Date(Date.now() + 7_200_000) });
    expect((await refusal(attestorFor(pki).attest(evidenceOf(pki, early), ctxFor(early)))).message).toMatch(/not valid until/);
  });

  it('a good certificate answered by another key (stolen certificate, no key)', async () => {
    const node = pki.node();
    const thief = generateKeyPair('ec-p256');
    const r = await refusal(attestorFor(pki).attest(evidenceOf(pki, node), ctxAnswering((c) => answerWith(thief, c))));
    expect(r.code).toBe('ERR_ATTESTATION_FAILED');
    expect(r.message).toMatch(/challenge response verification failed/);
  });

  it('a replayed response (recorded from an earlier attestation)', async () => {
    const node = pkis.rsa.node();
    const a = attestorFor(pkis.rsa);
    let recorded: Uint8Array | undefined;
    await a.attest(evidenceOf(pkis.rsa, node), ctxAnswering(async (c) => (recorded = await answerWith(node.key, c))));
    const r = await refusal(a.attest(evidenceOf(pkis.rsa, node), ctxAnswering(async () => recorded as Uint8Array)));
    expect(r.code).toBe('ERR_ATTESTATION_FAILED');
    expect(r.message).toMatch(/signature verify failed/);
  });

  it('a response whose nonce was swapped after signing', async () => {
    const node = pki.node();
    const r = await refusal(attestorFor(pki).attest(evidenceOf(pki, node), ctxAnswering(async (c) => {
      const good = JSON.parse(Buffer.from(await answerWith(node.key, c)).toString()) as { ecdsa_signature: { nonce: string } };
      good.ecdsa_signature.nonce = Buffer.alloc(NONCE_LEN, 7).toString('base64');
      return Buffer.from(JSON.stringify(good));
    })));
    expect(r.code).toBe('ERR_ATTESTATION_FAILED');
  });

  it('an RSA-shaped answer to an ECDSA challenge (SPIRE: "expecting ECDSA response", PermissionDenied), and malformed responses', async () => {
    const node = pki.node();
    const rsaAnswer = encodeResponse({ kind: 'rsa', nonce: Buffer.alloc(NONCE_LEN), signature: Buffer.alloc(256) });
    expect((await refusal(attestorFor(pki).attest(evidenceOf(pki, node), ctxAnswering(async () => rsaAnswer)))).code).toBe('ERR_ATTESTATION_FAILED');
    // What Go's JSON decoder cannot read is InvalidArgument in SPIRE ...
    for (const junk of ['', 'nope', '[]', '"x"', '{"ecdsa_signature":"x"}', '{"ecdsa_signature":{"nonce":"not base64!","r":"","s":""}}', '{"ecdsa_signature":{"nonce":5}}']) {
      const r = await refusal(attestorFor(pki).attest(evidenceOf(pki, node), ctxAnswering(async () => Buffer.from(junk))));
      expect(r.code, junk).toBe('ERR_ATTESTATION_MALFORMED');
    }
    // ... a readable answer without the key's member, or with a short nonce, PermissionDenied.
    for (const junk of ['null', '{}', '{"ecdsa_signature":null}', '{"ecdsa_signature":{"nonce":"AAAA","r":"AQ==","s":"AQ=="}}']) {
      const r = await refusal(attestorFor(pki).attest(evidenceOf(pki, node), ctxAnswering(async () => Buffer.from(junk))));
      expect(r.code, junk).toBe('ERR_ATTESTATION_FAILED');
    }
  });

  it('malformed payloads', async () => {
    const node = pki.node();
    const cases: Record<string, Buffer> = {
      empty: Buffer.alloc(0),
      'not JSON': Buffer.from('certificates'),
      'no certificates': Buffer.from('{"certificates":[]}'),
      'certificates not a list': Buffer.from('{"certificates":"MII="}'),
      'not base64': Buffer.from('{"certificates":["%%%"]}'),
      'not DER': Buffer.from(JSON.stringify({ certificates: [Buffer.from('hello').toString('base64')] })),
      'bad intermediate': Buffer.from(JSON.stringify({ certificates: [node.certificate.toString('base64'), 'AAAA'] })),
    };
    for (const [what, payload] of Object.entries(cases)) {
      const r = await refusal(attestorFor(pki).attest(payload, ctxFor(node)));
      expect(r.code, what).toBe('ERR_ATTESTATION_MALFORMED');
    }
  });

  it('a leaf whose keyUsage lacks digitalSignature, and a transport that cannot carry the challenge', async () => {
    const noSign = pki.node({ keyUsage: [2] });
    expect((await refusal(attestorFor(pki).attest(evidenceOf(pki, noSign), ctxFor(noSign)))).message).toMatch(/digital signature/);
    const node = pki.node();
    const r = await refusal(attestorFor(pki).attest(evidenceOf(pki, node), { trustDomain: TD, now: new Date() }));
    expect(r.message).toMatch(/AttestAgent stream/);
  });
});

describe('x509pop spiffe mode', () => {
  it('chains to the server bundle, requires the SVID prefix and trims it into the agent path', async () => {
    const root = makeHostileCert({ key: generateKeyPair('ec-p256'), isCA: true, subject: { commonName: 'server CA' } });
    const issuer = { certificate: root.certificate, privateKey: root.key.privateKey };
    const a = new X509PopAttestor({ mode: 'spiffe', serverX509Authorities: async () => [root.certificate] });
    const good = makeHostileCert({ issuer, uris: ['spiffe://example.org/spire-exchange/host-9'] });
    const res = await a.attest(encodeAttestationData([good.certificate]), ctxFor(good));
    expect(res.agentId.toString()).toBe('spiffe://example.org/spire/agent/x509pop/host-9');
    const other = makeHostileCert({ issuer, uris: ['spiffe://example.org/other/host-9'] });
    expect((await refusal(a.attest(encodeAttestationData([other.certificate]), ctxFor(other)))).message).toMatch(/SVID prefix/);
  });
});

describe('x509pop plugin_data', () => {
  const bundle = join(dir, 'ca.pem');
  writeFileSync(bundle, pemEncodeCertificates([pkis.ec.root.certificate]));

  it('reads SPIRE\'s server keys and reports every problem', () => {
    expect(parseX509PopServerPluginData({ ca_bundle_path: bundle }, 'p').config?.caCertificates).toHaveLength(1);
    expect(parseX509PopServerPluginData({ ca_bundle_paths: [bundle, bundle] }, 'p').config?.caCertificates).toHaveLength(2);
    const bad = parseX509PopServerPluginData({ ca_bundle_path: bundle, ca_bundle_paths: [bundle], mode: 'x', agent_path_template: '{{ if .X }}', extra: 1 }, 'p').problems.join('\n');
    expect(bad).toMatch(/unknown key p.extra/);
    expect(bad).toMatch(/mode can only be either spiffe or external_pki/);
    expect(bad).toMatch(/agent_path_template/);
    expect(parseX509PopServerPluginData({}, 'p').problems.join()).toMatch(/one of ca_bundle_path or ca_bundle_paths must be configured/);
    expect(parseX509PopServerPluginData({ ca_bundle_path: join(dir, 'nope.pem') }, 'p').problems.join()).toMatch(/unable to load/);
    expect(parseX509PopServerPluginData({ mode: 'spiffe', ca_bundle_path: bundle }, 'p').problems.join()).toMatch(/can not use ca_bundle_path/);
    expect(parseX509PopServerPluginData({ mode: 'spiffe', svid_prefix: '/exchange' }, 'p').config?.spiffePrefix).toBe('/exchange');
  });

  it('reads SPIRE\'s agent keys; the agent sends leaf then intermediates and refuses a key of another certificate', async () => {
    expect(parseX509PopAgentPluginData({}, 'p').problems).toEqual(['p.private_key_path is required', 'p.certificate_path is required']);
    const node = pkis.ec.node();
    const paths = writeNodeFiles(dir, pkis.ec, node);
    const agent = new X509PopAgentAttestor({ privateKeyPath: paths.key, certificatePath: paths.cert, intermediatesPath: paths.intermediates });
    const data = await agent.attestationData();
    expect(JSON.parse(data.payload.toString())).toEqual({ certificates: [node.certificate.toString('base64'), pkis.ec.intermediate.certificate.toString('base64')] });
    const res = await attestorFor(pkis.ec).attest(data.payload, ctxAnswering((c) => agent.answerChallenge(c)));
    expect(res.agentId.path).toBe(`/spire/agent/x509pop/${sha1(node.certificate)}`);
    const other = writeNodeFiles(dir, pkis.ec, pkis.ec.node(), 'other');
    const mismatched = new X509PopAgentAttestor({ privateKeyPath: other.key, certificatePath: paths.cert });
    expect((await refusal(mismatched.attestationData())).message).toMatch(/does not belong to the certificate/);
  });
});
