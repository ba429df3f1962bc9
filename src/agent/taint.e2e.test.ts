/**
 * Tainting and revoking local authorities end to end, against the REAL server: MayflyServer
 * (LevelDB in a temp dir, its own CA, TLS on 127.0.0.1) ← MayflyAgent (join token, mTLS) ← a
 * grpc-js Workload API client on the agent's Unix socket (real SO_PEERCRED, our uid).
 * The operator walks prepare → activate → taint → revoke for the X.509 and the JWT
 * authority; the agent must move everything (its own SVID first) to the new authorities as
 * soon as the old ones are tainted, and keep working once they are revoked.
 * The cases run in order and share the server and the agent.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../server/client.js';
import { startTestServer, type TestServer } from '../server/testing.js';
import { TrustDomain } from '../spiffe/id.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { pemEncodeCertificates, splitDerCertificates } from '../spiffe/x509/pem.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import { workloadServiceDefinition } from '../wire/workload/proto.js';
import { MayflyAgent } from './agent.js';
import { jwtKidOf } from './taint.js';

const td = TrustDomain.parse('example.org');
const uid = process.getuid?.() ?? 0;

interface X509SvidMsg {
  svids: { spiffe_id: string; x509_svid: Buffer; bundle: Buffer }[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `pred` every 20 ms; fails with `what` after `ms`. */
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

const akiOf = (der: Buffer | undefined): string => parseCertificate(der as Buffer).authorityKeyId?.toString('hex') ?? '';
/** The AKI of every SVID's leaf in a Workload API message. */
const signers = (m: X509SvidMsg | undefined): string[] => (m?.svids ?? []).map((s) => akiOf(splitDerCertificates(s.x509_svid)[0]));

describe('tainting and revoking authorities with a real server and agent', () => {
  const root = mkdtempSync(join(tmpdir(), 'mayfly-taint-e2e-'));
  const adminSocket = join(root, 'admin', 'admin.sock');
  const socketPath = join(root, 'wl', 'api.sock');
  let server: TestServer;
  let admin: ServerApiClients;
  let agent: MayflyAgent;
  let wl: grpc.Client;
  let call: grpc.ClientReadableStream<X509SvidMsg>;
  const messages: X509SvidMsg[] = [];
  let agentId = '';
  let oldX509 = '';
  let newX509 = '';
  let oldJwt = '';
  let newJwt = '';

  const authority = async (kind: 'X509' | 'JWT', op: 'Prepare' | 'Activate' | 'Taint' | 'Revoke', id?: string): Promise<string> => {
    const res = await unaryCall<{ authority: { authority_id: string } }>(admin.LocalAuthority, `${op}${kind}Authority`, id === undefined ? {} : { authority_id: id });
    return res.authority.authority_id;
  };
  const activeId = async (kind: 'X509' | 'JWT'): Promise<string> =>
    (await unaryCall<{ active: { authority_id: string } }>(admin.LocalAuthority, `Get${kind}AuthorityState`, {})).active.authority_id;
  const createEntry = async (path: string): Promise<void> => {
    const res = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(admin.Entry, 'BatchCreateEntry', {
      entries: [{ spiffe_id: `spiffe://example.org${path}`, parent_id: agentId, selectors: [{ type: 'unix', value: `uid:${uid}` }] }],
    });
    expect(res.results[0]?.status.code, res.results[0]?.status.message).toBe(0);
  };
  const fetchJwt = (): Promise<string> =>
    new Promise((ok, fail) =>
      (wl as unknown as { FetchJWTSVID(r: object, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: { svids: { svid: string }[] }) => void): void }).FetchJWTSVID(
        { audience: ['db'], spiffe_id: 'spiffe://example.org/workload/a' }, header(), (e, r) => (e ? fail(e) : ok(r.svids[0]?.svid ?? '')),
      ),
    );

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
    await createEntry('/workload/a');
    await createEntry('/workload/b');
    // Open the stream once the agent holds both (with none, the call ends PERMISSION_DENIED).
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

  it('rotation alone (prepare, activate) leaves SVIDs signed by the old authority in place', async () => {
    oldX509 = await activeId('X509');
    oldJwt = await activeId('JWT');
    expect(signers(messages.at(-1))).toEqual([oldX509, oldX509]);
    expect(akiOf(agent.agentSvid?.certChain[0])).toBe(oldX509);
    expect(jwtKidOf(await fetchJwt())).toBe(oldJwt);
    newX509 = await authority('X509', 'Prepare');
    expect(await authority('X509', 'Activate', newX509)).toBe(newX509);
    newJwt = await authority('JWT', 'Prepare');
    await authority('JWT', 'Activate', newJwt);
    // The new authorities reach the agent in the bundle; nothing is re-issued for that.
    await until(() => agent.cache?.bundle?.x509Authorities.length === 2 && agent.cache.bundle.jwtAuthorities.size === 2, 'the rotated bundle at the agent');
    expect(signers(messages.at(-1))).toEqual([oldX509, oldX509]);
    expect(jwtKidOf(await fetchJwt())).toBe(oldJwt); // still cached
  }, 60_000);

  it('X.509 taint: the agent renews its own SVID, and the open workload stream receives SVIDs from the new authority', async () => {
    const agentSerial = agent.agentSvid?.serialHex;
    await authority('X509', 'Taint', oldX509);
    await until(() => {
      const s = signers(messages.at(-1));
      return s.length === 2 && s.every((a) => a === newX509);
    }, 'the workload stream to hold SVIDs of the new authority');
    expect(agent.agentSvid?.serialHex).not.toBe(agentSerial);
    expect(akiOf(agent.agentSvid?.certChain[0])).toBe(newX509);
    expect(agent.cache?.taintedAuthorities.x509.has(oldX509)).toBe(true);
  }, 60_000);

  it('JWT taint: a JWT-SVID fetched afterwards is signed with the new key', async () => {
    await authority('JWT', 'Taint', oldJwt);
    await until(() => agent.cache?.taintedAuthorities.jwt.has(oldJwt) === true, 'the JWT taint at the agent');
    expect(jwtKidOf(await fetchJwt())).toBe(newJwt);
  }, 60_000);

  it('revoke: the old authorities leave the bundle, and the agent keeps working (no lockout)', async () => {
    await authority('X509', 'Revoke', oldX509);
    await authority('JWT', 'Revoke', oldJwt);
    await until(() => agent.cache?.bundle?.x509Authorities.length === 1 && agent.cache.bundle.jwtAuthorities.size === 1, 'the bundle without the revoked authorities');
    // New work needs the server to accept the agent SVID: a new entry reaches the open stream.
    await createEntry('/workload/c');
    await until(() => messages.at(-1)?.svids.length === 3, 'an entry created after the revocation');
    const last = messages.at(-1) as X509SvidMsg;
    expect(signers(last)).toEqual([newX509, newX509, newX509]);
    for (const s of last.svids) {
      const v = verifyX509Svid(splitDerCertificates(s.x509_svid), { trustDomain: td, x509Authorities: splitDerCertificates(s.bundle) });
      expect(v.spiffeId.toString()).toBe(s.spiffe_id);
    }
    expect(splitDerCertificates(last.svids[0]?.bundle as Buffer).map((c) => parseCertificate(c).subjectKeyId?.toString('hex'))).toEqual([newX509]);
    expect(jwtKidOf(await fetchJwt())).toBe(newJwt);
    expect(agent.state).toBe('ready');
    expect(agent.sync?.state).toBe('streaming');
  }, 60_000);
});
