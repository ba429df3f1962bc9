/**
 * TrustBundle with real CAs on a real LevelDB datastore: alone it serves exactly its CA's
 * bundle (contents and sequence) while publishing it; two of them sharing one store serve
 * the union, see each other's taints, and stop serving what the other revoked.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryJournalStore } from '../ca/journal-store.js';
import { MemoryKeyManager } from '../ca/key-manager.js';
import { ServerCa } from '../ca/server-ca.js';
import { openLevelDatastore, type LevelDatastore } from '../datastore/level/level.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { ChangeHub } from './hub.js';
import { TrustBundle } from './trust-bundle.js';

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

async function newCa(): Promise<ServerCa> {
  const ca = new ServerCa({ trustDomain: TD, keyManager: new MemoryKeyManager(), journal: new MemoryJournalStore() });
  await ca.init();
  return ca;
}

async function startTrustBundle(ca: ServerCa, hub: ChangeHub, errors: string[] = []): Promise<TrustBundle> {
  const tb = new TrustBundle({ ca, datastore: ds, hub, logger: { info() {}, warn() {}, error: (_f, m) => errors.push(m) } });
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
});
