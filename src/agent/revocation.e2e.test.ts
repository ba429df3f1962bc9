/**
 * Per-SVID revocation end to end (issue 10), against the REAL server: MayflyServer ←
 * MayflyAgent (join token, mTLS) ← a grpc-js Workload API client on the agent's socket.
 * The operator revokes one workload SVID by serial: the open FetchX509SVID stream gets the
 * CRL (listing that serial, signed by the CA) and a freshly keyed SVID for that entry, the
 * other SVID stays; FetchX509Bundles carries the CRL too. Revoking the agent's own SVID
 * serial makes the agent renew it. The cases run in order and share server and agent.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../server/client.js';
import { startTestServer, type TestServer } from '../server/testing.js';
import { parseCrl, verifyCrlSignature } from '../spiffe/x509/crl.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { pemEncodeCertificates, splitDerCertificates } from '../spiffe/x509/pem.js';
import { workloadServiceDefinition } from '../wire/workload/proto.js';
import { MayflyAgent } from './agent.js';

const uid = process.getuid?.() ?? 0;

interface X509SvidMsg {
  svids: { spiffe_id: string; x509_svid: Buffer; x509_svid_key: Buffer }[];
  crl: Buffer[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(pred: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function header(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('workload.spiffe.io', 'true');
  return md;
}

const serialOf = (m: X509SvidMsg | undefined, id: string): string => {
  const s = m?.svids.find((x) => x.spiffe_id === id);
  return s === undefined ? '' : parseCertificate(splitDerCertificates(s.x509_svid)[0] as Buffer).serialHex;
};
const crlSerials = (crls: readonly Buffer[] | undefined): string[] => (crls ?? []).flatMap((c) => parseCrl(c).entries.map((e) => e.serialHex));

describe('revoking one X509-SVID with a real server and agent', () => {
  const root = mkdtempSync(join(tmpdir(), 'mayfly-revoke-e2e-'));
  const adminSocket = join(root, 'admin', 'admin.sock');
  const socketPath = join(root, 'wl', 'api.sock');
  let server: TestServer;
  let admin: ServerApiClients;
  let agent: MayflyAgent;
  let wl: grpc.Client;
  let call: grpc.ClientReadableStream<X509SvidMsg>;
  const messages: X509SvidMsg[] = [];
  let agentId = '';
  const A = 'spiffe://example.org/workload/a';
  const B = 'spiffe://example.org/workload/b';

  const createEntry = async (spiffeId: string): Promise<void> => {
    const res = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(admin.Entry, 'BatchCreateEntry', {
      entries: [{ spiffe_id: spiffeId, parent_id: agentId, selectors: [{ type: 'unix', value: `uid:${uid}` }] }],
    });
    expect(res.results[0]?.status.code, res.results[0]?.status.message).toBe(0);
  };

  beforeAll(async () => {
    server = await startTestServer({ trustDomain: 'example.org', dataDir: join(root, 'server'), adminSocketPath: adminSocket, bindAddress: '127.0.0.1', port: 0, drainMs: 200 });
    admin = adminSocketClients(adminSocket);
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
    const b = await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {});
    writeFileSync(join(root, 'bundle.pem'), pemEncodeCertificates(b.x509_authorities));
    agent = new MayflyAgent({
      serverAddress: `127.0.0.1:${server.port}`, trustDomain: 'example.org', dataDir: join(root, 'agent'), socketPath,
      joinToken: token.value, trustBundlePath: join(root, 'bundle.pem'),
    });
    await agent.start();
    await agent.whenReady(20_000);
    agentId = agent.agentSvid?.spiffeId ?? '';
    await createEntry(A);
    await createEntry(B);
    await until(() => agent.cache?.updateFor([{ type: 'unix', value: `uid:${uid}` }])?.identities.length === 2, 'both SVIDs at the agent');
    const Ctor = grpc.makeGenericClientConstructor(workloadServiceDefinition(), 'SpiffeWorkloadAPI');
    wl = new Ctor(`unix://${socketPath}`, grpc.credentials.createInsecure());
    call = (wl as unknown as { FetchX509SVID(req: object, md: grpc.Metadata): grpc.ClientReadableStream<X509SvidMsg> }).FetchX509SVID({}, header());
    call.on('data', (m: X509SvidMsg) => void messages.push(m));
    call.on('error', () => {});
    await until(() => messages.at(-1)?.svids.length === 2, 'both SVIDs on the workload stream');
  }, 60_000);

  afterAll(async () => {
    call?.cancel();
    wl?.close();
    await agent?.stop();
    admin?.close();
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  }, 60_000);

  it('x509 revoke -serial: the open stream gets the CRL and a freshly keyed SVID for that entry only', async () => {
    const before = messages.at(-1) as X509SvidMsg;
    const oldA = serialOf(before, A);
    const oldB = serialOf(before, B);
    const oldKey = before.svids.find((s) => s.spiffe_id === A)?.x509_svid_key as Buffer;
    expect(crlSerials(before.crl)).not.toContain(oldA);
    await unaryCall(admin.SVID, 'RevokeX509SVIDs', { serial_number: oldA, reason: 'keyCompromise' });
    await until(() => {
      const m = messages.at(-1);
      return serialOf(m, A) !== oldA && crlSerials(m?.crl).includes(oldA);
    }, 'a new SVID for A and the CRL on the stream');
    const after = messages.at(-1) as X509SvidMsg;
    expect(serialOf(after, B)).toBe(oldB);
    expect(after.svids.find((s) => s.spiffe_id === A)?.x509_svid_key.equals(oldKey)).toBe(false);
    // No message on the stream ever carried the revoked SVID together with a CRL listing it.
    for (const m of messages) if (crlSerials(m.crl).includes(oldA)) expect(serialOf(m, A)).not.toBe(oldA);
    const active = server.ca.authorityState('x509').active;
    const crl = after.crl.map((c) => parseCrl(c)).find((c) => c.entries.some((e) => e.serialHex === oldA));
    expect(crl && verifyCrlSignature(crl, active?.certificate as Buffer)).toBe(true);
    expect(crl?.entries.find((e) => e.serialHex === oldA)?.reason).toBe('keyCompromise');
  });

  it('FetchX509Bundles carries the same CRLs', async () => {
    const bundles = (wl as unknown as { FetchX509Bundles(req: object, md: grpc.Metadata): grpc.ClientReadableStream<{ crl: Buffer[] }> }).FetchX509Bundles({}, header());
    const first = await new Promise<{ crl: Buffer[] }>((ok, fail) => {
      bundles.on('data', ok);
      bundles.on('error', fail);
    });
    bundles.cancel();
    expect(first.crl.map((c) => c.toString('base64'))).toEqual((messages.at(-1) as X509SvidMsg).crl.map((c) => c.toString('base64')));
  });

  it("revoking the agent's own SVID serial makes the agent renew it", async () => {
    const old = agent.agentSvid?.serialHex as string;
    await unaryCall(admin.SVID, 'RevokeX509SVIDs', { serial_number: old, reason: 'superseded' });
    await until(() => agent.agentSvid !== undefined && agent.agentSvid.serialHex !== old, 'a renewed agent SVID');
    // The renewed agent still gets SVIDs: revoke B and watch it come back with a new serial.
    const oldB = serialOf(messages.at(-1), B);
    await unaryCall(admin.SVID, 'RevokeX509SVIDs', { spiffe_id: B });
    await until(() => serialOf(messages.at(-1), B) !== oldB && serialOf(messages.at(-1), B) !== '', 'a new SVID for B after the agent renewed');
  });
});
