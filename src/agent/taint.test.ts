/**
 * Which SVIDs a tainted authority affects (taint.ts), and what the cache and the agent do
 * about it, against the hand-written FakeServer on a manual clock.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SpiffeId, TrustDomain } from '../spiffe/id.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { JwtSvidSigner } from '../spiffe/jwt/signer.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { makeTestCa } from '../spiffe/x509/testing.js';
import { MayflyAgent } from './agent.js';
import { SvidCache } from './cache.js';
import type { ServerClient } from './server-client.js';
import { chainAuthorityIds, isChainTainted, isJwtTainted, jwtKidOf, NO_TAINTED_AUTHORITIES, taintedAuthoritiesOf } from './taint.js';
import { FakeServer, ManualScheduler, testEntry } from './testing.js';

const td = TrustDomain.parse('example.org');
const uid1000 = [{ type: 'unix', value: 'uid:1000' }];
const NOW = new Date('2030-01-01T00:00:00Z');
const ski = (der: Buffer): string => (parseCertificate(der).subjectKeyId as Buffer).toString('hex');
const aki = (der: Buffer | undefined): string => (parseCertificate(der as Buffer).authorityKeyId as Buffer).toString('hex');

describe('taint: which chains and tokens are affected', () => {
  const root = makeTestCa({ now: new Date(NOW.getTime() - 60_000) });
  const other = makeTestCa({ now: new Date(NOW.getTime() - 60_000) });
  const inter = makeTestCa({ upstream: root, now: new Date(NOW.getTime() - 60_000) });
  const leafKey = generateKeyPair('ec-p256');
  const mint = (ca: typeof root): Buffer =>
    ca.minter.mint({ spiffeId: SpiffeId.parse('spiffe://example.org/w'), publicKey: leafKey.publicKey, ttlSeconds: 600, now: NOW });

  it('names the leaf issuer, and each intermediate and its issuer', () => {
    const direct = mint(root);
    expect(chainAuthorityIds([direct])).toEqual([ski(root.certificate)]);
    const viaInter = [mint(inter), inter.certificate];
    expect(chainAuthorityIds(viaInter)).toEqual([ski(inter.certificate), ski(inter.certificate), ski(root.certificate)]);
    expect(chainAuthorityIds([Buffer.from('not a certificate')])).toEqual([]);
  });

  it('marks a chain tainted when any authority it depends on is, and only then', () => {
    const viaInter = [mint(inter), inter.certificate];
    const t = (ids: string[]): ReturnType<typeof taintedAuthoritiesOf> => taintedAuthoritiesOf({ taintedX509Authorities: ids });
    expect(isChainTainted(viaInter, t([ski(root.certificate)]))).toBe(true);
    expect(isChainTainted(viaInter, t([ski(inter.certificate)]))).toBe(true);
    expect(isChainTainted(viaInter, t([ski(other.certificate)]))).toBe(false);
    expect(isChainTainted([mint(other)], t([ski(root.certificate)]))).toBe(false);
    // IDs are compared as lowercase hex, colons tolerated.
    const upper = ski(root.certificate).toUpperCase().replace(/(..)(?!$)/g, '$1:');
    expect(isChainTainted([mint(root)], t([upper]))).toBe(true);
    expect(isChainTainted([mint(root)], NO_TAINTED_AUTHORITIES)).toBe(false);
    expect(taintedAuthoritiesOf({})).toBe(NO_TAINTED_AUTHORITIES);
  });

  it('reads the kid of a JWT-SVID and matches it against tainted kids', () => {
    const k = generateKeyPair('ec-p256');
    const token = new JwtSvidSigner({ privateKey: k.privateKey, kid: 'kid-a', now: () => NOW }).mint({ spiffeId: SpiffeId.parse('spiffe://example.org/w'), audience: ['x'], ttlSeconds: 60 });
    expect(jwtKidOf(token)).toBe('kid-a');
    expect(isJwtTainted(token, taintedAuthoritiesOf({ taintedJwtAuthorities: ['kid-a'] }))).toBe(true);
    expect(isJwtTainted(token, taintedAuthoritiesOf({ taintedJwtAuthorities: ['kid-b'] }))).toBe(false);
    expect(jwtKidOf('garbage')).toBeUndefined();
    expect(jwtKidOf('!!!.x.y')).toBeUndefined();
  });
});

function cacheSetup(maxBatch = 2) {
  const sched = new ManualScheduler(NOW);
  const server = new FakeServer({ scheduler: sched });
  const client = server.client({ mode: 'agent', roots: [], certChain: [], privateKey: server.ca.key.privateKey });
  const cache = new SvidCache({ trustDomain: td, issuer: client, workloadAttestors: [], scheduler: sched, random: () => 0.5, maxBatch });
  const push = async (): Promise<void> => {
    cache.applyUpdate({
      entries: server.entries, bundle: server.bundle(), federatedBundles: [], sequence: 1,
      taintedX509Authorities: server.tainted.x509, taintedJwtAuthorities: server.tainted.jwt,
    });
    await cache.settled();
  };
  return { sched, server, cache, push };
}

describe('SvidCache and tainted authorities', () => {
  it('re-issues at once, in batches, exactly the X509-SVIDs signed by the tainted authority', async () => {
    const { server, cache, push } = cacheSetup(2);
    server.entries = [1, 2, 3].map((i) => testEntry({ entryId: `e${i}`, spiffeId: `spiffe://example.org/w${i}`, createdAt: i }));
    await push();
    const oldCa = server.ca;
    server.rotateCa();
    // An entry that arrives after the rotation is signed by the new authority.
    server.entries = [...server.entries, testEntry({ entryId: 'e4', spiffeId: 'spiffe://example.org/w4', createdAt: 4 })];
    await push();
    const newId = server.authorityId();
    const oldId = server.authorityId(oldCa);
    expect(aki(cache.svidFor('e4')?.certChain[0])).toBe(newId);
    const e4Serial = cache.svidFor('e4')?.serialHex;
    const updates: string[][] = [];
    cache.subscribe(uid1000, (u) => updates.push(u.identities.map((i) => aki(i.certificates[0]))));
    const before = server.batches.length;

    expect(cache.taintedSvids(taintedAuthoritiesOf({ taintedX509Authorities: [oldId] })).sort()).toEqual(['e1', 'e2', 'e3']);
    server.tainted = { x509: [oldId], jwt: [] };
    await push(); // no time passes: not a half-life renewal
    expect(server.batches.slice(before)).toEqual([2, 1]);
    for (const id of ['e1', 'e2', 'e3', 'e4']) expect(aki(cache.svidFor(id)?.certChain[0])).toBe(newId);
    expect(cache.svidFor('e4')?.serialHex).toBe(e4Serial);
    expect(cache.taintedSvids()).toEqual([]);
    expect(updates.at(-1)).toEqual([newId, newId, newId, newId]);

    // The next update names the same taint: nothing more to re-issue.
    await push();
    expect(server.batches.slice(before)).toEqual([2, 1]);
  });

  it('drops JWT-SVIDs signed with a tainted kid, so the next fetch has the new kid', async () => {
    const { server, cache, push } = cacheSetup();
    server.entries = [testEntry({ entryId: 'e1', spiffeId: 'spiffe://example.org/w1' })];
    await push();
    const [first] = await cache.fetchJwtSvid(uid1000, { audience: ['db'] });
    expect(jwtKidOf(first?.token ?? '')).toBe('jwt-1');
    server.rotateJwtKey('jwt-2');
    await push();
    const [cached] = await cache.fetchJwtSvid(uid1000, { audience: ['db'] });
    expect(cached?.token).toBe(first?.token); // rotation alone: still cached
    server.tainted = { x509: [], jwt: ['jwt-1'] };
    await push();
    expect(cache.jwtCacheSize).toBe(0);
    const [after] = await cache.fetchJwtSvid(uid1000, { audience: ['db'] });
    expect(jwtKidOf(after?.token ?? '')).toBe('jwt-2');
    expect(server.jwtMints).toHaveLength(2);
  });
});

describe('MayflyAgent and tainted authorities (fake server)', () => {
  const dirs: string[] = [];
  const agents: MayflyAgent[] = [];
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('renews its own agent SVID before re-issuing workload SVIDs, and moves to the new authority', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mayfly-agent-taint-'));
    dirs.push(dir);
    const sched = new ManualScheduler(NOW);
    const server = new FakeServer({ scheduler: sched, joinTokens: ['tok'], agentTtlSeconds: 3600 });
    writeFileSync(join(dir, 'roots.pem'), pemEncodeCertificates([server.ca.certificate]));
    const calls: string[] = [];
    const factory = (c: Parameters<FakeServer['client']>[0]): ServerClient => {
      const inner = server.client(c);
      // Which authority signed the agent SVID this client authenticates with.
      const signer = c.mode === 'agent' ? aki(c.certChain[0]) : 'none';
      return {
        ...inner,
        renewAgent: (csr) => (calls.push(`renew:${signer}`), inner.renewAgent(csr)),
        newX509Svids: (b) => (calls.push(`batch:${b.length}:${signer}`), inner.newX509Svids(b)),
      };
    };
    const agent = new MayflyAgent({
      serverAddress: 'unused:1', trustDomain: 'example.org', dataDir: join(dir, 'data'), socketPath: join(dir, 'api.sock'),
      joinToken: 'tok', trustBundlePath: join(dir, 'roots.pem'),
      workloadAttestors: [{ name: 'unix', attest: async () => uid1000 }],
      scheduler: sched, random: () => 0.5, serverClientFactory: factory,
    });
    agents.push(agent);
    sched.watch(agent);
    server.entries = [1, 2].map((i) => testEntry({ entryId: `e${i}`, spiffeId: `spiffe://example.org/w${i}`, parentId: 'spiffe://example.org/spire/agent/join_token/tok' }));
    await agent.start();
    await agent.whenReady(5000);
    await agent.cache?.settled();
    const oldId = server.authorityId();
    expect(aki(agent.agentSvid?.certChain[0])).toBe(oldId);

    server.rotateCa();
    await agent.cache?.settled();
    const newId = server.authorityId();
    calls.length = 0;
    server.taint({ x509: [oldId] });
    await sched.settle(); // the agent SVID renewal, then the re-issue it gates
    expect(agent.cache?.svidFor('e1'), `workload SVIDs not re-issued; calls ${calls.join(',')}`).toBeDefined();
    expect(aki(agent.cache?.svidFor('e1')?.certChain[0]), `workload SVIDs not re-issued; calls ${calls.join(',')}`).toBe(newId);
    expect(aki(agent.cache?.svidFor('e2')?.certChain[0]), `workload SVIDs not re-issued; calls ${calls.join(',')}`).toBe(newId);
    // The renewal went first, with the old SVID; the re-issue with the renewed one.
    expect(calls).toEqual([`renew:${oldId}`, `batch:2:${newId}`]);
    expect(aki(agent.agentSvid?.certChain[0])).toBe(newId);
    expect(server.renewals).toHaveLength(1);
    expect(agent.sync?.state).toBe('streaming');
  });
});
