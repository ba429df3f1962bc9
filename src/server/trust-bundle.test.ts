/**
 * TrustBundle with real CAs on a real LevelDB datastore: alone it serves exactly its CA's
 * bundle (contents and sequence) while publishing it; two of them sharing one store serve
 * the union, see each other's taints, and stop serving what the other revoked; with owner
 * IDs, a server killed between its CA's revoke and the datastore removal removes the revoked
 * authority on its first publish after the restart (and without owners it would stay).
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryJournalStore } from '../ca/journal-store.js';
import { MemoryKeyManager } from '../ca/key-manager.js';
import { ServerCa } from '../ca/server-ca.js';
import { openLevelDatastore, type LevelDatastore } from '../datastore/level/level.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { ChangeHub } from './hub.js';
import { BUNDLE_OWNER_FILE, loadBundleOwnerId, TrustBundle } from './trust-bundle.js';

const TD = 'example.org';
let dir: string;
let ds: LevelDatastore;
const stops: (() => Promise<void>)[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mayfly-trust-bundle-'));
  ds = await openLevelDatastore({ path: join(dir, 'db') });
});
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
  await ds.close();
  await rm(dir, { recursive: true, force: true });
});

/** A CA over the given key manager and journal: passing those of an earlier one is that CA's process restarted. */
async function newCa(state: { keyManager: MemoryKeyManager; journal: MemoryJournalStore } = { keyManager: new MemoryKeyManager(), journal: new MemoryJournalStore() }): Promise<ServerCa> {
  const ca = new ServerCa({ trustDomain: TD, ...state });
  await ca.init();
  return ca;
}

async function startTrustBundle(ca: ServerCa, hub: ChangeHub, errors: string[] = [], owner?: string): Promise<TrustBundle> {
  const tb = new TrustBundle({ ca, datastore: ds, hub, logger: { info() {}, warn() {}, error: (_f, m) => errors.push(m) }, ...(owner !== undefined ? { owner } : {}) });
  await tb.start();
  stops.push(() => tb.stop());
  return tb;
}

const skis = (ders: readonly Buffer[]): string[] => ders.map((d) => parseCertificate(d).subjectKeyId!.toString('hex')).sort();

/** Rotates the X.509 authority by hand and taints the old one; returns [old, new] IDs. */
async function rotateAndTaint(ca: ServerCa): Promise<[string, string]> {
  const old = ca.authorityState('x509').active!.id;
  const next = await ca.prepareAuthority('x509');
  await ca.activateAuthority('x509', next.id);
  await ca.taintAuthority('x509', old);
  return [old, next.id];
}

describe('TrustBundle', () => {
  it('alone, serves exactly its CA bundle with its sequence, and keeps the stored bundle in step (taint marked, revoke removed)', async () => {
    const ca = await newCa();
    const hub = new ChangeHub();
    const seen: number[] = [];
    hub.subscribe((t) => t.kind === 'ca' && seen.push(1));
    const tb = await startTrustBundle(ca, hub);
    const same = (): void => {
      expect(tb.bundle().equals(ca.getBundle())).toBe(true);
      expect(tb.bundle().sequence).toBe(ca.sequence);
      expect(tb.bundle().x509Authorities).toEqual(ca.getBundle().x509Authorities);
      expect(tb.taintedAuthorities()).toEqual(ca.taintedAuthorities());
    };
    same();
    const stored = async (): Promise<{ keys: { use: string; kid?: string; x5c?: string[]; mayfly_tainted?: boolean }[] }> => JSON.parse((await ds.getBundle(TD))!.bundle);
    expect((await stored()).keys).toHaveLength(2);

    const [old] = await rotateAndTaint(ca);
    same();
    await tb.settled();
    expect(tb.taintedAuthorities().x509).toEqual([old]);
    const tainted = (await stored()).keys.filter((k) => k.mayfly_tainted === true);
    expect(skis(tainted.map((k) => Buffer.from(k.x5c![0]!, 'base64')))).toEqual([old]);

    await ca.revokeAuthority('x509', old);
    same();
    await tb.settled();
    const x509 = (await stored()).keys.filter((k) => k.use === 'x509-svid').map((k) => Buffer.from(k.x5c![0]!, 'base64'));
    expect(skis(x509)).toEqual(skis(ca.getBundle().x509Authorities));
    expect((await ds.getBundle(TD))!.sequence).toBeGreaterThanOrEqual(ca.sequence);
    expect(seen.length).toBeGreaterThan(0);
  });

  it('shared by two CAs through one store: each serves the union, hears the other\'s taint, and drops what the other revoked', async () => {
    const caA = await newCa();
    const caB = await newCa();
    const hubA = new ChangeHub();
    const hubB = new ChangeHub();
    const a = await startTrustBundle(caA, hubA);
    const b = await startTrustBundle(caB, hubB);
    // What PostgreSQL LISTEN/NOTIFY does between servers: tell the hubs of a committed bundle write.
    const notify = async (): Promise<void> => {
      await a.settled();
      await b.settled();
      hubA.publish({ kind: 'bundles' });
      hubB.publish({ kind: 'bundles' });
      await a.settled();
      await b.settled();
    };
    await notify();
    const both = skis([...caA.getBundle().x509Authorities, ...caB.getBundle().x509Authorities]);
    expect(skis(a.bundle().x509Authorities)).toEqual(both);
    expect(skis(b.bundle().x509Authorities)).toEqual(both);
    const kids = [...caA.getBundle().jwtAuthorities.keys(), ...caB.getBundle().jwtAuthorities.keys()].sort();
    expect([...a.bundle().jwtAuthorities.keys()].sort()).toEqual(kids);
    expect([...b.bundle().jwtAuthorities.keys()].sort()).toEqual(kids);

    const seqB = b.bundle().sequence!;
    const [old, next] = await rotateAndTaint(caA);
    await notify();
    expect(skis(b.bundle().x509Authorities)).toContain(next);
    expect(b.taintedAuthorities().x509).toEqual([old]);
    expect(b.bundle().sequence!).toBeGreaterThan(seqB);

    await caA.revokeAuthority('x509', old);
    // Not served by A from the moment its CA revoked it, even before the store is written.
    expect(skis(a.bundle().x509Authorities)).not.toContain(old);
    await notify();
    expect(skis(b.bundle().x509Authorities)).not.toContain(old);
    expect(skis(b.bundle().x509Authorities)).toEqual(skis([...caA.getBundle().x509Authorities, ...caB.getBundle().x509Authorities]));
    expect(b.taintedAuthorities().x509).toEqual([]);
  });

  it('serves its CA bundle when the stored bundle of its trust domain does not parse, and says so', async () => {
    await ds.setBundle({ trustDomain: TD, bundle: '{"keys": "junk"}', sequence: 9 });
    const ca = await newCa();
    const errors: string[] = [];
    const tb = await startTrustBundle(ca, new ChangeHub(), errors);
    expect(tb.bundle().equals(ca.getBundle())).toBe(true);
    expect(errors.join('\n')).toMatch(/publishing the CA authorities/);
  });

  /**
   * Server A's CA revokes its old X.509 and JWT authorities and A dies before publishing:
   * its TrustBundle is stopped first (no event reaches it), so the CA journal has the
   * revoke and the datastore never heard of it, the state a kill in that window leaves.
   * Then A restarts: a new CA over the same keys and journal, a new TrustBundle.
   * Returns what is stored and what B serves, before and after the restart.
   */
  async function crashAfterRevoke(owners: { a?: string; b?: string }): Promise<{ old: string; oldJwt: string; before: { stored: string[]; atB: string[] }; after: { stored: string[]; storedJwt: string[]; atB: string[]; atBJwt: string[] }; expectAtB: string[]; caB: ServerCa }> {
    const stateA = { keyManager: new MemoryKeyManager(), journal: new MemoryJournalStore() };
    const caA = await newCa(stateA);
    const caB = await newCa();
    const hubA = new ChangeHub();
    const hubB = new ChangeHub();
    const a = await startTrustBundle(caA, hubA, [], owners.a);
    const b = await startTrustBundle(caB, hubB, [], owners.b);
    const [old] = await rotateAndTaint(caA);
    const oldJwt = caA.authorityState('jwt').active!.id;
    await caA.activateAuthority('jwt', (await caA.prepareAuthority('jwt')).id);
    await caA.taintAuthority('jwt', oldJwt);
    await a.settled();
    const storedNow = async (): Promise<{ x509: string[]; jwt: string[] }> => {
      const doc = JSON.parse((await ds.getBundle(TD))!.bundle) as { keys: { use: string; kid?: string; x5c?: string[] }[] };
      return {
        x509: skis(doc.keys.filter((k) => k.use === 'x509-svid').map((k) => Buffer.from(k.x5c![0]!, 'base64'))),
        jwt: doc.keys.filter((k) => k.use === 'jwt-svid').map((k) => k.kid!).sort(),
      };
    };
    const atB = async (): Promise<TrustBundle> => {
      hubB.publish({ kind: 'bundles' });
      await b.settled();
      return b;
    };
    expect(skis((await atB()).bundle().x509Authorities)).toContain(old);
    expect((await storedNow()).jwt).toContain(oldJwt);

    await a.stop();
    await caA.revokeAuthority('x509', old);
    await caA.revokeAuthority('jwt', oldJwt);
    expect(skis(caA.getBundle().x509Authorities)).not.toContain(old);
    const before = { stored: (await storedNow()).x509, atB: skis((await atB()).bundle().x509Authorities) };

    const caA2 = await newCa(stateA);
    expect(skis(caA2.getBundle().x509Authorities)).toEqual(skis(caA.getBundle().x509Authorities));
    const a2 = await startTrustBundle(caA2, hubA, [], owners.a);
    await a2.settled();
    const served = (await atB()).bundle();
    const stored = await storedNow();
    return {
      old,
      oldJwt,
      before,
      after: { stored: stored.x509, storedJwt: stored.jwt, atB: skis(served.x509Authorities), atBJwt: [...served.jwtAuthorities.keys()].sort() },
      expectAtB: skis([...caA2.getBundle().x509Authorities, ...caB.getBundle().x509Authorities]),
      caB,
    };
  }

  it('with owner IDs, a server killed after its CA revoked but before the removal was stored removes it on its first publish after the restart', async () => {
    const r = await crashAfterRevoke({ a: 'owner-a', b: 'owner-b' });
    // The crash window is real: the revoked authority is still stored and trusted by B.
    expect(r.before.stored).toContain(r.old);
    expect(r.before.atB).toContain(r.old);
    // After A's restart it is gone from the store and from what B serves; B's own stay.
    expect(r.after.stored).not.toContain(r.old);
    expect(r.after.storedJwt).not.toContain(r.oldJwt);
    expect(r.after.atB).toEqual(r.expectAtB);
    expect(r.after.atBJwt).not.toContain(r.oldJwt);
    for (const kid of r.caB.getBundle().jwtAuthorities.keys()) expect(r.after.atBJwt).toContain(kid);
  });

  it('without owner IDs the same crash leaves the revoked authority stored and trusted by the other server (the hole owners close)', async () => {
    const r = await crashAfterRevoke({});
    expect(r.after.stored).toContain(r.old);
    expect(r.after.storedJwt).toContain(r.oldJwt);
    expect(r.after.atB).toContain(r.old);
  });
});

describe('loadBundleOwnerId', () => {
  it('creates a random ID once (0600, in a 0700 directory it creates), returns it again after a restart, and refuses a damaged file', async () => {
    const dataDir = join(dir, 'server-data');
    const id = loadBundleOwnerId(dataDir);
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect((await stat(join(dataDir, BUNDLE_OWNER_FILE))).mode & 0o777).toBe(0o600);
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    expect(loadBundleOwnerId(dataDir)).toBe(id);
    expect(loadBundleOwnerId(join(dir, 'another-server'))).not.toBe(id);
    await writeFile(join(dataDir, BUNDLE_OWNER_FILE), 'not an id\n', { mode: 0o600 });
    expect(() => loadBundleOwnerId(dataDir)).toThrow(/bundle owner ID/);
  });
});
