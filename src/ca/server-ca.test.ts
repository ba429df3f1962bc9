import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMayflyError } from '../spiffe/errors.js';
import { TrustDomain } from '../spiffe/id.js';
import { exportPkcs8Pem, exportSpkiDer, generateKeyPair } from '../spiffe/keys.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { makeHostileCert } from '../spiffe/x509/testing.js';
import { validateJwtSvid } from '../spiffe/jwt/index.js';
import { parseCertificate, pemEncodeCertificates, verifyX509Svid } from '../spiffe/x509/index.js';
import type { CaEvent } from './authority.js';
import { DiskKeyManager } from './disk-key-manager.js';
import { FileJournalStore } from './journal-store.js';
import { mintAuthorityStillUsable, mintX509SvidsFromCsrs } from './mint.js';
import { ServerCa, type ServerCaConfig } from './server-ca.js';
import { RecordingLogger, TestClock, writeOperatorCa } from './testing.js';
import { loadDiskUpstreamAuthority } from './upstream.js';

const TD = TrustDomain.parse('example.org');
const HOUR = 3600;
const leafKey = generateKeyPair('ec-p256');
const leafSpki = exportSpkiDer(leafKey.publicKey);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-ca-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

interface Made {
  ca: ServerCa;
  clock: TestClock;
  log: RecordingLogger;
  events: CaEvent[];
}

async function makeCa(clock: TestClock, extra: Partial<ServerCaConfig> = {}, dataDir = join(dir, 'data')): Promise<Made> {
  const log = new RecordingLogger();
  const ca = new ServerCa({
    trustDomain: 'example.org',
    keyManager: new DiskKeyManager({ dataDir }),
    journal: new FileJournalStore({ path: join(dataDir, 'ca-journal.json') }),
    now: clock.now,
    logger: log,
    ...extra,
  });
  const events: CaEvent[] = [];
  ca.onEvent((e) => events.push(e));
  await ca.init();
  return { ca, clock, log, events };
}

function mint(ca: ServerCa, path = '/workload', ttlSeconds?: number) {
  return ca.signX509Svid({ spiffeId: `spiffe://example.org${path}`, publicKeySpki: leafSpki, ...(ttlSeconds ? { ttlSeconds } : {}) });
}

function verifies(chain: Buffer[], ca: ServerCa, now: Date): boolean {
  try {
    verifyX509Svid(chain, ca.getBundle(), { now });
    return true;
  } catch {
    return false;
  }
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

describe('ServerCa: start, restart, minting', () => {
  it('a fresh start creates an active X.509 CA and JWT key, published in a bundle with sequence 1', async () => {
    const { ca, clock } = await makeCa(new TestClock());
    const x = ca.authorityState('x509');
    const j = ca.authorityState('jwt');
    expect(x.active?.status).toBe('active');
    expect(x.prepared).toBeUndefined();
    expect(j.active?.status).toBe('active');
    const bundle = ca.getBundle();
    expect(bundle.sequence).toBe(1);
    expect(bundle.x509Authorities).toHaveLength(1);
    expect(bundle.x509Authorities[0]!.equals(x.active!.certificate!)).toBe(true);
    expect([...bundle.jwtAuthorities.keys()]).toEqual([j.active!.id]);
    // X.509 authority id = hex SKI of the CA certificate, as SPIRE
    expect(parseCertificate(x.active!.certificate!).subjectKeyId!.toString('hex')).toBe(x.active!.id);
    // default CA TTL is 24 h (certificate starts 10 s early)
    expect(x.active!.notAfter.getTime() - clock.ms).toBe(24 * HOUR * 1000);

    const svid = mint(ca);
    expect(svid.certificates).toHaveLength(1); // self-signed mode: leaf only, never the root
    const leaf = parseCertificate(svid.certificates[0]!);
    expect(leaf.authorityKeyId!.toString('hex')).toBe(x.active!.id);
    expect(leaf.uriSans).toEqual(['spiffe://example.org/workload']);
    expect(leaf.notAfter.getTime()).toBe(svid.expiresAt.getTime());
    expect(svid.expiresAt.getTime() - clock.ms).toBe(HOUR * 1000); // default X.509-SVID TTL
    expect(svid.authorityId).toBe(x.active!.id);
    expect(verifies(svid.certificates, ca, clock.now())).toBe(true);

    const jwt = ca.signJwtSvid({ spiffeId: 'spiffe://example.org/workload', audience: ['db'] });
    const parsed = validateJwtSvid(jwt.token, { audience: 'db', bundles: bundle, now: clock.now() });
    expect(parsed.spiffeId.toString()).toBe('spiffe://example.org/workload');
    expect(jwt.expiresAt.getTime() - clock.ms).toBe(300 * 1000); // default JWT-SVID TTL
    expect(jwt.authorityId).toBe(j.active!.id);
  });

  it('a restart reloads the same authorities: identical bundle, SVIDs from before still verify', async () => {
    const clock = new TestClock();
    const first = await makeCa(clock);
    await first.ca.prepareAuthority('x509');
    const before = first.ca.getBundle();
    const svid = mint(first.ca);
    const jwt = first.ca.signJwtSvid({ spiffeId: 'spiffe://example.org/w', audience: ['a'] });
    first.ca.stop();

    clock.advance(60);
    const second = await makeCa(clock);
    const after = second.ca.getBundle();
    expect(after.toJson()).toBe(before.toJson());
    expect(after.sequence).toBe(before.sequence);
    expect(second.ca.authorityState('x509').active!.id).toBe(first.ca.authorityState('x509').active!.id);
    expect(second.ca.authorityState('x509').prepared!.id).toBe(first.ca.authorityState('x509').prepared!.id);
    expect(verifies(svid.certificates, second.ca, clock.now())).toBe(true);
    expect(validateJwtSvid(jwt.token, { audience: 'a', bundles: after, now: clock.now() }).spiffeId.toString()).toBe('spiffe://example.org/w');
    expect(mint(second.ca).authorityId).toBe(svid.authorityId);
    expect(second.log.lines.filter((l) => l.level === 'warn')).toEqual([]);
  });

  it('caps SVID lifetimes at the signing authority\'s NotAfter', async () => {
    const { ca, clock } = await makeCa(new TestClock());
    const caNotAfter = ca.authorityState('x509').active!.notAfter;
    const long = mint(ca, '/long', 48 * HOUR);
    expect(long.expiresAt.getTime()).toBe(caNotAfter.getTime());
    expect(parseCertificate(long.certificates[0]!).notAfter.getTime()).toBe(caNotAfter.getTime());
    const jwt = ca.signJwtSvid({ spiffeId: 'spiffe://example.org/w', audience: ['a'], ttlSeconds: 48 * HOUR });
    expect(jwt.expiresAt.getTime()).toBe(ca.authorityState('jwt').active!.notAfter.getTime());
    expect(verifies(long.certificates, ca, clock.now())).toBe(true);
  });

  it('refuses identities outside its trust domain, trust domain IDs, and use before init', async () => {
    const { ca } = await makeCa(new TestClock());
    expect(() => ca.signX509Svid({ spiffeId: 'spiffe://other.org/w', publicKeySpki: leafSpki })).toThrow(/not in trust domain example.org/);
    expect(() => ca.signX509Svid({ spiffeId: 'spiffe://example.org', publicKeySpki: leafSpki })).toThrow(/needs a path/);
    expect(() => ca.signJwtSvid({ spiffeId: 'spiffe://other.org/w', audience: ['a'] })).toThrow(/not in trust domain/);
    expect(() => ca.signX509Svid({ spiffeId: 'spiffe://example.org/a/../b', publicKeySpki: leafSpki })).toThrow();
    const fresh = new ServerCa({ trustDomain: TD, keyManager: new DiskKeyManager({ dataDir: join(dir, 'x') }), journal: new FileJournalStore({ path: join(dir, 'x', 'j') }) });
    expect(() => fresh.signX509Svid({ spiffeId: 'spiffe://example.org/w', publicKeySpki: leafSpki })).toThrow(expect.objectContaining({ code: 'ERR_CA_NOT_READY' }));
  });

  it('keeps CA key files 0600 in a 0700 directory and refuses to start on a key file made 0644', async () => {
    const clock = new TestClock();
    const { ca } = await makeCa(clock);
    const keysDir = join(dir, 'data', 'keys');
    expect(statSync(keysDir).mode & 0o777).toBe(0o700);
    const keyFile = join(keysDir, ca.authorityState('x509').active!.keyId + '.pem');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(keysDir, ca.authorityState('jwt').active!.keyId + '.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'data', 'ca-journal.json')).mode & 0o777).toBe(0o600);

    chmodSync(keyFile, 0o644);
    const err = await makeCa(clock).catch((e: unknown) => e);
    expect(isMayflyError(err, 'ERR_CA_KEY_PERMISSIONS')).toBe(true);
    expect((err as Error).message).toContain(`chmod 600 ${keyFile}`);
  });
});

describe('ServerCa: jwt_issuer', () => {
  const claims = (token: string): Record<string, unknown> => JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString('utf8')) as Record<string, unknown>;

  it('JWT-SVIDs carry iss = jwtIssuer when set, and no iss when unset', async () => {
    const clock = new TestClock();
    const withIss = await makeCa(clock, { jwtIssuer: 'https://oidc.example.org' }, join(dir, 'a'));
    const token = withIss.ca.signJwtSvid({ spiffeId: 'spiffe://example.org/w', audience: ['db'] }).token;
    expect(claims(token).iss).toBe('https://oidc.example.org');
    expect(validateJwtSvid(token, { audience: 'db', bundles: withIss.ca.getBundle(), now: clock.now() }).spiffeId.toString()).toBe('spiffe://example.org/w');
    const without = await makeCa(clock, {}, join(dir, 'b'));
    expect('iss' in claims(without.ca.signJwtSvid({ spiffeId: 'spiffe://example.org/w', audience: ['db'] }).token)).toBe(false);
    expect(() => new ServerCa({ trustDomain: 'example.org', keyManager: new DiskKeyManager({ dataDir: join(dir, 'c') }), journal: new FileJournalStore({ path: join(dir, 'c.json') }), jwtIssuer: '' })).toThrow(TypeError);
  });
});

describe('ServerCa: rotation', () => {
  it('prepares at 1/2, activates at 5/6, keeps the old authority until it expires; sequence rises on each bundle change', async () => {
    const clock = new TestClock();
    const { ca, events } = await makeCa(clock);
    const a = ca.authorityState('x509').active!;
    const ja = ca.authorityState('jwt').active!;
    expect(ca.sequence).toBe(1);

    clock.advance(11 * HOUR + 59 * 60);
    await ca.tick();
    expect(ca.authorityState('x509').prepared).toBeUndefined();
    expect(ca.sequence).toBe(1);

    clock.advance(60); // 12 h: half of the CA's life
    await ca.tick();
    const b = ca.authorityState('x509').prepared!;
    expect(b).toBeDefined();
    expect(ca.authorityState('jwt').prepared).toBeDefined();
    expect(ca.getBundle().x509Authorities).toHaveLength(2);
    expect(ca.getBundle().jwtAuthorities.size).toBe(2);
    expect(ca.sequence).toBe(2); // one bump for the whole tick (both kinds changed together)
    expect(mint(ca).authorityId).toBe(a.id); // prepared does not sign yet

    clock.advance(7 * HOUR + 59 * 60); // 19:59
    await ca.tick();
    expect(ca.authorityState('x509').active!.id).toBe(a.id);
    const beforeRotation = mint(ca);
    const jwtBefore = ca.signJwtSvid({ spiffeId: 'spiffe://example.org/w', audience: ['x'] });

    clock.advance(60); // 20:00 ≥ 5/6
    await ca.tick();
    const st = ca.authorityState('x509');
    expect(st.active!.id).toBe(b.id);
    expect(st.old!.id).toBe(a.id);
    expect(st.prepared).toBeUndefined();
    expect(ca.authorityState('jwt').old!.id).toBe(ja.id);
    expect(ca.sequence).toBe(2); // activation does not change what the bundle trusts
    const afterRotation = mint(ca);
    expect(afterRotation.authorityId).toBe(b.id);
    expect(verifies(beforeRotation.certificates, ca, clock.now())).toBe(true);
    expect(verifies(afterRotation.certificates, ca, clock.now())).toBe(true);
    expect(validateJwtSvid(jwtBefore.token, { audience: 'x', bundles: ca.getBundle(), now: clock.now() })).toBeDefined();

    clock.advance(4 * HOUR - 1); // 23:59:59: B is half way through its life (it started at 12 h)
    await ca.tick();
    const c = ca.authorityState('x509').prepared!;
    expect(c).toBeDefined();
    expect(ca.getBundle().x509Authorities).toHaveLength(3); // A (old), B (active), C (prepared)
    expect(ca.sequence).toBe(3);
    clock.advance(1); // 24:00: A's NotAfter
    await ca.tick();
    expect(ca.getBundle().x509Authorities).toHaveLength(2);
    expect(ca.getBundle().x509Authorities.some((d) => d.equals(a.certificate!))).toBe(false);
    expect(ca.getBundle().jwtAuthorities.has(ja.id)).toBe(false);
    expect(ca.sequence).toBe(4);
    expect(ca.authorityState('x509').old).toBeUndefined();
    expect(existsSync(join(dir, 'data', 'keys', a.keyId + '.pem'))).toBe(false); // retired key deleted

    const seqs = events.filter((e) => e.type === 'bundle-updated').map((e) => (e as { sequence: number }).sequence);
    expect(seqs).toEqual([1, 2, 3, 4]);
    expect(events.filter((e) => e.type === 'authority-activated').map((e) => (e as { authorityId: string }).authorityId)).toContain(b.id);
  });

  it('no outage: every simulated minute across two full rotations, minting works and fresh and older SVIDs verify', async () => {
    const clock = new TestClock();
    const { ca } = await makeCa(clock);
    const x509Ids = new Set<string>();
    const jwtIds = new Set<string>();
    const recent: { certificates: Buffer[]; expiresAt: Date }[] = [];
    const recentJwt: string[] = [];
    let lastSeq = ca.sequence;
    for (let minute = 0; minute <= 36 * 60; minute++) {
      await ca.tick();
      expect(ca.sequence).toBeGreaterThanOrEqual(lastSeq);
      lastSeq = ca.sequence;
      const now = clock.now();
      const svid = mint(ca);
      x509Ids.add(svid.authorityId);
      // verified inside signX509Svid; here again against the bundle a relying party would fetch now
      verifyX509Svid(svid.certificates, ca.getBundle(), { now });
      recent.push(svid);
      // an SVID minted 55 minutes ago (possibly by the previous authority) still verifies
      if (recent.length > 55) {
        const old = recent.shift()!;
        expect(old.expiresAt.getTime()).toBeGreaterThan(now.getTime());
        verifyX509Svid(old.certificates, ca.getBundle(), { now });
      }
      const jwt = ca.signJwtSvid({ spiffeId: 'spiffe://example.org/w', audience: ['svc'] });
      jwtIds.add(jwt.authorityId);
      recentJwt.push(jwt.token);
      validateJwtSvid(jwt.token, { audience: 'svc', bundles: ca.getBundle(), now, leewaySeconds: 0 });
      if (recentJwt.length > 4) validateJwtSvid(recentJwt.shift()!, { audience: 'svc', bundles: ca.getBundle(), now, leewaySeconds: 0 });
      clock.advance(60);
    }
    // A until 20 h; afterwards each authority is prepared at 1/2 of its predecessor's life and
    // active from 5/6 of it, i.e. a new one every 12 h: B 20-32 h, C from 32 h.
    expect(x509Ids.size).toBe(3);
    expect(jwtIds.size).toBe(3);
    expect(ca.getBundle().x509Authorities.length).toBeLessThanOrEqual(3);
  }, 60_000);

  it('a server down past every NotAfter starts fresh authorities at the next start', async () => {
    const clock = new TestClock();
    const first = await makeCa(clock);
    const oldId = first.ca.authorityState('x509').active!.id;
    const seq = first.ca.sequence;
    clock.advance(30 * HOUR);
    const { ca } = await makeCa(clock);
    expect(ca.authorityState('x509').active!.id).not.toBe(oldId);
    expect(ca.getBundle().x509Authorities).toHaveLength(1);
    expect(ca.sequence).toBe(seq + 1);
    expect(verifies(mint(ca).certificates, ca, clock.now())).toBe(true);
  });
});

describe('ServerCa: scheduling and concurrency', () => {
  it('start() runs ticks on a timer; stop() ends them', async () => {
    const clock = new TestClock();
    const { ca } = await makeCa(clock);
    clock.advance(12 * HOUR);
    const prepared = new Promise<CaEvent>((resolve) => ca.onEvent((e) => e.type === 'authority-prepared' && resolve(e)));
    ca.start(5);
    try {
      const e = await prepared;
      expect(e).toMatchObject({ type: 'authority-prepared' });
    } finally {
      ca.stop();
    }
    expect(ca.authorityState('x509').prepared).toBeDefined();
  });

  it('concurrent ticks and operator actions are serialised: one consistent state', async () => {
    const clock = new TestClock();
    const { ca } = await makeCa(clock);
    clock.advance(12 * HOUR);
    const results = await Promise.all([ca.tick(), ca.prepareAuthority('x509'), ca.tick(), ca.tick()]);
    const st = ca.authorityState('x509');
    expect(st.all.filter((a) => a.status === 'prepared')).toHaveLength(1);
    expect(st.prepared!.id).toBe((results[1] as { id: string }).id);
    expect(ca.getBundle().x509Authorities).toHaveLength(2); // the first prepared one was replaced, not kept
    const again = await makeCa(clock);
    expect(again.ca.getBundle().toJson()).toBe(ca.getBundle().toJson());
  });

  it('signs with a KeyObject public key, DNS names and an agent ID', async () => {
    const { ca, clock } = await makeCa(new TestClock());
    const svid = ca.signAgentSvid({ spiffeId: 'spiffe://example.org/spire/agent/join_token/abc', publicKey: leafKey.publicKey, dnsNames: ['agent.example.org'] });
    const leaf = parseCertificate(svid.certificates[0]!);
    expect(leaf.dnsSans).toEqual(['agent.example.org']);
    expect(leaf.spki.equals(leafSpki)).toBe(true);
    expect(verifies(svid.certificates, ca, clock.now())).toBe(true);
  });
});

describe('ServerCa: manual control (localauthority)', () => {
  it('x509: prepare/activate/taint/revoke follow SPIRE\'s state rules', async () => {
    const clock = new TestClock();
    const { ca, events } = await makeCa(clock);
    const a = ca.authorityState('x509').active!;

    expect(await codeOf(ca.activateAuthority('x509'))).toBe('ERR_CA_AUTHORITY_STATE'); // nothing prepared
    expect(await codeOf(ca.taintAuthority('x509', a.id))).toBe('ERR_CA_AUTHORITY_STATE'); // active
    expect(await codeOf(ca.revokeAuthority('x509', a.id))).toBe('ERR_CA_AUTHORITY_STATE'); // active
    expect(await codeOf(ca.taintAuthority('x509', 'ffff'))).toBe('ERR_CA_AUTHORITY_NOT_FOUND');

    const svidA = mint(ca);
    const snapshotA = ca.x509MintAuthority().authority; // a batch in flight when the operator acts
    const usable = (): boolean => mintAuthorityStillUsable(snapshotA, { taintedX509: ca.taintedAuthorities().x509, bundle: ca.getBundle() });
    clock.advance(60);
    const seq0 = ca.sequence;
    const b = await ca.prepareAuthority('x509');
    expect(b.status).toBe('prepared');
    expect(ca.sequence).toBe(seq0 + 1);
    expect(await codeOf(ca.taintAuthority('x509', b.id))).toBe('ERR_CA_AUTHORITY_STATE'); // prepared
    expect(await codeOf(ca.revokeAuthority('x509', b.id))).toBe('ERR_CA_AUTHORITY_STATE');
    expect(await codeOf(ca.activateAuthority('x509', a.id))).toBe('ERR_CA_AUTHORITY_STATE'); // not the prepared one

    const activated = await ca.activateAuthority('x509', b.id);
    expect(activated.id).toBe(b.id);
    expect(activated.status).toBe('active');
    const st = ca.authorityState('x509');
    expect(st.old!.id).toBe(a.id);
    expect(verifies(svidA.certificates, ca, clock.now())).toBe(true); // old one still trusted
    expect(usable()).toBe(true); // rotated away, but neither tainted nor revoked: its SVIDs may go out

    const revokeUntainted: unknown = await ca.revokeAuthority('x509', a.id).catch((e: unknown) => e);
    expect((revokeUntainted as { code: string }).code).toBe('ERR_CA_AUTHORITY_STATE');
    expect((revokeUntainted as Error).message).toMatch(/taint it first/);

    const seq1 = ca.sequence;
    const tainted = await ca.taintAuthority('x509', a.id);
    expect(tainted.tainted).toBe(true);
    expect(ca.taintedAuthorities()).toEqual({ x509: [a.id], jwt: [] });
    expect(events).toContainEqual({ type: 'authority-tainted', kind: 'x509', authorityId: a.id });
    expect(ca.sequence).toBe(seq1 + 1);
    expect(await codeOf(ca.taintAuthority('x509', a.id))).toBe('ERR_CA_AUTHORITY_STATE'); // already tainted
    expect(verifies(svidA.certificates, ca, clock.now())).toBe(true); // tainted is still trusted
    expect(usable()).toBe(false); // but a batch minted with it must not be handed out
    expect(mintAuthorityStillUsable(ca.x509MintAuthority().authority, { taintedX509: ca.taintedAuthorities().x509, bundle: ca.getBundle() })).toBe(true);

    // the taint survives a restart
    const again = await makeCa(clock);
    expect(again.ca.taintedAuthorities().x509).toEqual([a.id]);

    const revoked = await ca.revokeAuthority('x509', a.id);
    expect(revoked.id).toBe(a.id);
    expect(ca.getBundle().x509Authorities).toHaveLength(1);
    expect(ca.sequence).toBe(seq1 + 2);
    expect(verifies(svidA.certificates, ca, clock.now())).toBe(false);
    expect(verifies(mint(ca).certificates, ca, clock.now())).toBe(true);
    expect(existsSync(join(dir, 'data', 'keys', a.keyId + '.pem'))).toBe(false);
    expect(await codeOf(ca.revokeAuthority('x509', a.id))).toBe('ERR_CA_AUTHORITY_NOT_FOUND');
    expect(ca.taintedAuthorities().x509).toEqual([]);
    expect(usable()).toBe(false); // revoked: no longer in the bundle
  });

  it('a minted SVID that fails our own verification is the CA\'s fault (ERR_CA_MINT_CHECK), and nothing is returned', async () => {
    const clock = new TestClock();
    const { ca } = await makeCa(clock);
    const other = await makeCa(clock, {}, join(dir, 'other'));
    // A snapshot whose bundle does not hold its own CA: a CA/bundle mismatch on the server.
    const broken = { ...ca.x509MintAuthority().authority, bundleRoots: other.ca.getBundle().x509Authorities };
    const csr = createCsr({ privateKey: leafKey.privateKey });
    const [outcome] = mintX509SvidsFromCsrs(broken, [{ csr, spiffeId: 'spiffe://example.org/w' }], clock.now());
    expect(outcome && 'error' in outcome && isMayflyError(outcome.error, 'ERR_CA_MINT_CHECK')).toBe(true);
    expect(outcome && 'leaf' in outcome).toBe(false);
    const [good] = mintX509SvidsFromCsrs(ca.x509MintAuthority().authority, [{ csr, spiffeId: 'spiffe://example.org/w' }], clock.now());
    expect(good && 'leaf' in good).toBe(true);
  });

  it('jwt: the same rules, and a revoked key no longer validates tokens', async () => {
    const clock = new TestClock();
    const { ca } = await makeCa(clock);
    const a = ca.authorityState('jwt').active!;
    const token = ca.signJwtSvid({ spiffeId: 'spiffe://example.org/w', audience: ['x'] }).token;
    expect(await codeOf(ca.revokeAuthority('jwt', a.id))).toBe('ERR_CA_AUTHORITY_STATE');
    const b = await ca.prepareAuthority('jwt');
    // preparing again replaces the prepared key (as SPIRE)
    const b2 = await ca.prepareAuthority('jwt');
    expect(b2.id).not.toBe(b.id);
    expect(ca.getBundle().jwtAuthorities.has(b.id)).toBe(false);
    expect(await codeOf(ca.activateAuthority('jwt', b.id))).toBe('ERR_CA_AUTHORITY_NOT_FOUND');
    await ca.activateAuthority('jwt', b2.id);
    expect(ca.signJwtSvid({ spiffeId: 'spiffe://example.org/w', audience: ['x'] }).authorityId).toBe(b2.id);
    await ca.taintAuthority('jwt', a.id);
    expect(ca.taintedAuthorities().jwt).toEqual([a.id]);
    await ca.revokeAuthority('jwt', a.id);
    expect(() => validateJwtSvid(token, { audience: 'x', bundles: ca.getBundle(), now: clock.now() })).toThrow(expect.objectContaining({ code: 'ERR_JWT_KID_UNKNOWN' }));
  });
});

describe('ServerCa: journal recovery', () => {
  it('drops a journal entry whose key is missing, with a warning, and carries on', async () => {
    const clock = new TestClock();
    const first = await makeCa(clock);
    const prepared = await first.ca.prepareAuthority('x509');
    const active = first.ca.authorityState('x509').active!;
    const seq = first.ca.sequence;
    rmSync(join(dir, 'data', 'keys', prepared.keyId + '.pem'));

    const { ca, log } = await makeCa(clock);
    expect(ca.authorityState('x509').active!.id).toBe(active.id);
    expect(ca.authorityState('x509').prepared).toBeUndefined();
    expect(ca.getBundle().x509Authorities).toHaveLength(1);
    expect(ca.sequence).toBe(seq + 1);
    const warn = log.lines.find((l) => l.level === 'warn');
    expect(warn?.message).toMatch(/key manager does not have/);
    expect(warn?.fields.authorityId).toBe(prepared.id);

    // the active key missing: a new active authority replaces it
    rmSync(join(dir, 'data', 'keys', active.keyId + '.pem'));
    const third = await makeCa(clock);
    expect(third.ca.authorityState('x509').active!.id).not.toBe(active.id);
    expect(verifies(mint(third.ca).certificates, third.ca, clock.now())).toBe(true);
    expect(third.ca.sequence).toBe(seq + 2);
  });

  it('refuses a corrupt journal or one of another trust domain instead of minting a new CA', async () => {
    const clock = new TestClock();
    await makeCa(clock);
    const path = join(dir, 'data', 'ca-journal.json');
    const good = readFileSync(path);
    writeFileSync(path, '{"version":1', { mode: 0o600 });
    expect(await codeOf(makeCa(clock))).toBe('ERR_CA_JOURNAL_INVALID');
    writeFileSync(path, good, { mode: 0o600 });
    expect(await codeOf(makeCa(clock, { trustDomain: 'other.org' }))).toBe('ERR_CA_CONFIG');
  });
});

describe('ServerCa: upstream authority from disk', () => {
  function opensslVerify(root: Buffer, chain: Buffer[], at: Date): string {
    writeFileSync(join(dir, 'ossl-root.pem'), pemEncodeCertificates([root]));
    writeFileSync(join(dir, 'ossl-leaf.pem'), pemEncodeCertificates([chain[0]!]));
    const untrusted: string[] = [];
    if (chain.length > 1) {
      writeFileSync(join(dir, 'ossl-untrusted.pem'), pemEncodeCertificates(chain.slice(1)));
      untrusted.push('-untrusted', join(dir, 'ossl-untrusted.pem'));
    }
    return execFileSync('openssl', [
      'verify', '-x509_strict', '-attime', String(Math.floor(at.getTime() / 1000)),
      '-CAfile', join(dir, 'ossl-root.pem'), ...untrusted, join(dir, 'ossl-leaf.pem'),
    ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  it('with an operator root + intermediate: chain is leaf, Mayfly CA, operator intermediate; bundle holds only the root', async () => {
    const clock = new TestClock();
    const op = writeOperatorCa(dir, { now: new Date(clock.ms - 3600_000), withIntermediate: true });
    const upstream = loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: op.keyFile, bundleFile: op.bundleFile, now: clock.now });
    expect(upstream.roots).toHaveLength(1);
    expect(upstream.intermediates.map((c) => c.equals(op.intermediate!))).toEqual([true]);
    const { ca } = await makeCa(clock, { upstream });

    const bundle = ca.getBundle();
    expect(bundle.x509Authorities).toHaveLength(1);
    expect(bundle.x509Authorities[0]!.equals(op.root)).toBe(true);
    const active = ca.authorityState('x509').active!;
    expect(active.upstreamAuthorityId).toBe(parseCertificate(op.intermediate!).subjectKeyId!.toString('hex'));

    const svid = mint(ca);
    expect(svid.certificates).toHaveLength(3);
    expect(svid.certificates[1]!.equals(active.certificate!)).toBe(true);
    expect(svid.certificates[2]!.equals(op.intermediate!)).toBe(true);
    // the Mayfly CA's SKI is the leaf's AKI; the operator intermediate's SKI is the Mayfly CA's AKI
    expect(parseCertificate(svid.certificates[0]!).authorityKeyId!.toString('hex')).toBe(active.id);
    expect(parseCertificate(active.certificate!).authorityKeyId!.equals(parseCertificate(op.intermediate!).subjectKeyId!)).toBe(true);
    // a relying party holding only the operator root accepts it
    verifyX509Svid(svid.certificates, { trustDomain: TD, x509Authorities: [op.root] }, { now: clock.now() });
    expect(opensslVerify(op.root, svid.certificates, clock.now())).toMatch(/OK/);
    // and without the operator intermediate it would not: the chain is needed as handed out
    expect(() => verifyX509Svid(svid.certificates.slice(0, 2), { trustDomain: TD, x509Authorities: [op.root] }, { now: clock.now() })).toThrow();
  });

  it('certFile holding intermediate + root: the root is published, never put in the chain', async () => {
    const clock = new TestClock();
    const op = writeOperatorCa(dir, { now: new Date(clock.ms - 3600_000), withIntermediate: true });
    // certFile: the operator intermediate followed by the root (a common layout)
    writeFileSync(op.certFile, pemEncodeCertificates([op.intermediate!, op.root]));
    const upstream = loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: op.keyFile, now: clock.now });
    expect(upstream.roots.map((r) => r.equals(op.root))).toEqual([true]);
    expect(upstream.intermediates.map((c) => c.equals(op.intermediate!))).toEqual([true]);
    const { ca } = await makeCa(clock, { upstream });
    const svid = mint(ca);
    expect(svid.certificates).toHaveLength(3);
    expect(svid.certificates[2]!.equals(op.intermediate!)).toBe(true);
    expect(svid.certificates.some((c) => c.equals(op.root))).toBe(false); // never the root
    verifyX509Svid(svid.certificates, { trustDomain: TD, x509Authorities: [op.root] }, { now: clock.now() });
    expect(opensslVerify(op.root, svid.certificates, clock.now())).toMatch(/OK/);
  });

  it('upstream root directly: chain is leaf + Mayfly intermediate; X.509 taint/revoke refused; rotation keeps the bundle', async () => {
    const clock = new TestClock();
    const op = writeOperatorCa(dir, { now: new Date(clock.ms - 3600_000) });
    const upstream = loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: op.keyFile, now: clock.now });
    const { ca } = await makeCa(clock, { upstream });
    expect(mint(ca).certificates).toHaveLength(2);
    expect(opensslVerify(op.root, mint(ca).certificates, clock.now())).toMatch(/OK/);

    const a = ca.authorityState('x509').active!;
    clock.advance(19 * HOUR + 30 * 60);
    await ca.tick();
    expect(ca.authorityState('x509').prepared).toBeDefined();
    expect(ca.getBundle().x509Authorities).toHaveLength(1); // preparing an intermediate does not touch the bundle
    const first = mint(ca);
    clock.advance(30 * 60);
    await ca.tick();
    expect(ca.authorityState('x509').active!.id).not.toBe(a.id);
    expect(ca.getBundle().x509Authorities).toHaveLength(1); // still only the operator root
    const second = mint(ca);
    verifyX509Svid(first.certificates, ca.getBundle(), { now: clock.now() });
    verifyX509Svid(second.certificates, ca.getBundle(), { now: clock.now() });
    expect(opensslVerify(op.root, second.certificates, clock.now())).toMatch(/OK/);
    expect(await codeOf(ca.taintAuthority('x509', a.id))).toBe('ERR_CA_AUTHORITY_STATE');
    expect(await codeOf(ca.revokeAuthority('x509', a.id))).toBe('ERR_CA_AUTHORITY_STATE');
  });

  it('self-signed mode also passes openssl verify -x509_strict', async () => {
    const clock = new TestClock();
    const { ca } = await makeCa(clock);
    const svid = mint(ca);
    expect(opensslVerify(ca.getBundle().x509Authorities[0]!, svid.certificates, clock.now())).toMatch(/OK/);
  });

  it('refuses an upstream key that does not match, a non-CA cert, and a key file others can read', async () => {
    const clock = new TestClock();
    const op = writeOperatorCa(dir, { now: new Date(clock.ms - 3600_000) });
    const other = writeOperatorCa(join(dir, 'data'), { now: new Date(clock.ms - 3600_000) });
    expect(() => loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: other.keyFile, now: clock.now })).toThrow(/does not belong/);
    chmodSync(op.keyFile, 0o644);
    expect(() => loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: op.keyFile, now: clock.now })).toThrow(/chmod 600/);
    chmodSync(op.keyFile, 0o600);
    expect(() => loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: op.keyFile, bundleFile: other.bundleFile, now: clock.now })).toThrow(/does not lead to any root/);
    expect(() => loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: op.keyFile, now: () => new Date(clock.ms + 30 * 86400_000) })).toThrow(/valid from/);
    expect(loadDiskUpstreamAuthority({ certFile: op.certFile, keyFile: op.keyFile, now: clock.now }).roots).toHaveLength(1);
  });

  it('refuses an upstream certificate that is not a CA, or a CA without keyUsage keyCertSign', () => {
    const clock = new TestClock();
    const cases: Array<[string, Parameters<typeof makeHostileCert>[0]]> = [
      ['not a CA', { isCA: false, keyUsage: [0] }],
      // Our verifier (like go-spiffe) requires keyCertSign: without keyUsage nothing minted under it verifies.
      ['CA without keyUsage', { isCA: true, keyUsage: null }],
      ['CA without keyCertSign', { isCA: true, keyUsage: [0] }],
    ];
    for (const [name, opts] of cases) {
      const key = generateKeyPair('ec-p256');
      const { certificate } = makeHostileCert({ ...opts, key, subject: { commonName: `upstream ${name}` }, notBefore: new Date(clock.ms - 3600_000), notAfter: new Date(clock.ms + 86400_000) });
      const certFile = join(dir, 'bad-upstream.pem');
      const keyFile = join(dir, 'bad-upstream.key');
      writeFileSync(certFile, pemEncodeCertificates([certificate]));
      writeFileSync(keyFile, exportPkcs8Pem(key.privateKey), { mode: 0o600 });
      let code: string | undefined;
      try {
        loadDiskUpstreamAuthority({ certFile, keyFile, now: clock.now });
      } catch (e) {
        code = (e as { code?: string }).code;
      }
      expect(code, name).toBe('ERR_CA_UPSTREAM_INVALID');
    }
  });
});
