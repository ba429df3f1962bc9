/**
 * Node SDK mTLS and per-SVID revocation (issue 10), with a REAL server and agent: two
 * workloads hold X509Sources on the agent's socket; after `RevokeX509SVIDs` by serial (what
 * `mayfly-server x509 revoke -serial` calls), a new handshake presenting the revoked SVID
 * is refused by the guarded server (ERR_PEER_UNAUTHORIZED, naming the revocation), while the
 * workload already holds a fresh SVID, with which the handshake succeeds.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MayflyAgent } from '../agent/agent.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../server/client.js';
import { startTestServer, type TestServer } from '../server/testing.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { parseCrl } from '../spiffe/x509/crl.js';
import type { X509Svid } from './model.js';
import { X509Source } from './sources.js';
import { authorizeAny, createClientTlsOptions, createSpiffeTlsServer, PEER_REJECTED_EVENT, peerSpiffeId, type X509SvidSourceLike } from './tls.js';

const uid = process.getuid?.() ?? 0;
const A = 'spiffe://example.org/client';
const B = 'spiffe://example.org/server';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(pred: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
const serialOf = (s: X509Svid): string => parseCertificate(s.certificates[0] as Buffer).serialHex;

describe('SDK mTLS refuses a revoked peer SVID', () => {
  const root = mkdtempSync(join(tmpdir(), 'mayfly-sdk-revoke-'));
  const socketPath = join(root, 'wl', 'api.sock');
  let server: TestServer;
  let admin: ServerApiClients;
  let agent: MayflyAgent;
  let client: X509Source;
  let serverSource: X509Source;
  let tlsServer: tls.Server;
  let port = 0;
  const rejected: Error[] = [];

  beforeAll(async () => {
    server = await startTestServer({ trustDomain: 'example.org', dataDir: join(root, 'server'), adminSocketPath: join(root, 'admin', 'admin.sock'), drainMs: 200 });
    admin = adminSocketClients(server.adminSocketPath);
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
    const b = await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {});
    writeFileSync(join(root, 'bundle.pem'), pemEncodeCertificates(b.x509_authorities));
    agent = new MayflyAgent({ serverAddress: `127.0.0.1:${server.port}`, trustDomain: 'example.org', dataDir: join(root, 'agent'), socketPath, joinToken: token.value, trustBundlePath: join(root, 'bundle.pem') });
    await agent.start();
    await agent.whenReady(20_000);
    for (const id of [A, B]) {
      const r = await unaryCall<{ results: { status: { code: number } }[] }>(admin.Entry, 'BatchCreateEntry', {
        entries: [{ spiffe_id: id, parent_id: agent.agentSvid?.spiffeId, selectors: [{ type: 'unix', value: `uid:${uid}` }] }],
      });
      expect(r.results[0]?.status.code).toBe(0);
    }
    await until(() => agent.cache?.updateFor([{ type: 'unix', value: `uid:${uid}` }])?.identities.length === 2, 'both SVIDs at the agent');
    const pick = (id: string) => (svids: readonly X509Svid[]): X509Svid => svids.find((s) => s.id.toString() === id) as X509Svid;
    client = await X509Source.create({ address: `unix://${socketPath}`, picker: pick(A) });
    serverSource = await X509Source.create({ address: `unix://${socketPath}`, picker: pick(B) });
    tlsServer = createSpiffeTlsServer(serverSource, { authorize: authorizeAny(), log: () => undefined }, (socket) => socket.end(`hello ${peerSpiffeId(socket).toString()}`));
    tlsServer.on(PEER_REJECTED_EVENT, (err: Error) => rejected.push(err));
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
    port = (tlsServer.address() as AddressInfo).port;
  }, 60_000);

  afterAll(async () => {
    await new Promise((r) => tlsServer?.close(r));
    client?.close();
    serverSource?.close();
    await agent?.stop();
    admin?.close();
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  }, 60_000);

  const connect = (source: X509SvidSourceLike): Promise<{ data: string; error?: Error }> =>
    new Promise((resolve) => {
      const out: { data: string; error?: Error } = { data: '' };
      const socket = tls.connect({ host: '127.0.0.1', port, ...createClientTlsOptions(source, { authorize: authorizeAny() }) });
      socket.on('data', (d: Buffer) => (out.data += d.toString()));
      socket.on('error', (e: Error) => (out.error ??= e));
      socket.on('close', () => resolve(out));
    });

  it('after x509 revoke -serial the old SVID is refused and the workload already holds a new one', async () => {
    expect((await connect(client)).data).toBe(`hello ${A}`);
    const old = client.getX509Svid();
    // The workload keeps presenting the SVID it held before the revocation.
    const stale: X509SvidSourceLike = { getX509Svid: () => old, getX509Bundles: () => client.getX509Bundles(), getX509Crls: () => client.getX509Crls() };
    await unaryCall(admin.SVID, 'RevokeX509SVIDs', { serial_number: serialOf(old), reason: 'keyCompromise' });
    await until(() => serverSource.getX509Crls().some((c) => parseCrl(c).entries.some((e) => e.serialHex === serialOf(old))), 'the CRL at the server workload');
    const refused = await connect(stale);
    expect(refused.data).toBe('');
    expect(rejected.at(-1)?.message).toMatch(/was revoked by its CA .*reason keyCompromise/);
    expect((rejected.at(-1) as Error & { code?: string }).code).toBe('ERR_PEER_UNAUTHORIZED');
    // The push that carried the CRL to this workload carried its new SVID: it holds it already.
    await until(() => client.getX509Crls().some((c) => parseCrl(c).entries.some((e) => e.serialHex === serialOf(old))), 'the CRL at the client workload');
    expect(serialOf(client.getX509Svid())).not.toBe(serialOf(old));
    expect(client.getX509Svid().privateKey.equals(old.privateKey)).toBe(false);
    expect((await connect(client)).data).toBe(`hello ${A}`);
  });
});
