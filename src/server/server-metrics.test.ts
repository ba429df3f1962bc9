/**
 * The server's `mayfly_server_…` metrics as an operator scrapes them: a real ServerRunner
 * (LevelDB datastore, disk keys, join_token attestor, the admin socket and the agent API
 * on TCP) with its `/metrics` listener on 127.0.0.1, read over real HTTP after real calls:
 * agents attesting with good and bad join tokens, an operator rotating the X.509 CA
 * through the LocalAuthority API. The server's clock is pinned (a real instant taken at
 * the start, standing still), so every expiry gauge has an exact expected value.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { series } from '../observability/testing.js';
import { tempDirs } from '../securefs/testing.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { adminSocketClients, tcpClients, unaryCall, type ServerApiClients } from './client.js';
import { resolveServerConfig } from './config.js';
import { createServerLogger } from './observability.js';
import { ServerRunner } from './runner.js';

const TD = 'example.org';
const dirs = tempDirs('mayfly-server-metrics-');
const NOW = new Date(Math.floor(Date.now() / 1000) * 1000);

type Slot = { authority_id: string; expires_at: number } | null;
type State = { active: Slot; prepared: Slot; old: Slot };

describe('server metrics on a running server', () => {
  let runner: ServerRunner;
  let admin: ServerApiClients;
  let bundleRoots: Buffer[];
  const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${runner.httpPorts[0]}/metrics`)).text();

  const attest = async (token: string): Promise<number> => {
    const anon = tcpClients({ address: `127.0.0.1:${runner.server!.port}`, trustDomain: TD, bundleRoots });
    try {
      await unaryCall(anon.Agent, 'AttestAgent', {
        attestation_data: { type: 'join_token', payload: Buffer.from(token) },
        csr: createCsr({ privateKey: generateKeyPair().privateKey }),
      });
      return 0;
    } catch (err) {
      return (err as { code: number }).code;
    } finally {
      anon.close();
    }
  };

  beforeAll(async () => {
    const base = dirs.make();
    const settings = resolveServerConfig(undefined, { dataDir: join(base, 'data'), socketPath: join(base, 'private', 'api.sock'), bindPort: 0, trustDomain: TD });
    settings.bindAddress = '127.0.0.1';
    settings.metrics = { enabled: true, host: '127.0.0.1', port: 0 };
    runner = new ServerRunner({ settings, logger: createServerLogger('error'), now: () => NOW, drainMs: 200 });
    await runner.start();
    admin = adminSocketClients(settings.socketPath);
    bundleRoots = (await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {})).x509_authorities;
  }, 60_000);

  afterAll(async () => {
    admin?.close();
    await runner?.stop();
    dirs.cleanup();
  }, 60_000);

  it('gives the seconds until the active X.509 CA and JWT key expire, from the CA the server runs', async () => {
    const x509 = await unaryCall<State>(admin.LocalAuthority, 'GetX509AuthorityState', {});
    const jwt = await unaryCall<State>(admin.LocalAuthority, 'GetJWTAuthorityState', {});
    const text = await scrape();
    const left = (s: Slot): number => s!.expires_at - NOW.getTime() / 1000;
    expect(series(text, 'mayfly_server_x509_ca_expiry_seconds', { state: 'active' })).toBe(left(x509.active));
    expect(series(text, 'mayfly_server_jwt_authority_expiry_seconds', { state: 'active' })).toBe(left(jwt.active));
    expect(left(x509.active)).toBeGreaterThan(0);
    // Empty slots are absent, not 0 (0 would read as "expiring now").
    expect(series(text, 'mayfly_server_x509_ca_expiry_seconds', { state: 'prepared' })).toBeUndefined();
    expect(series(text, 'mayfly_server_x509_ca_expiry_seconds', { state: 'old' })).toBeUndefined();
  });

  it('counts each rotation step by kind and step, and the expiry gauge follows the slots', async () => {
    const rotations = (text: string, kind: string, step: string): number | undefined => series(text, 'mayfly_server_authority_rotations_total', { kind, step });
    const before = await scrape();
    for (const step of ['prepare', 'activate', 'taint', 'revoke']) expect(rotations(before, 'x509', step)).toBe(0);
    const prepared = await unaryCall<{ authority: Slot }>(admin.LocalAuthority, 'PrepareX509Authority', {});
    let text = await scrape();
    expect(rotations(text, 'x509', 'prepare')).toBe(1);
    expect(series(text, 'mayfly_server_x509_ca_expiry_seconds', { state: 'prepared' })).toBe(prepared.authority!.expires_at - NOW.getTime() / 1000);
    await unaryCall(admin.LocalAuthority, 'ActivateX509Authority', { authority_id: prepared.authority!.authority_id });
    const state = await unaryCall<State>(admin.LocalAuthority, 'GetX509AuthorityState', {});
    await unaryCall(admin.LocalAuthority, 'TaintX509Authority', { authority_id: state.old!.authority_id });
    text = await scrape();
    expect(rotations(text, 'x509', 'activate')).toBe(1);
    expect(rotations(text, 'x509', 'taint')).toBe(1);
    expect(rotations(text, 'x509', 'revoke')).toBe(0);
    expect(rotations(text, 'jwt', 'prepare')).toBe(0);
    expect(series(text, 'mayfly_server_x509_ca_expiry_seconds', { state: 'active' })).toBe(state.active!.expires_at - NOW.getTime() / 1000);
    expect(series(text, 'mayfly_server_x509_ca_expiry_seconds', { state: 'old' })).toBe(state.old!.expires_at - NOW.getTime() / 1000);
    expect(series(text, 'mayfly_server_x509_ca_expiry_seconds', { state: 'prepared' })).toBeUndefined();
    // Bring the test's bundle up to date: the agent API now presents an SVID of the new CA.
    bundleRoots = (await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {})).x509_authorities;
  });

  it('counts node attestations by attestor and result: a good join token, a bad one, a reused one', async () => {
    const count = async (result: string): Promise<number | undefined> => series(await scrape(), 'mayfly_server_node_attestations_total', { attestor: 'join_token', result });
    expect(await count('success')).toBe(0);
    expect(await count('failure')).toBe(0);
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
    expect(await attest(token.value)).toBe(0);
    expect(await attest('not-a-token')).not.toBe(0);
    expect(await attest(token.value)).not.toBe(0);
    expect(await count('success')).toBe(1);
    expect(await count('failure')).toBe(2);
  });

  it('times datastore calls by operation, failed ones included', async () => {
    const calls = async (operation: string): Promise<number> => series(await scrape(), 'mayfly_server_datastore_call_duration_seconds_count', { operation }) ?? 0;
    const created = await calls('createJoinToken');
    const consumed = await calls('consumeJoinToken');
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
    expect(await calls('createJoinToken')).toBe(created + 1);
    expect(await attest(token.value)).toBe(0);
    expect(await attest(token.value)).not.toBe(0);
    expect(await calls('consumeJoinToken')).toBe(consumed + 2);
    const text = await scrape();
    expect(series(text, 'mayfly_server_datastore_call_duration_seconds_bucket', { operation: 'consumeJoinToken', le: '+Inf' })).toBe(consumed + 2);
    expect(series(text, 'mayfly_server_datastore_call_duration_seconds_sum', { operation: 'consumeJoinToken' })).toBeGreaterThan(0);
  });
});
