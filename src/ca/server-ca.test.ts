import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMayflyError } from '../spiffe/errors.js';
import { validateJwtSvid } from '../spiffe/jwt/index.js';
import { parseCertificate } from '../spiffe/x509/index.js';
import type { CaEvent } from './authority.js';
import { DiskKeyManager } from './disk-key-manager.js';
import { FileJournalStore } from './journal-store.js';
import { ServerCa, type ServerCaConfig } from './server-ca.js';
import { TestClock } from './testing.js';
import { caTempDir, HOUR, leafKey, leafSpki, makeCaIn, mint, TD, verifies, type Made } from './testdata/server-ca-harness.js';

const tmp = caTempDir();
const makeCa = (clock: TestClock, extra: Partial<ServerCaConfig> = {}, dataDir = join(tmp.path, 'data')): Promise<Made> => makeCaIn(dataDir, clock, extra);

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
    const fresh = new ServerCa({ trustDomain: TD, keyManager: new DiskKeyManager({ dataDir: join(tmp.path, 'x') }), journal: new FileJournalStore({ path: join(tmp.path, 'x', 'j') }) });
    expect(() => fresh.signX509Svid({ spiffeId: 'spiffe://example.org/w', publicKeySpki: leafSpki })).toThrow(expect.objectContaining({ code: 'ERR_CA_NOT_READY' }));
  });

  it('keeps CA key files 0600 in a 0700 directory and refuses to start on a key file made 0644', async () => {
    const clock = new TestClock();
    const { ca } = await makeCa(clock);
    const keysDir = join(tmp.path, 'data', 'keys');
    expect(statSync(keysDir).mode & 0o777).toBe(0o700);
    const keyFile = join(keysDir, ca.authorityState('x509').active!.keyId + '.pem');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(keysDir, ca.authorityState('jwt').active!.keyId + '.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(tmp.path, 'data', 'ca-journal.json')).mode & 0o777).toBe(0o600);

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
    const withIss = await makeCa(clock, { jwtIssuer: 'https://oidc.example.org' }, join(tmp.path, 'a'));
    const token = withIss.ca.signJwtSvid({ spiffeId: 'spiffe://example.org/w', audience: ['db'] }).token;
    expect(claims(token).iss).toBe('https://oidc.example.org');
    expect(validateJwtSvid(token, { audience: 'db', bundles: withIss.ca.getBundle(), now: clock.now() }).spiffeId.toString()).toBe('spiffe://example.org/w');
    const without = await makeCa(clock, {}, join(tmp.path, 'b'));
    expect('iss' in claims(without.ca.signJwtSvid({ spiffeId: 'spiffe://example.org/w', audience: ['db'] }).token)).toBe(false);
    expect(() => new ServerCa({ trustDomain: 'example.org', keyManager: new DiskKeyManager({ dataDir: join(tmp.path, 'c') }), journal: new FileJournalStore({ path: join(tmp.path, 'c.json') }), jwtIssuer: '' })).toThrow(TypeError);
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
