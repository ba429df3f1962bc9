/**
 * @module attestors/node/x509pop/testing
 *
 * A node PKI made in the test (root CA → intermediate → node certificate, RSA or EC),
 * written as PEM files the way an operator provisions them, and the conformance fixtures of
 * `NodeAttestor "x509pop"` (server and agent side). Not for production use.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { exportPkcs8Pem, generateKeyPair, type KeyPair, type KeyType } from '../../../spiffe/keys.js';
import { pemEncodeCertificates } from '../../../spiffe/x509/pem.js';
import { makeHostileCert, type HostileCertOptions } from '../../../spiffe/x509/testing.js';
import type { AgentNodeAttestorFixture, NodeAttestorFixture } from '../conformance.js';
import { calculateResponse, decodeAttestationData, decodeChallenge, encodeAttestationData, encodeResponse, fingerprint } from './pop.js';
import { X509PopAttestor } from './x509pop.js';

export interface IssuedCert {
  readonly certificate: Buffer;
  readonly key: KeyPair;
}

export interface NodePki {
  readonly root: IssuedCert;
  readonly intermediate: IssuedCert;
  /** Issues a node certificate under the intermediate (keyUsage digitalSignature). */
  node(opts?: { keyType?: KeyType; commonName?: string; uris?: string[] } & Pick<HostileCertOptions, 'notBefore' | 'notAfter' | 'keyUsage' | 'serial'>): IssuedCert;
}

/** A positive, minimal 8-byte serial. */
const nextSerial = (): Buffer => {
  const b = randomBytes(8);
  b[0] = 0x40 | ((b[0] as number) & 0x3f);
  return b;
};

/** Root and intermediate CAs of `keyType` (default ec-p256). */
export function makeNodePki(opts: { keyType?: KeyType; name?: string } = {}): NodePki {
  const keyType = opts.keyType ?? 'ec-p256';
  const name = opts.name ?? 'Node';
  const root = makeHostileCert({ key: generateKeyPair(keyType), isCA: true, subject: { commonName: `${name} Root CA`, organization: 'Mayfly tests' }, serial: nextSerial() });
  const intermediate = makeHostileCert({
    key: generateKeyPair(keyType),
    isCA: true,
    subject: { commonName: `${name} Intermediate CA`, organization: 'Mayfly tests' },
    issuer: { certificate: root.certificate, privateKey: root.key.privateKey },
    serial: nextSerial(),
  });
  return {
    root,
    intermediate,
    node: (o = {}) =>
      makeHostileCert({
        key: generateKeyPair(o.keyType ?? keyType),
        subject: { commonName: o.commonName ?? 'node-1.example.org' },
        uris: o.uris ?? [],
        issuer: { certificate: intermediate.certificate, privateKey: intermediate.key.privateKey },
        serial: o.serial ?? nextSerial(),
        ...(o.notBefore !== undefined ? { notBefore: o.notBefore } : {}),
        ...(o.notAfter !== undefined ? { notAfter: o.notAfter } : {}),
        ...(o.keyUsage !== undefined ? { keyUsage: o.keyUsage } : {}),
      }),
  };
}

/** The agent's evidence for `node` (leaf + intermediate), as SPIRE's agent plugin sends it. */
export function evidenceOf(pki: NodePki, node: IssuedCert): Buffer {
  return encodeAttestationData([node.certificate, pki.intermediate.certificate]);
}

/** The agent's answer, with `key`, to a challenge. */
export async function answerWith(key: KeyPair, challenge: Uint8Array): Promise<Uint8Array> {
  return encodeResponse(calculateResponse(key.privateKey, decodeChallenge(challenge)));
}

/** Writes `node`'s files (key, certificate, intermediates, CA bundle) into `dir`. */
export function writeNodeFiles(dir: string, pki: NodePki, node: IssuedCert, prefix = 'node'): { key: string; cert: string; intermediates: string; bundle: string } {
  const paths = { key: join(dir, `${prefix}.key`), cert: join(dir, `${prefix}.pem`), intermediates: join(dir, `${prefix}-chain.pem`), bundle: join(dir, `${prefix}-ca.pem`) };
  writeFileSync(paths.key, exportPkcs8Pem(node.key.privateKey), { mode: 0o600 });
  writeFileSync(paths.cert, pemEncodeCertificates([node.certificate]));
  writeFileSync(paths.intermediates, pemEncodeCertificates([pki.intermediate.certificate]));
  writeFileSync(paths.bundle, pemEncodeCertificates([pki.root.certificate]));
  return paths;
}

let dir: string | undefined;
// Made on first use by a test of the importing file; removed when that file is done.
afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});
const fixtureDir = (): string => (dir ??= mkdtempSync(join(tmpdir(), 'mayfly-x509pop-fixture-')));

const pki = makeNodePki({ keyType: 'ec-p256', name: 'Conformance' });
const rsaPki = makeNodePki({ keyType: 'rsa-2048', name: 'Conformance RSA' });
const nodes = new Map<string, IssuedCert>();
const issue = (p: NodePki, o: Parameters<NodePki['node']>[0] = {}): Buffer => {
  const n = p.node(o);
  const ev = evidenceOf(p, n);
  nodes.set(ev.toString('base64'), n);
  return ev;
};
const bundleFile = (): string => {
  const path = join(fixtureDir(), 'conformance-ca.pem');
  writeFileSync(path, pemEncodeCertificates([pki.root.certificate, rsaPki.root.certificate]));
  return path;
};

const server: NodeAttestorFixture = {
  binary: 'server',
  kind: 'NodeAttestor',
  name: 'x509pop',
  pluginData: () => `ca_bundle_path = "${bundleFile()}"`,
  deps: () => ({}),
  evidence: async () => issue(pki),
  selectors: () => ['x509pop:subject:cn:node-1.example.org', `x509pop:ca:fingerprint:${fingerprint(pki.intermediate.certificate)}`, `x509pop:ca:fingerprint:${fingerprint(pki.root.certificate)}`],
  canReattest: true,
  answer: async (ev, challenge) => {
    const n = nodes.get(Buffer.from(ev).toString('base64'));
    if (n === undefined) throw new Error('x509pop fixture: evidence it did not issue');
    return answerWith(n.key, challenge);
  },
  refused: {
    'a certificate of another PKI': async () => issue(makeNodePki({ name: 'Stranger' })),
    'an expired certificate': async () => issue(pki, { notBefore: new Date(Date.now() - 7_200_000), notAfter: new Date(Date.now() - 3_600_000) }),
    'a certificate not meant for signatures': async () => issue(pki, { keyUsage: [2] }),
    'a chain without its intermediate': async () => {
      const ev = issue(pki);
      const [leaf] = decodeAttestationData(ev);
      const cut = encodeAttestationData([leaf as Buffer]);
      nodes.set(cut.toString('base64'), nodes.get(ev.toString('base64')) as IssuedCert);
      return cut;
    },
  },
};

const agent: AgentNodeAttestorFixture = {
  binary: 'agent',
  kind: 'NodeAttestor',
  name: 'x509pop',
  pluginData: () => {
    const paths = writeNodeFiles(fixtureDir(), rsaPki, rsaPki.node({ keyType: 'rsa-2048' }), 'agent');
    return `private_key_path = "${paths.key}"\ncertificate_path = "${paths.cert}"\nintermediates_path = "${paths.intermediates}"`;
  },
  deps: () => ({}),
  canReattest: true,
  serverSide: () => new X509PopAttestor({ caCertificates: [pki.root.certificate, rsaPki.root.certificate] }),
  unavailable: {
    pluginData: () => `private_key_path = "${join(fixtureDir(), 'absent.key')}"\ncertificate_path = "${join(fixtureDir(), 'absent.pem')}"`,
    deps: () => ({}),
  },
};

export const pluginFixtures = [server, agent];
