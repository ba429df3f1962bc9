/**
 * Mayfly's x509pop agent side against SPIRE's own server (`spire-server` v1.13.3 with its
 * x509pop plugin), and Mayfly's server side judged against SPIRE's on the same hostile
 * inputs: the other half of wire compatibility (x509pop.interop.test.ts has spire-agent
 * against Mayfly's server).
 * - Mayfly's agent plugin (X509PopAgentAttestor, from PEM files) attests to spire-server
 *   over SPIRE's AttestAgent stream with RSA and ECDSA node keys: SPIRE's Go code verifies
 *   our RSA-PSS and ECDSA answers and issues `spiffe://<td>/spire/agent/x509pop/<SHA-1>`,
 *   the agent ID Mayfly's server makes for the same certificate.
 * - Each hostile case (another CA, expired, another key's answer, malformed payloads,
 *   malformed or incomplete answers) is sent to spire-server, and to Mayfly's attestor in process; the gRPC
 *   codes must be equal (Mayfly's through server/status, as its API answers).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attestOverSpireStream, spireAgentClient } from '../../../src/agent/spire-attest.js';
import { GrpcCode, ServerCallError, type IssuedX509Svid } from '../../../src/agent/server-client.js';
import { X509PopAgentAttestor } from '../../../src/attestors/node/x509pop/agent.js';
import { answerWith, evidenceOf, makeNodePki, writeNodeFiles, type NodePki } from '../../../src/attestors/node/x509pop/testing.js';
import { X509PopAttestor } from '../../../src/attestors/node/x509pop/x509pop.js';
import { grpcCodeOf } from '../../../src/server/status.js';
import { TrustDomain } from '../../../src/spiffe/id.js';
import { generateKeyPair } from '../../../src/spiffe/keys.js';
import { createCsr } from '../../../src/spiffe/x509/csr.js';
import { parsePemCertificates, pemEncodeCertificates } from '../../../src/spiffe/x509/pem.js';
import { verifyX509Svid } from '../../../src/spiffe/x509/verify.js';
import { startSpireServer, type SpireServer } from './peers.js';

const TD = 'x509pop-spire.mayfly.test';
const sha1 = (der: Uint8Array): string => createHash('sha1').update(der).digest('hex');
const pkis: Record<'rsa' | 'ec', NodePki> = { rsa: makeNodePki({ keyType: 'rsa-2048', name: 'S RSA' }), ec: makeNodePki({ keyType: 'ec-p256', name: 'S EC' }) };

let dir: string;
let spire: SpireServer;
let roots: Buffer[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-x509pop-spire-'));
  const bundle = join(dir, 'node-ca.pem');
  writeFileSync(bundle, pemEncodeCertificates([pkis.rsa.root.certificate, pkis.ec.root.certificate]));
  spire = await startSpireServer({ dir, trustDomain: TD, plugins: `NodeAttestor "x509pop" { plugin_data { ca_bundle_path = "${bundle}" } }` });
  roots = parsePemCertificates((await spire.cli(['bundle', 'show'])).stdout);
}, 90_000);

afterAll(async () => {
  await spire?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

const callError = (err: grpc.ServiceError | Error): ServerCallError =>
  err instanceof ServerCallError ? err : new ServerCallError(typeof (err as grpc.ServiceError).code === 'number' ? (err as grpc.ServiceError).code : GrpcCode.UNAVAILABLE, (err as grpc.ServiceError).details ?? err.message, { cause: err });

/** One AttestAgent exchange with spire-server: its SVID, or the gRPC code it refused with. */
async function attestToSpire(payload: Buffer, answer: (c: Buffer) => Promise<Buffer>): Promise<{ svid?: IssuedX509Svid; code: number; message: string }> {
  // SPIRE's server certificate names no host: only its chain to the bundle is checked here.
  const creds = grpc.credentials.createSsl(Buffer.from(pemEncodeCertificates(roots)), null, null, { checkServerIdentity: () => undefined });
  const client = spireAgentClient(`127.0.0.1:${spire.port}`, creds, { 'grpc.ssl_target_name_override': 'spire-server' });
  try {
    const svid = await attestOverSpireStream(client, { type: 'x509pop', payload, csr: createCsr({ privateKey: generateKeyPair().privateKey }), answerChallenge: answer }, 30_000, callError);
    return { svid, code: GrpcCode.OK, message: '' };
  } catch (err) {
    if (err instanceof ServerCallError) return { code: err.grpcCode, message: err.message };
    throw err;
  } finally {
    client.close();
  }
}

/** The same exchange judged by Mayfly's attestor, as Mayfly's API would answer it. */
async function attestToMayfly(payload: Buffer, answer: (c: Buffer) => Promise<Buffer>): Promise<number> {
  const a = new X509PopAttestor({ caCertificates: [pkis.rsa.root.certificate, pkis.ec.root.certificate] });
  return a.attest(payload, { trustDomain: TrustDomain.parse(TD), now: new Date(), challenge: async (c) => answer(Buffer.from(c)) }).then(
    () => GrpcCode.OK,
    (err: unknown) => grpcCodeOf(err),
  );
}

describe('Mayfly x509pop agent side against spire-server v1.13.3', () => {
  for (const kind of ['rsa', 'ec'] as const) {
    it(`attests with ${kind === 'rsa' ? 'an RSA' : 'an ECDSA'} node key from PEM files; SPIRE issues the agent ID Mayfly would`, async () => {
      const pki = pkis[kind];
      const node = pki.node({ commonName: `spire-${kind}` });
      const files = writeNodeFiles(dir, pki, node, `n-${kind}`);
      const agent = new X509PopAgentAttestor({ privateKeyPath: files.key, certificatePath: files.cert, intermediatesPath: files.intermediates });
      const data = await agent.attestationData();
      const res = await attestToSpire(data.payload, (c) => agent.answerChallenge(c));
      expect(res.code, res.message).toBe(GrpcCode.OK);
      const agentId = `spiffe://${TD}/spire/agent/x509pop/${sha1(node.certificate)}`;
      expect(res.svid?.spiffeId).toBe(agentId);
      expect(verifyX509Svid(res.svid?.certChain ?? [], { trustDomain: TrustDomain.parse(TD), x509Authorities: roots }).spiffeId.toString()).toBe(agentId);
      const mayfly = await new X509PopAttestor({ caCertificates: [pki.root.certificate] }).attest(data.payload, { trustDomain: TrustDomain.parse(TD), now: new Date(), challenge: (c) => agent.answerChallenge(c) });
      expect(mayfly.agentId.toString()).toBe(agentId);
    }, 60_000);
  }

  const node = pkis.ec.node();
  const hostile: Record<string, { payload: () => Buffer; answer: (c: Buffer) => Promise<Buffer>; code: number }> = {
    'a certificate of another CA': (() => {
      const other = makeNodePki({ name: 'Nobody' });
      const n = other.node();
      return { payload: () => evidenceOf(other, n), answer: async (c: Buffer) => Buffer.from(await answerWith(n.key, c)), code: GrpcCode.PERMISSION_DENIED };
    })(),
    'an expired certificate': (() => {
      const n = pkis.ec.node({ notBefore: new Date(Date.now() - 7_200_000), notAfter: new Date(Date.now() - 3_600_000) });
      return { payload: () => evidenceOf(pkis.ec, n), answer: async (c: Buffer) => Buffer.from(await answerWith(n.key, c)), code: GrpcCode.PERMISSION_DENIED };
    })(),
    'an answer signed by another key': { payload: () => evidenceOf(pkis.ec, node), answer: async (c) => Buffer.from(await answerWith(generateKeyPair('ec-p256'), c)), code: GrpcCode.PERMISSION_DENIED },
    'a payload that is not JSON': { payload: () => Buffer.from('not json'), answer: async () => Buffer.from('{}'), code: GrpcCode.INVALID_ARGUMENT },
    'a payload without certificates': { payload: () => Buffer.from('{"certificates":[]}'), answer: async () => Buffer.from('{}'), code: GrpcCode.INVALID_ARGUMENT },
    'a leaf that is not DER': { payload: () => Buffer.from(JSON.stringify({ certificates: [Buffer.from('junk').toString('base64')] })), answer: async () => Buffer.from('{}'), code: GrpcCode.INVALID_ARGUMENT },
    'an answer that is not JSON': { payload: () => evidenceOf(pkis.ec, node), answer: async () => Buffer.from('nope'), code: GrpcCode.INVALID_ARGUMENT },
    'an answer of the wrong JSON type': { payload: () => evidenceOf(pkis.ec, node), answer: async () => Buffer.from('[]'), code: GrpcCode.INVALID_ARGUMENT },
    'an answer with bad base64': { payload: () => evidenceOf(pkis.ec, node), answer: async () => Buffer.from('{"ecdsa_signature":{"nonce":"%%"}}'), code: GrpcCode.INVALID_ARGUMENT },
    'an empty answer object': { payload: () => evidenceOf(pkis.ec, node), answer: async () => Buffer.from('{}'), code: GrpcCode.PERMISSION_DENIED },
    'an RSA answer to an ECDSA challenge': { payload: () => evidenceOf(pkis.ec, node), answer: async () => Buffer.from(JSON.stringify({ rsa_signature: { nonce: Buffer.alloc(32).toString('base64'), signature: 'AA==' } })), code: GrpcCode.PERMISSION_DENIED },
    'an answer with a short nonce': { payload: () => evidenceOf(pkis.ec, node), answer: async () => Buffer.from('{"ecdsa_signature":{"nonce":"AAAA","r":"AQ==","s":"AQ=="}}'), code: GrpcCode.PERMISSION_DENIED },
    'a JSON null payload': { payload: () => Buffer.from('null'), answer: async () => Buffer.from('{}'), code: GrpcCode.INVALID_ARGUMENT },
  };
  for (const [what, c] of Object.entries(hostile)) {
    it(`${what}: spire-server and Mayfly both answer ${grpc.status[c.code]}`, async () => {
      const spireRes = await attestToSpire(c.payload(), c.answer);
      expect(spireRes.code, spireRes.message).toBe(c.code);
      expect(await attestToMayfly(c.payload(), c.answer)).toBe(c.code);
    }, 60_000);
  }
});
