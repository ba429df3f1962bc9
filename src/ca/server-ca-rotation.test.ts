import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMayflyError } from '../spiffe/errors.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { validateJwtSvid } from '../spiffe/jwt/index.js';
import { verifyX509Svid } from '../spiffe/x509/index.js';
import { mintAuthorityStillUsable, mintX509SvidsFromCsrs } from './mint.js';
import type { ServerCaConfig } from './server-ca.js';
import { TestClock } from './testing.js';
import { caTempDir, codeOf, HOUR, leafKey, makeCaIn, mint, verifies, type Made } from './testdata/server-ca-harness.js';

const tmp = caTempDir();
const makeCa = (clock: TestClock, extra: Partial<ServerCaConfig> = {}, dataDir = join(tmp.path, 'data')): Promise<Made> => makeCaIn(dataDir, clock, extra);

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
    expect(existsSync(join(tmp.path, 'data', 'keys', a.keyId + '.pem'))).toBe(false); // retired key deleted

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
    expect(existsSync(join(tmp.path, 'data', 'keys', a.keyId + '.pem'))).toBe(false);
    expect(await codeOf(ca.revokeAuthority('x509', a.id))).toBe('ERR_CA_AUTHORITY_NOT_FOUND');
    expect(ca.taintedAuthorities().x509).toEqual([]);
    expect(usable()).toBe(false); // revoked: no longer in the bundle
  });

  it('a minted SVID that fails our own verification is the CA\'s fault (ERR_CA_MINT_CHECK), and nothing is returned', async () => {
    const clock = new TestClock();
    const { ca } = await makeCa(clock);
    const other = await makeCa(clock, {}, join(tmp.path, 'other'));
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
