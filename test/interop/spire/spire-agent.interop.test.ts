/**
 * SPIRE's own agent (`spire-agent` v1.13.3: join_token node attestor, unix workload
 * attestor) against Mayfly's server (issue 14, item 2), in this process beside a Mayfly
 * agent (test/interop/harness): it attests, syncs its authorised entries (SPIRE's
 * SyncAuthorizedEntries), gets SVIDs (BatchNewX509SVID), renews its own SVID (RenewAgent),
 * serves workloads, and a go-spiffe workload behind it does mTLS with one behind the Mayfly
 * agent. Each Workload API is read by the other project's CLI too. The hostile cases drive
 * SPIRE's agent API by hand (raw-agent.ts) or through the real agent: a reused join token,
 * a CSR signed by another key, an entry that is not the caller's, and a ban.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../../../src/server/client.js';
import { generateKeyPair } from '../../../src/spiffe/keys.js';
import { createCsr } from '../../../src/spiffe/x509/csr.js';
import { readChildren, readTlv, seq, type Tlv } from '../../../src/spiffe/x509/der.js';
import { parsePemCertificates } from '../../../src/spiffe/x509/pem.js';
import { makeTestCa } from '../../../src/spiffe/x509/testing.js';
import { verifyX509Svid } from '../../../src/spiffe/x509/verify.js';
import { TrustDomain } from '../../../src/spiffe/id.js';
import { GoWorkloadServer, runGoWorkload } from '../go-workload/client.js';
import { runProcess, startMayfly, type MayflyDeployment } from '../harness.js';
import { spireAgentCli, startSpireAgent, waitFor, type SpireAgent } from './peers.js';
import { attest, spireCall, spireClients, syncStream } from './spire-raw-client.js';

const TD = 'spire-agent.mayfly.test';
const MAYFLY_AGENT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'mayfly-agent.js');
/** The agents' own SVIDs live this long, so each renews within the run. */
const AGENT_SVID_TTL = 20;

let m: MayflyDeployment;
let admin: ServerApiClients;
let dir: string;
let bundlePem: string;
let agent: SpireAgent;
let spireAgentId: string;
let uid: number;

interface FetchedSvid {
  spiffeId: string;
  chain: Buffer[];
  hint: string;
}

/** `spire-agent api fetch x509 -output json` against `socketPath`. */
async function spireFetch(socketPath: string): Promise<{ code: number | null; svids: FetchedSvid[]; bundle: Buffer[]; out: string }> {
  const r = await spireAgentCli(['api', 'fetch', 'x509', '-socketPath', socketPath, '-output', 'json', '-timeout', '5s']);
  if (r.code !== 0) return { code: r.code, svids: [], bundle: [], out: r.stdout + r.stderr };
  const doc = JSON.parse(r.stdout) as { svids?: { spiffe_id: string; x509_svid: string; bundle: string; hint?: string }[] };
  const svids = (doc.svids ?? []).map((s) => ({ spiffeId: s.spiffe_id, chain: splitDer(Buffer.from(s.x509_svid, 'base64')), hint: s.hint ?? '' }));
  const bundle = doc.svids?.[0] ? splitDer(Buffer.from(doc.svids[0].bundle, 'base64')) : [];
  return { code: r.code, svids, bundle, out: r.stdout };
}

function splitDer(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < buf.length; ) {
    const t = readTlv(buf, off);
    out.push(buf.subarray(off, t.end));
    off = t.end;
  }
  return out;
}

/** A well-formed CSR for `a`'s key carrying a signature made by another key. */
function csrSignedByAnotherKey(): Buffer {
  const a = createCsr({ privateKey: generateKeyPair().privateKey });
  const b = createCsr({ privateKey: generateKeyPair().privateKey });
  const [criA, algA] = readChildren(a, readTlv(a, 0)) as [Tlv, Tlv, Tlv];
  const sigB = (readChildren(b, readTlv(b, 0)) as [Tlv, Tlv, Tlv])[2];
  return seq(a.subarray(criA.start, criA.end), a.subarray(algA.start, algA.end), b.subarray(sigB.start, sigB.end));
}

async function joinToken(): Promise<string> {
  return (await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 })).value;
}

async function createEntry(spiffeId: string, parentId: string, selector: string, hint = ''): Promise<string> {
  const [type, ...rest] = selector.split(':');
  const res = await unaryCall<{ results: { status: { code: number; message: string }; entry: { id: string } | null }[] }>(admin.Entry, 'BatchCreateEntry', {
    entries: [{ spiffe_id: spiffeId, parent_id: parentId, selectors: [{ type, value: rest.join(':') }], hint }],
  });
  const r = res.results[0];
  if (r?.status.code !== 0 || !r.entry) throw new Error(`entry create ${spiffeId}: ${r?.status.message}`);
  return r.entry.id;
}

const codeOf = (p: Promise<unknown>): Promise<number> =>
  p.then(
    () => status.OK,
    (e: ServiceError) => e.code,
  );

beforeAll(async () => {
  uid = process.getuid?.() ?? 0;
  m = await startMayfly({ trustDomain: TD, limits: { agentSvidTtl: AGENT_SVID_TTL } });
  admin = adminSocketClients(m.server.adminSocketPath);
  dir = mkdtempSync(join(tmpdir(), 'mayfly-spire-agent-'));
  bundlePem = readFileSync(join(m.workDir, 'trust-bundle.pem'), 'utf8');
  const before = new Set((await unaryCall<{ agents: { id: string }[] }>(admin.Agent, 'ListAgents', {})).agents.map((a) => a.id));
  agent = await startSpireAgent({ dir, trustDomain: TD, serverPort: m.server.port, trustBundlePem: bundlePem, nodeAttestor: 'NodeAttestor "join_token" { plugin_data {} }', joinToken: await joinToken() });
  const after = (await unaryCall<{ agents: { id: string; attestation_type: string }[] }>(admin.Agent, 'ListAgents', {})).agents.filter((a) => !before.has(a.id));
  expect(after).toHaveLength(1);
  spireAgentId = (after[0] as { id: string }).id;
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  admin?.close();
  await m?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('spire-agent v1.13.3 against mayfly-server', () => {
  const spireSideId = `spiffe://${TD}/workload/behind-spire-agent`;
  let entryId: string;

  it('attests with a join token generated on Mayfly: its healthcheck passes and Mayfly records it', async () => {
    expect(await agent.healthy()).toBe(true);
    expect(spireAgentId).toMatch(new RegExp(`^spiffe://${TD.replace(/\./g, '\\.')}/spire/agent/join_token/`));
    const a = await unaryCall<{ attestation_type: string; banned: boolean }>(admin.Agent, 'GetAgent', { id: spireAgentId });
    expect(a).toMatchObject({ attestation_type: 'join_token', banned: false });
    expect(agent.logs.join('\n')).toContain('Node attestation was successful');
  });

  it('serves an entry created on Mayfly (parent = the spire-agent) to a workload; our verifier accepts the SVID', async () => {
    entryId = await createEntry(spireSideId, spireAgentId, `unix:uid:${uid}`, 'spire-side');
    let got: Awaited<ReturnType<typeof spireFetch>> | undefined;
    await waitFor('the SVID behind spire-agent', async () => {
      got = await spireFetch(agent.socketPath);
      return got.svids.some((s) => s.spiffeId === spireSideId);
    }, agent.logs);
    const svid = got?.svids.find((s) => s.spiffeId === spireSideId) as FetchedSvid;
    expect(svid.hint).toBe('spire-side');
    const verified = verifyX509Svid(svid.chain, { trustDomain: TrustDomain.parse(TD), x509Authorities: parsePemCertificates(bundlePem) });
    expect(verified.spiffeId.toString()).toBe(spireSideId);
    // The bundle spire-agent serves is Mayfly's.
    expect(got?.bundle.map((c) => c.toString('base64')).sort()).toEqual(parsePemCertificates(bundlePem).map((c) => c.toString('base64')).sort());
  });

  it('a go-spiffe workload behind spire-agent and one behind the Mayfly agent do mTLS', async () => {
    const mayflySideId = m.defaultSpiffeId as string;
    const server = await GoWorkloadServer.start(['-listen', '127.0.0.1:0', '-authorize', mayflySideId], { endpoint: `unix://${agent.socketPath}` });
    try {
      const listening = await server.waitFor((e) => e.event === 'listening', 'the go-spiffe server behind spire-agent');
      expect(listening.spiffeId).toBe(spireSideId);
      const client = await runGoWorkload(['client', '-connect', listening.addr as string, '-authorize', spireSideId, '-message', 'over SPIRE and Mayfly'], { endpoint: m.endpoint });
      expect(client.code, client.stderr).toBe(0);
      expect(client.json[0]).toMatchObject({ spiffeId: mayflySideId, serverId: spireSideId, reply: `${spireSideId} heard from ${mayflySideId}: over SPIRE and Mayfly` });
      await server.waitFor((e) => e.event === 'served' && e.peerId === mayflySideId, 'the served event');
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it("each project's CLI reads the other's Workload API", async () => {
    const theirs = await spireFetch(m.socketPath);
    expect(theirs.code, theirs.out).toBe(0);
    expect(theirs.svids.map((s) => s.spiffeId)).toContain(m.defaultSpiffeId);
    const ours = await runProcess(process.execPath, [MAYFLY_AGENT, 'api', 'fetch', 'x509', '-socketPath', agent.socketPath]);
    expect(ours.code, ours.stderr).toBe(0);
    expect(ours.stdout).toContain(spireSideId);
  });

  it('an entry update and an entry delete on Mayfly reach spire-agent', async () => {
    const e = await unaryCall<Record<string, unknown>>(admin.Entry, 'GetEntry', { id: entryId });
    const upd = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(admin.Entry, 'BatchUpdateEntry', { entries: [{ ...e, hint: 'spire-side-updated' }] });
    expect(upd.results[0]?.status).toMatchObject({ code: 0 });
    await waitFor('the updated hint behind spire-agent', async () => (await spireFetch(agent.socketPath)).svids.some((s) => s.spiffeId === spireSideId && s.hint === 'spire-side-updated'), agent.logs);
    const del = await unaryCall<{ results: { status: { code: number } }[] }>(admin.Entry, 'BatchDeleteEntry', { ids: [entryId] });
    expect(del.results[0]?.status.code).toBe(0);
    await waitFor('the deleted entry to leave spire-agent', async () => {
      const r = await spireFetch(agent.socketPath);
      return r.code !== 0 && /no identity issued/i.test(r.out);
    }, agent.logs);
  });

  it('renews its own SVID through RenewAgent before it expires (agent SVID TTL 20 s)', async () => {
    const rotations = (): number => agent.logs.filter((l) => l.includes('Successfully rotated agent SVID')).length;
    const before = rotations();
    const first = await unaryCall<{ x509svid_serial_number: string }>(admin.Agent, 'GetAgent', { id: spireAgentId });
    // Two more rotations: the first might have landed between counting and reading the serial.
    await waitFor('spire-agent to rotate its SVID', async () => rotations() > before + 1, agent.logs, 60_000);
    const now = await unaryCall<{ x509svid_serial_number: string }>(admin.Agent, 'GetAgent', { id: spireAgentId });
    expect(now.x509svid_serial_number).not.toBe(first.x509svid_serial_number);
    // Still served with its renewed SVID: a new entry reaches it.
    await createEntry(`${spireSideId}/after-renewal`, spireAgentId, `unix:uid:${uid}`);
    await waitFor('an entry after renewal', async () => (await spireFetch(agent.socketPath)).svids.some((s) => s.spiffeId === `${spireSideId}/after-renewal`), agent.logs);
    expect(agent.child.exitCode).toBeNull();
  }, 90_000);
});

describe('spire-agent with use_sync_authorized_entries = false', () => {
  it('syncs through GetAuthorizedEntries and serves the entry', async () => {
    const before = new Set((await unaryCall<{ agents: { id: string }[] }>(admin.Agent, 'ListAgents', {})).agents.map((a) => a.id));
    const legacy = await startSpireAgent({
      dir,
      name: 'spire-agent-get',
      trustDomain: TD,
      serverPort: m.server.port,
      trustBundlePem: bundlePem,
      nodeAttestor: 'NodeAttestor "join_token" { plugin_data {} }',
      joinToken: await joinToken(),
      agent: 'experimental { use_sync_authorized_entries = false }',
    });
    try {
      const id = (await unaryCall<{ agents: { id: string }[] }>(admin.Agent, 'ListAgents', {})).agents.map((a) => a.id).find((a) => !before.has(a)) as string;
      const spiffeId = `spiffe://${TD}/workload/behind-legacy-sync`;
      await createEntry(spiffeId, id, `unix:uid:${uid}`);
      await waitFor('the SVID behind the GetAuthorizedEntries agent', async () => (await spireFetch(legacy.socketPath)).svids.some((s) => s.spiffeId === spiffeId), legacy.logs);
      // The option took effect (FetchUpdates → GetAuthorizedEntries in pkg/agent/client), and no fetch failed.
      expect(legacy.logs.join('\n')).toContain("The 'use_sync_authorized_entries' configuration is deprecated");
      expect(legacy.logs.join('\n')).not.toMatch(/Failed to fetch authorized entries/);
    } finally {
      await legacy.stop();
    }
  }, 120_000);
});

describe("SPIRE's agent API refuses what SPIRE refuses, with SPIRE's status codes", () => {
  const bundle = (): Buffer[] => parsePemCertificates(bundlePem);

  it('a reused join token: INVALID_ARGUMENT', async () => {
    const c = spireClients({ port: m.server.port, trustDomain: TD, bundle: bundle() });
    try {
      const token = await joinToken();
      const csr = (): Buffer => createCsr({ privateKey: generateKeyPair().privateKey });
      const ok = await attest(c.Agent, 'join_token', Buffer.from(token), csr());
      expect(ok.svid.id.path).toMatch(/^\/spire\/agent\/join_token\//);
      expect(ok.reattestable).toBe(false);
      expect(await codeOf(attest(c.Agent, 'join_token', Buffer.from(token), csr()))).toBe(status.INVALID_ARGUMENT);
      // Missing params, as SPIRE's validateAttestAgentParams: INVALID_ARGUMENT.
      expect(await codeOf(attest(c.Agent, 'join_token', Buffer.alloc(0), csr()))).toBe(status.INVALID_ARGUMENT);
      // A node attestor the server does not run: FAILED_PRECONDITION, as SPIRE answers.
      expect(await codeOf(attest(c.Agent, 'no_such_attestor', Buffer.from('x'), csr()))).toBe(status.FAILED_PRECONDITION);
    } finally {
      c.close();
    }
  });

  it('a CSR signed by another key: refused at attestation without burning the token, and per item in BatchNewX509SVID', async () => {
    const c = spireClients({ port: m.server.port, trustDomain: TD, bundle: bundle() });
    let agentClients: ReturnType<typeof spireClients> | undefined;
    try {
      const token = await joinToken();
      expect(await codeOf(attest(c.Agent, 'join_token', Buffer.from(token), csrSignedByAnotherKey()))).toBe(status.INVALID_ARGUMENT);
      const key = generateKeyPair();
      const attested = await attest(c.Agent, 'join_token', Buffer.from(token), createCsr({ privateKey: key.privateKey }));
      agentClients = spireClients({ port: m.server.port, trustDomain: TD, bundle: bundle(), svid: { chain: attested.svid.cert_chain, key: key.privateKey } });
      const rawAgentId = `spiffe://${TD}${attested.svid.id.path}`;
      const mine = await createEntry(`spiffe://${TD}/workload/raw-agent`, rawAgentId, 'unix:uid:4242');
      const notMine = await createEntry(`spiffe://${TD}/workload/not-raw-agent`, spireAgentId, 'unix:uid:4243');
      const res = await spireCall<{ results: { status: { code: number; message: string }; svid: { id: { path: string }; cert_chain: Buffer[] } | null }[] }>(agentClients.SVID, 'BatchNewX509SVID', {
        params: [
          { entry_id: mine, csr: createCsr({ privateKey: generateKeyPair().privateKey }) },
          { entry_id: mine, csr: csrSignedByAnotherKey() },
          { entry_id: notMine, csr: createCsr({ privateKey: generateKeyPair().privateKey }) },
          { entry_id: 'no-such-entry', csr: createCsr({ privateKey: generateKeyPair().privateKey }) },
          { entry_id: '', csr: createCsr({ privateKey: generateKeyPair().privateKey }) },
          { entry_id: mine, csr: Buffer.alloc(0) },
        ],
      });
      expect(res.results.map((r) => r.status.code)).toEqual([status.OK, status.INVALID_ARGUMENT, status.NOT_FOUND, status.NOT_FOUND, status.INVALID_ARGUMENT, status.INVALID_ARGUMENT]);
      expect(res.results[2]?.status.message).toBe('entry not found or not authorized');
      expect(res.results[0]?.svid?.id.path).toBe('/workload/raw-agent');
      expect(verifyX509Svid(res.results[0]?.svid?.cert_chain ?? [], { trustDomain: TrustDomain.parse(TD), x509Authorities: bundle() }).spiffeId.toString()).toBe(`spiffe://${TD}/workload/raw-agent`);
      expect(await codeOf(spireCall(agentClients.SVID, 'BatchNewX509SVID', { params: [] }))).toBe(status.INVALID_ARGUMENT);
      // Federated bundles: agents may read them, as with SPIRE; never the own trust domain's.
      expect(await codeOf(spireCall(agentClients.Bundle, 'GetFederatedBundle', { trust_domain: 'federated.test' }))).toBe(status.NOT_FOUND);
      expect(await codeOf(spireCall(agentClients.Bundle, 'GetFederatedBundle', { trust_domain: TD }))).toBe(status.INVALID_ARGUMENT);
      expect(await codeOf(spireCall(agentClients.Bundle, 'GetFederatedBundle', { trust_domain: 'Not A Domain' }))).toBe(status.INVALID_ARGUMENT);
      const fed = makeTestCa({ trustDomain: 'federated.test' });
      const set = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(admin.Bundle, 'BatchSetFederatedBundle', {
        bundles: [{ trust_domain: 'federated.test', x509_authorities: [fed.certificate], jwt_authorities: [], refresh_hint: 0, sequence_number: 1 }],
      });
      expect(set.results[0]?.status).toMatchObject({ code: 0 });
      const got = await spireCall<{ trust_domain: string; x509_authorities: { asn1: Buffer }[] }>(agentClients.Bundle, 'GetFederatedBundle', { trust_domain: 'spiffe://federated.test' });
      expect(got.trust_domain).toBe('federated.test');
      expect(got.x509_authorities.map((a) => a.asn1.toString('base64'))).toEqual([fed.certificate.toString('base64')]);
      // JWT-SVIDs likewise only for the caller's entries.
      const jwt = await spireCall<{ svid: { token: string; id: { path: string }; expires_at: number; issued_at: number } }>(agentClients.SVID, 'NewJWTSVID', { entry_id: mine, audience: ['spire-test'] });
      expect(jwt.svid.id.path).toBe('/workload/raw-agent');
      expect(jwt.svid.issued_at).toBeGreaterThan(0);
      expect(jwt.svid.expires_at).toBeGreaterThan(jwt.svid.issued_at);
      expect(await codeOf(spireCall(agentClients.SVID, 'NewJWTSVID', { entry_id: notMine, audience: ['spire-test'] }))).toBe(status.NOT_FOUND);
      expect(await codeOf(spireCall(agentClients.SVID, 'NewJWTSVID', { entry_id: 'no-such-entry', audience: ['spire-test'] }))).toBe(status.NOT_FOUND);
      // Without an agent SVID nothing is issued.
      expect(await codeOf(spireCall(c.SVID, 'BatchNewX509SVID', { params: [{ entry_id: mine, csr: createCsr({ privateKey: generateKeyPair().privateKey }) }] }))).toBe(status.UNAUTHENTICATED);
      // A CSR signed by another key is refused at renewal too.
      expect(await codeOf(spireCall(agentClients.Agent, 'RenewAgent', { params: { csr: csrSignedByAnotherKey() } }))).toBe(status.INVALID_ARGUMENT);
    } finally {
      agentClients?.close();
      c.close();
    }
  });

  it('GetAuthorizedEntries and the sparse SyncAuthorizedEntries page as SPIRE does (501 entries: pages of 500)', async () => {
    const c = spireClients({ port: m.server.port, trustDomain: TD, bundle: bundle() });
    const key = generateKeyPair();
    const attested = await attest(c.Agent, 'join_token', Buffer.from(await joinToken()), createCsr({ privateKey: key.privateKey }));
    const ac = spireClients({ port: m.server.port, trustDomain: TD, bundle: bundle(), svid: { chain: attested.svid.cert_chain, key: key.privateKey } });
    try {
      const parent = `spiffe://${TD}${attested.svid.id.path}`;
      for (let from = 0; from < 501; from += 250) {
        const n = Math.min(250, 501 - from);
        const res = await unaryCall<{ results: { status: { code: number } }[] }>(admin.Entry, 'BatchCreateEntry', {
          entries: Array.from({ length: n }, (_, i) => ({ spiffe_id: `spiffe://${TD}/sync/${from + i}`, parent_id: parent, selectors: [{ type: 'unix', value: `uid:${10_000 + from + i}` }] })),
        });
        expect(res.results.every((r) => r.status.code === 0)).toBe(true);
      }
      const all = await spireCall<{ entries: { id: string; spiffe_id: { path: string } | null; parent_id: unknown }[] }>(ac.Entry, 'GetAuthorizedEntries', { output_mask: { spiffe_id: true, revision_number: true } });
      expect(all.entries).toHaveLength(501);
      expect(all.entries[0]?.parent_id).toBeNull();

      const s = syncStream(ac.Entry);
      s.send({ output_mask: { spiffe_id: true, selectors: true, revision_number: true, created_at: true } });
      const p1 = await s.recv();
      const p2 = await s.recv();
      expect([p1.entry_revisions.length, p1.more, p1.entries.length]).toEqual([500, true, 0]);
      expect([p2.entry_revisions.length, p2.more]).toEqual([1, false]);
      const ids = [...p1.entry_revisions, ...p2.entry_revisions].map((r) => r.id);
      expect(new Set(ids)).toEqual(new Set(all.entries.map((e) => e.id)));
      // Full entries for the IDs asked (one not authorised, skipped), a page at a time.
      s.send({ ids: [...ids.slice(0, 3), 'not-an-entry-of-this-agent'] });
      const full = await s.recv();
      expect(full.more).toBe(false);
      expect(full.entries.map((e) => e.id).sort()).toEqual(ids.slice(0, 3).sort());
      expect(full.entries[0]?.spiffe_id?.path).toMatch(/^\/sync\//);
      s.send({ ids });
      const big1 = await s.recv();
      const big2 = await s.recv();
      expect([big1.entries.length, big1.more, big2.entries.length, big2.more]).toEqual([500, true, 1, false]);
      s.end();

      // An entry updated on Mayfly shows a new revision in the next sync (what makes the agent ask for it again).
      const target = p1.entry_revisions[7] as { id: string; revision_number: number; created_at: number };
      const stored = await unaryCall<Record<string, unknown>>(admin.Entry, 'GetEntry', { id: target.id });
      const upd = await unaryCall<{ results: { status: { code: number } }[] }>(admin.Entry, 'BatchUpdateEntry', { entries: [{ ...stored, hint: 'changed' }] });
      expect(upd.results[0]?.status.code).toBe(0);
      const again = syncStream(ac.Entry);
      again.send({ output_mask: { revision_number: true, created_at: true } });
      const revs = [...(await again.recv()).entry_revisions, ...(await again.recv()).entry_revisions];
      again.end();
      const now = revs.find((r) => r.id === target.id);
      expect(now?.revision_number).toBe(target.revision_number + 1);
      expect(now?.created_at).toBe(target.created_at);

      // The first request may not name IDs, and may not mask the revision number.
      const bad = syncStream(ac.Entry);
      bad.send({ ids: ['x'] });
      expect((await bad.error()).code).toBe(status.INVALID_ARGUMENT);
      const masked = syncStream(ac.Entry);
      masked.send({ output_mask: { spiffe_id: true } });
      expect((await masked.error()).code).toBe(status.INVALID_ARGUMENT);
      // Not an agent: refused.
      const anon = syncStream(c.Entry);
      anon.send({});
      expect((await anon.error()).code).toBe(status.UNAUTHENTICATED);
    } finally {
      ac.close();
      c.close();
    }
  }, 60_000);

  it('GetBundle and GetFederatedBundle as agents call them', async () => {
    const c = spireClients({ port: m.server.port, trustDomain: TD, bundle: bundle() });
    try {
      const b = await spireCall<{ trust_domain: string; x509_authorities: { asn1: Buffer; tainted: boolean }[]; jwt_authorities: unknown[] }>(c.Bundle, 'GetBundle', {});
      expect(b.trust_domain).toBe(TD);
      expect(b.x509_authorities.map((a) => a.asn1.toString('base64')).sort()).toEqual(bundle().map((x) => x.toString('base64')).sort());
      expect(b.x509_authorities.every((a) => a.tainted === false)).toBe(true);
      const onlyX509 = await spireCall<{ trust_domain: string; jwt_authorities: unknown[]; x509_authorities: unknown[] }>(c.Bundle, 'GetBundle', { output_mask: { x509_authorities: true } });
      expect([onlyX509.trust_domain, onlyX509.jwt_authorities.length, onlyX509.x509_authorities.length > 0]).toEqual([TD, 0, true]);
      // Anonymous callers get no federated bundle; agents and admins do (NOT_FOUND here: none stored).
      expect(await codeOf(spireCall(c.Bundle, 'GetFederatedBundle', { trust_domain: 'other.test' }))).toBe(status.UNAUTHENTICATED);
    } finally {
      c.close();
    }
  });
});

describe('a banned spire-agent', () => {
  it('is refused with AGENT_BANNED after a ban through Mayfly\'s admin API, and shuts down as SPIRE\'s agent does', async () => {
    const ban = await runProcess(process.execPath, [join(dirname(MAYFLY_AGENT), 'mayfly-server.js'), 'agent', 'ban', '-spiffeID', spireAgentId, '-socketPath', m.server.adminSocketPath]);
    expect(ban.code, ban.stderr).toBe(0);
    await waitFor('spire-agent to stop after its ban', async () => agent.child.exitCode !== null, agent.logs, 60_000);
    // SPIRE's agent read PermissionDeniedDetails{AGENT_BANNED} from the status details.
    expect(agent.logs.join('\n')).toContain('Agent is banned: removing SVID and shutting down');
    const rec = await unaryCall<{ banned: boolean }>(admin.Agent, 'GetAgent', { id: spireAgentId });
    expect(rec.banned).toBe(true);
  }, 90_000);
});

