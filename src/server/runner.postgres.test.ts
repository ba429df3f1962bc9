/**
 * Two whole servers of one trust domain, each assembled by ServerRunner from a SPIRE-style
 * server.conf whose `DataStore "sql"` names PostgreSQL, sharing one real (throwaway)
 * database: what one server's admin API writes, the other's serves at once; and (SPIRE's
 * HA model) each serves one trust bundle holding both servers' CA authorities, so SVIDs of
 * either verify against it, an agent attested through one is accepted by the other, and
 * a revoke on one leaves what the other serves, even when the server that revoked was killed
 * before it could remove the authority from the shared bundle (its restart removes it).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiskKeyManager } from '../ca/disk-key-manager.js';
import { FileJournalStore } from '../ca/journal-store.js';
import { ServerCa } from '../ca/server-ca.js';
import { openPostgresDatastore } from '../datastore/postgres/postgres.js';
import { startTestPostgres, type TestPostgres } from '../datastore/postgres/testing.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { TrustDomain } from '../spiffe/id.js';
import { adminSocketClients, tcpClients, unaryCall, type ServerApiClients } from './client.js';
import type { WireBundle, WireX509Svid } from './messages.js';
import { resolveServerConfig } from './config.js';
import { parseHcl } from '../config/hcl.js';
import { createServerLogger } from './observability.js';
import { ServerRunner } from './runner.js';

let cluster: TestPostgres;
let dir: string;
const runners: ServerRunner[] = [];
const clients: ServerApiClients[] = [];

beforeAll(async () => {
  cluster = await startTestPostgres();
  dir = await mkdtemp(join(tmpdir(), 'mayfly-runner-pg-'));
});
afterAll(async () => {
  for (const c of clients) c.close();
  for (const r of runners) await r.stop();
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

function serverConf(name: string, trustDomain = 'example.org', keyManager = 'KeyManager "memory" { plugin_data {} }'): string {
  return `
    server {
      trust_domain = "${trustDomain}"
      data_dir = "${join(dir, name)}"
      socket_path = "${join(dir, `${name}.sock`)}"
      bind_port = "0"
    }
    plugins {
      DataStore "sql" {
        plugin_data {
          database_type = "postgres"
          connection_string = "host=${cluster.dir} user=mayfly dbname=postgres"
        }
      }
      ${keyManager}
    }`;
}

describe('ServerRunner with DataStore "sql" database_type "postgres"', () => {
  it('lets two servers share one database: an entry written through one is counted and refused as a duplicate by the other, and changes reach each change hub', async () => {
    const [a, b] = ['a', 'b'].map((name) => {
      const settings = resolveServerConfig(parseHcl(serverConf(name)), {});
      settings.metrics.enabled = false;
      return { settings, runner: new ServerRunner({ settings, logger: createServerLogger('error') }) };
    });
    for (const s of [a!, b!]) {
      runners.push(s.runner);
      await s.runner.start();
      clients.push(adminSocketClients(s.settings.socketPath));
    }
    const [adminA, adminB] = clients as [ServerApiClients, ServerApiClients];
    expect((await a!.runner.readiness()).checks.datastore).toBe(true);

    const entry = { spiffe_id: 'spiffe://example.org/web', parent_id: 'spiffe://example.org/node', selectors: [{ type: 'unix', value: 'uid:1000' }] };
    const created = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(adminA.Entry, 'BatchCreateEntry', { entries: [entry] });
    expect(created.results[0]!.status).toMatchObject({ code: 0 });
    expect(await unaryCall<{ count: number }>(adminB.Entry, 'CountEntries', {})).toMatchObject({ count: 1 });
    // The same registration through the other server is a duplicate (one shared uniqueness index).
    const again = await unaryCall<{ results: { status: { code: number } }[] }>(adminB.Entry, 'BatchCreateEntry', { entries: [entry] });
    expect(again.results[0]!.status.code).toBe(6); // ALREADY_EXISTS

    const metricsB = await b!.runner.metrics!.text();
    expect(metricsB).toMatch(/^mayfly_entries 1$/m);

    // A change made elsewhere (here: straight in the database's datastore, as another
    // server would) reaches this server's change hub, which its caches and streams follow.
    const agentId = 'spiffe://example.org/spire/agent/join_token/elsewhere';
    const heard: string[] = [];
    const unsubscribe = a!.runner.server!.hub.subscribe((t) => {
      if (t.kind === 'agent') heard.push(t.agentId);
    });
    const other = await openPostgresDatastore({ connectionString: `host=${cluster.dir} user=mayfly dbname=postgres` });
    try {
      await other.createAgent({ spiffeId: agentId, attestationType: 'join_token', serialNumber: '01', certNotAfter: 10 });
      // The runner's listening connection starts in the background: write until heard.
      for (let serial = 2; !heard.includes(agentId) && serial < 200; serial++) {
        await other.updateAgent(agentId, { serialNumber: serial.toString(16) });
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(heard).toContain(agentId);
    } finally {
      unsubscribe();
      await other.close();
    }
  });

  it('serves one merged trust bundle from both servers: SVIDs of either verify, agents are accepted by both, a revoke reaches the other', async () => {
    const TD = 'ha.example.org';
    const [a, b] = ['ha-a', 'ha-b'].map((name) => {
      const settings = resolveServerConfig(parseHcl(serverConf(name, TD)), {});
      settings.metrics.enabled = false;
      return { settings, runner: new ServerRunner({ settings, logger: createServerLogger('error') }) };
    });
    const admins: ServerApiClients[] = [];
    for (const s of [a!, b!]) {
      runners.push(s.runner);
      await s.runner.start();
      const c = adminSocketClients(s.settings.socketPath);
      clients.push(c);
      admins.push(c);
    }
    const [adminA, adminB] = admins as [ServerApiClients, ServerApiClients];
    const ski = (der: Buffer): string => parseCertificate(der).subjectKeyId!.toString('hex');
    const served = (admin: ServerApiClients): Promise<WireBundle> => unaryCall<WireBundle>(admin.Bundle, 'GetBundle', {});
    type State = { active: { authority_id: string } | null; old: { authority_id: string } | null };
    const state = (admin: ServerApiClients, kind: 'X509' | 'JWT'): Promise<State> => unaryCall<State>(admin.LocalAuthority, `Get${kind}AuthorityState`, {});
    /** Polls until `check` passes on what `admin` serves (other servers' writes arrive through LISTEN/NOTIFY). */
    const eventually = async (admin: ServerApiClients, check: (b: WireBundle) => boolean): Promise<WireBundle> => {
      let last = await served(admin);
      for (let i = 0; i < 200 && !check(last); i++) {
        await new Promise((r) => setTimeout(r, 50));
        last = await served(admin);
      }
      return last;
    };

    const x509A = (await state(adminA, 'X509')).active!.authority_id;
    const x509B = (await state(adminB, 'X509')).active!.authority_id;
    const jwtA = (await state(adminA, 'JWT')).active!.authority_id;
    const jwtB = (await state(adminB, 'JWT')).active!.authority_id;
    expect(x509A).not.toBe(x509B);
    const holdsBoth = (w: WireBundle): boolean => {
      const x = w.x509_authorities.map(ski);
      const j = w.jwt_authorities.map((k) => k.key_id);
      return x.includes(x509A) && x.includes(x509B) && j.includes(jwtA) && j.includes(jwtB);
    };
    const bundleA = await eventually(adminA, holdsBoth);
    const bundleB = await eventually(adminB, holdsBoth);
    expect(holdsBoth(bundleA)).toBe(true);
    expect(holdsBoth(bundleB)).toBe(true);
    expect(bundleA.x509_authorities.map(ski).sort()).toEqual(bundleB.x509_authorities.map(ski).sort());

    // An X.509-SVID minted by server B verifies against the bundle server A serves, and not
    // against A's own authorities alone.
    const td = TrustDomain.parse(TD);
    const key = generateKeyPair();
    const minted = await unaryCall<{ svid: WireX509Svid }>(adminB.SVID, 'MintX509SVID', { csr: createCsr({ privateKey: key.privateKey }), spiffe_id: `spiffe://${TD}/web`, ttl: 600 });
    expect(verifyX509Svid(minted.svid.cert_chain, { trustDomain: td, x509Authorities: bundleA.x509_authorities }).spiffeId.toString()).toBe(`spiffe://${TD}/web`);
    const onlyA = bundleA.x509_authorities.filter((d) => ski(d) === x509A);
    expect(() => verifyX509Svid(minted.svid.cert_chain, { trustDomain: td, x509Authorities: onlyA })).toThrow();

    // An agent attested through server A (join token) calls server B's agent API with its
    // agent SVID over mTLS, trusting B through the bundle A gave it at attestation.
    const token = await unaryCall<{ value: string }>(adminA.Agent, 'CreateJoinToken', { ttl: 600 });
    const anon = tcpClients({ address: `127.0.0.1:${a!.runner.server!.port}`, trustDomain: TD, bundleRoots: bundleA.x509_authorities });
    const agentKey = generateKeyPair();
    const attested = await unaryCall<{ svid: WireX509Svid; bundle: WireBundle }>(anon.Agent, 'AttestAgent', {
      attestation_data: { type: 'join_token', payload: Buffer.from(token.value) },
      csr: createCsr({ privateKey: agentKey.privateKey }),
    }).finally(() => anon.close());
    expect(holdsBoth(attested.bundle)).toBe(true);
    const agentId = attested.svid.spiffe_id;
    const entry = { spiffe_id: `spiffe://${TD}/agent-workload`, parent_id: agentId, selectors: [{ type: 'unix', value: 'uid:7' }] };
    const created = await unaryCall<{ results: { status: { code: number }; entry: { id: string } }[] }>(adminA.Entry, 'BatchCreateEntry', { entries: [entry] });
    expect(created.results[0]!.status.code).toBe(0);
    const agentAtB = tcpClients({
      address: `127.0.0.1:${b!.runner.server!.port}`,
      trustDomain: TD,
      bundleRoots: attested.bundle.x509_authorities,
      svid: { certChain: attested.svid.cert_chain, privateKey: agentKey.privateKey },
    });
    try {
      const workloadKey = generateKeyPair();
      const signed = await unaryCall<{ results: { status: { code: number; message: string }; svid: WireX509Svid | null }[] }>(agentAtB.SVID, 'BatchNewX509SVID', {
        params: [{ entry_id: created.results[0]!.entry.id, csr: createCsr({ privateKey: workloadKey.privateKey }) }],
      });
      expect(signed.results[0]!.status).toMatchObject({ code: 0 });
      // Signed by B, trusted by A's agent.
      expect(verifyX509Svid(signed.results[0]!.svid!.cert_chain, { trustDomain: td, x509Authorities: attested.bundle.x509_authorities }).spiffeId.toString()).toBe(entry.spiffe_id);
    } finally {
      agentAtB.close();
    }

    // Rotate server A's X.509 authority by hand (prepare, activate, taint, revoke, as SPIRE's
    // rules require): B stops serving A's old authority and serves the new one.
    const prepared = await unaryCall<{ authority: { authority_id: string } }>(adminA.LocalAuthority, 'PrepareX509Authority', {});
    const x509A2 = prepared.authority.authority_id;
    await unaryCall(adminA.LocalAuthority, 'ActivateX509Authority', { authority_id: x509A2 });
    await unaryCall(adminA.LocalAuthority, 'TaintX509Authority', { authority_id: x509A });
    await unaryCall(adminA.LocalAuthority, 'RevokeX509Authority', { authority_id: x509A });
    const afterRevoke = (w: WireBundle): boolean => {
      const x = w.x509_authorities.map(ski);
      return !x.includes(x509A) && x.includes(x509A2) && x.includes(x509B);
    };
    expect(afterRevoke(await served(adminA))).toBe(true);
    expect(afterRevoke(await eventually(adminB, afterRevoke))).toBe(true);
  });

  it('removes an authority its CA revoked just before the server was killed, on the first publish after the restart, from the store and from what the other server serves', async () => {
    const TD = 'crash.example.org';
    const dataA = join(dir, 'crash-a');
    const settingsOf = (name: string, km?: string) => {
      const settings = resolveServerConfig(parseHcl(serverConf(name, TD, km)), {});
      settings.metrics.enabled = false;
      return settings;
    };
    // A keeps its CA keys on disk, so a restarted A has the same CA (B's keys may live in memory).
    const settingsA = settingsOf('crash-a', `KeyManager "disk" { plugin_data { keys_path = "${join(dataA, 'keys.json')}" } }`);
    const settingsB = settingsOf('crash-b');
    const a = new ServerRunner({ settings: settingsA, logger: createServerLogger('error') });
    const b = new ServerRunner({ settings: settingsB, logger: createServerLogger('error') });
    runners.push(a, b);
    await a.start();
    await b.start();
    const adminA = adminSocketClients(settingsA.socketPath);
    const adminB = adminSocketClients(settingsB.socketPath);
    clients.push(adminA, adminB);
    const ski = (der: Buffer): string => parseCertificate(der).subjectKeyId!.toString('hex');
    const servedBy = async (admin: ServerApiClients): Promise<string[]> => (await unaryCall<WireBundle>(admin.Bundle, 'GetBundle', {})).x509_authorities.map(ski);
    const eventually = async (admin: ServerApiClients, check: (skis: string[]) => boolean): Promise<string[]> => {
      let last = await servedBy(admin);
      for (let i = 0; i < 200 && !check(last); i++) {
        await new Promise((r) => setTimeout(r, 50));
        last = await servedBy(admin);
      }
      return last;
    };
    const reader = await openPostgresDatastore({ connectionString: `host=${cluster.dir} user=mayfly dbname=postgres` });
    try {
      const stored = async (): Promise<string[]> => {
        const doc = JSON.parse((await reader.getBundle(TD))!.bundle) as { keys: { use: string; x5c?: string[] }[] };
        return doc.keys.filter((k) => k.use === 'x509-svid').map((k) => ski(Buffer.from(k.x5c![0]!, 'base64')));
      };
      type State = { active: { authority_id: string } | null };
      const x509B = (await unaryCall<State>(adminB.LocalAuthority, 'GetX509AuthorityState', {})).active!.authority_id;
      const old = (await unaryCall<State>(adminA.LocalAuthority, 'GetX509AuthorityState', {})).active!.authority_id;
      const prepared = await unaryCall<{ authority: { authority_id: string } }>(adminA.LocalAuthority, 'PrepareX509Authority', {});
      const next = prepared.authority.authority_id;
      await unaryCall(adminA.LocalAuthority, 'ActivateX509Authority', { authority_id: next });
      await unaryCall(adminA.LocalAuthority, 'TaintX509Authority', { authority_id: old });
      expect(await eventually(adminB, (x) => x.includes(old) && x.includes(next))).toEqual(expect.arrayContaining([old, next, x509B]));

      // The crash window: A's CA journals the revoke and the process dies before its trust
      // bundle publishes. Here A is stopped first, and the revoke is made by A's CA (same
      // keys, same journal) in a process that publishes nothing, as a killed one would.
      await a.stop();
      const offline = new ServerCa({ trustDomain: TD, keyManager: new DiskKeyManager({ dataDir: dataA }), journal: new FileJournalStore({ path: join(dataA, 'ca-journal.json') }) });
      await offline.init();
      await offline.revokeAuthority('x509', old);
      offline.stop();
      // Still stored, still trusted by B: nothing can name it any more but its owner.
      expect(await stored()).toContain(old);
      expect(await servedBy(adminB)).toContain(old);

      // A restarts with the same data directory: its first publish removes it.
      const a2 = new ServerRunner({ settings: settingsA, logger: createServerLogger('error') });
      runners.push(a2);
      await a2.start();
      const storedAfter = await stored();
      expect(storedAfter).not.toContain(old);
      expect(storedAfter.sort()).toEqual([next, x509B].sort());
      const atB = await eventually(adminB, (x) => !x.includes(old));
      expect(atB.sort()).toEqual([next, x509B].sort());
      const adminA2 = adminSocketClients(settingsA.socketPath);
      clients.push(adminA2);
      expect((await servedBy(adminA2)).sort()).toEqual([next, x509B].sort());
    } finally {
      await reader.close();
    }
  });
});
