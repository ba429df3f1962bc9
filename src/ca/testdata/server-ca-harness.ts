/**
 * What every ServerCa test file shares: a temporary data directory per test, a CA made on
 * it with an injected clock, a recording logger and its events, and small helpers to mint
 * and verify (src/ca/server-ca*.test.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { TrustDomain } from '../../spiffe/id.js';
import { exportSpkiDer, generateKeyPair } from '../../spiffe/keys.js';
import { verifyX509Svid } from '../../spiffe/x509/index.js';
import type { CaEvent } from '../authority.js';
import { DiskKeyManager } from '../disk-key-manager.js';
import { FileJournalStore } from '../journal-store.js';
import { ServerCa, type ServerCaConfig } from '../server-ca.js';
import { RecordingLogger, type TestClock } from '../testing.js';

export const TD = TrustDomain.parse('example.org');
export const HOUR = 3600;
export const leafKey = generateKeyPair('ec-p256');
export const leafSpki = exportSpkiDer(leafKey.publicKey);

/** A fresh directory for each test of the calling file, removed after it. */
export function caTempDir(): { readonly path: string } {
  const d = { path: '' };
  beforeEach(() => {
    d.path = mkdtempSync(join(tmpdir(), 'mayfly-ca-'));
  });
  afterEach(() => rmSync(d.path, { recursive: true, force: true }));
  return d;
}

export interface Made {
  ca: ServerCa;
  clock: TestClock;
  log: RecordingLogger;
  events: CaEvent[];
}

export async function makeCaIn(dataDir: string, clock: TestClock, extra: Partial<ServerCaConfig> = {}): Promise<Made> {
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

export function mint(ca: ServerCa, path = '/workload', ttlSeconds?: number): ReturnType<ServerCa['signX509Svid']> {
  return ca.signX509Svid({ spiffeId: `spiffe://example.org${path}`, publicKeySpki: leafSpki, ...(ttlSeconds ? { ttlSeconds } : {}) });
}

export function verifies(chain: Buffer[], ca: ServerCa, now: Date): boolean {
  try {
    verifyX509Svid(chain, ca.getBundle(), { now });
    return true;
  } catch {
    return false;
  }
}

export async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}
