import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { exportPkcs8Pem, generateKeyPair } from '../spiffe/keys.js';
import { AGENT_KEY_FILE, AGENT_SVID_FILE, AgentStateStore } from './store.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function storeWith(svidText: string): AgentStateStore {
  const dataDir = mkdtempSync(join(tmpdir(), 'mayfly-store-'));
  dirs.push(dataDir);
  const store = new AgentStateStore({ dataDir });
  store.ensureDir();
  writeFileSync(join(dataDir, AGENT_KEY_FILE), exportPkcs8Pem(generateKeyPair().privateKey), { mode: 0o600 });
  writeFileSync(join(dataDir, AGENT_SVID_FILE), svidText, { mode: 0o600 });
  return store;
}

describe('AgentStateStore.loadAgentSvid with a damaged SVID file', () => {
  it.each([
    ['an empty file', ''],
    ['a PEM block of junk', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'],
    ['not PEM at all', 'hello'],
  ])('reports %s as a problem instead of throwing', (_name, text) => {
    const r = storeWith(text).loadAgentSvid();
    expect(r.svid).toBeUndefined();
    expect(r.problem).toMatch(/cannot be read|holds no certificate/);
  });
});
