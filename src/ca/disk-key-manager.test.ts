import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMayflyError } from '../spiffe/errors.js';
import { exportPkcs8Pem, exportSpkiDer, generateKeyPair } from '../spiffe/keys.js';
import { DiskKeyManager } from './disk-key-manager.js';
import { FileJournalStore } from './journal-store.js';
import { MemoryKeyManager } from './key-manager.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-keys-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const mode = (p: string): number => statSync(p).mode & 0o777;

describe('DiskKeyManager', () => {
  it('stores one 0600 PKCS#8 file per key in a 0700 directory, and survives a restart', async () => {
    const data = join(dir, 'data');
    const km = new DiskKeyManager({ dataDir: data });
    const a = await km.generateKey('x509-ca-a', 'ec-p256');
    const b = await km.generateKey('jwt-key-b', 'rsa-2048');
    expect(mode(data)).toBe(0o700);
    expect(mode(join(data, 'keys'))).toBe(0o700);
    expect(mode(join(data, 'keys', 'x509-ca-a.pem'))).toBe(0o600);
    expect(mode(join(data, 'keys', 'jwt-key-b.pem'))).toBe(0o600);
    expect(readFileSync(join(data, 'keys', 'x509-ca-a.pem'), 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    // no temp files left behind by the atomic write
    expect(readdirSync(join(data, 'keys')).sort()).toEqual(['jwt-key-b.pem', 'x509-ca-a.pem']);

    const again = new DiskKeyManager({ dataDir: data });
    expect(await again.list()).toEqual(['jwt-key-b', 'x509-ca-a']);
    const a2 = await again.getKey('x509-ca-a');
    const b2 = await again.getKey('jwt-key-b');
    expect(a2?.type).toBe('ec-p256');
    expect(b2?.type).toBe('rsa-2048');
    expect(exportSpkiDer(a2!.publicKey).equals(exportSpkiDer(a.publicKey))).toBe(true);
    expect(exportSpkiDer(b2!.publicKey).equals(exportSpkiDer(b.publicKey))).toBe(true);
    expect(await again.getKey('nope')).toBeUndefined();

    await again.deleteKey('x509-ca-a');
    await again.deleteKey('x509-ca-a'); // idempotent
    expect(await new DiskKeyManager({ dataDir: data }).list()).toEqual(['jwt-key-b']);
  });

  it('replacing a key under the same id is atomic and keeps 0600', async () => {
    const km = new DiskKeyManager({ dataDir: dir });
    const first = await km.generateKey('k', 'ec-p256');
    const second = await km.generateKey('k', 'ec-p256');
    expect(exportSpkiDer(first.publicKey).equals(exportSpkiDer(second.publicKey))).toBe(false);
    const fresh = await new DiskKeyManager({ dataDir: dir }).getKey('k');
    expect(exportSpkiDer(fresh!.publicKey).equals(exportSpkiDer(second.publicKey))).toBe(true);
    expect(mode(join(dir, 'keys', 'k.pem'))).toBe(0o600);
  });

  it('refuses a key file other users can read, telling the operator to chmod 600', async () => {
    await new DiskKeyManager({ dataDir: dir }).generateKey('k', 'ec-p256');
    const file = join(dir, 'keys', 'k.pem');
    chmodSync(file, 0o644);
    const km = new DiskKeyManager({ dataDir: dir });
    const err = await km.getKey('k').catch((e: unknown) => e);
    expect(isMayflyError(err, 'ERR_CA_KEY_PERMISSIONS')).toBe(true);
    expect((err as Error).message).toContain(`chmod 600 ${file}`);
    expect((err as Error).message).toContain('644');
    chmodSync(file, 0o640);
    await expect(km.getKey('k')).rejects.toThrow(/chmod 600/);
    chmodSync(file, 0o600);
    expect((await km.getKey('k'))?.type).toBe('ec-p256');
  });

  it('refuses a key directory with group/other bits and a symlinked key file', async () => {
    await new DiskKeyManager({ dataDir: dir }).generateKey('k', 'ec-p256');
    chmodSync(join(dir, 'keys'), 0o755);
    expect(() => new DiskKeyManager({ dataDir: dir })).toThrow(/chmod 700/);
    chmodSync(join(dir, 'keys'), 0o700);

    const outside = join(dir, 'elsewhere.pem');
    writeFileSync(outside, exportPkcs8Pem(generateKeyPair('ec-p256').privateKey), { mode: 0o600 });
    symlinkSync(outside, join(dir, 'keys', 'evil.pem'));
    const km = new DiskKeyManager({ dataDir: dir });
    await expect(km.getKey('evil')).rejects.toThrow(/symlinks are refused/);
  });

  it('rejects key ids that could escape the directory', async () => {
    const km = new DiskKeyManager({ dataDir: dir });
    for (const bad of ['../x', 'a/b', '.hidden', '', 'x'.repeat(129)]) {
      await expect(km.generateKey(bad, 'ec-p256')).rejects.toThrow(TypeError);
    }
  });
});

describe('MemoryKeyManager', () => {
  it('generates, returns, lists and deletes keys', async () => {
    const km = new MemoryKeyManager();
    const k = await km.generateKey('a', 'ec-p384');
    expect(k.type).toBe('ec-p384');
    expect(await km.getKey('a')).toBe(k);
    expect(await km.list()).toEqual(['a']);
    await km.deleteKey('a');
    expect(await km.getKey('a')).toBeUndefined();
  });
});

describe('FileJournalStore', () => {
  it('round-trips bytes in a 0600 file, atomically replaced', async () => {
    const path = join(dir, 'state', 'ca-journal.json');
    const store = new FileJournalStore({ path });
    expect(await store.load()).toBeUndefined();
    await store.save(Buffer.from('one'));
    await store.save(Buffer.from('two'));
    expect(Buffer.from((await new FileJournalStore({ path }).load())!).toString()).toBe('two');
    expect(mode(path)).toBe(0o600);
    expect(mode(join(dir, 'state'))).toBe(0o700);
    expect(readdirSync(join(dir, 'state'))).toEqual(['ca-journal.json']);
    chmodSync(path, 0o644);
    await expect(store.load()).rejects.toThrow(/chmod 600/);
  });
});
