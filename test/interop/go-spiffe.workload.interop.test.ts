/**
 * go-spiffe v2 (workloadapi sources, jwtsvid validation, spiffetls) as a workload of a
 * real Mayfly agent. The verdicts are go-spiffe's: a failing fetch, a chain go-spiffe will
 * not verify, a JWT-SVID it will not validate, or a refused TLS handshake fails the test.
 *
 * mTLS identities come from attestation, not from picking among SVIDs: the server process
 * runs as our uid (entry `unix:uid:<ours>`), the client as uid 65534 (entry
 * `unix:uid:65534`), so each process gets a different default SVID from the same socket
 * because the agent told them apart by SO_PEERCRED. Spawning as another uid needs root,
 * which CI and the developer machines have.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGoWorkload, GoWorkloadServer, runGoWorkload, type RunResult } from './go-workload/client.js';
import { startMayfly, type MayflyDeployment } from './harness.js';

const NOBODY = 65534;
const OTHER = 65533;

function ok(r: RunResult): Record<string, unknown> {
  expect(r.stderr, `goworkload failed (exit ${r.code})`).toBe('');
  expect(r.code).toBe(0);
  const last = r.json.at(-1);
  expect(last).toBeDefined();
  return last as Record<string, unknown>;
}

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('this test spawns workloads as other uids and needs root (CI runs as root)');
}

describe('go-spiffe Workload API client against a Mayfly agent', () => {
  let m: MayflyDeployment;
  let serverId = '';
  let clientId = '';
  let intruderId = '';

  beforeAll(async () => {
    await buildGoWorkload();
    m = await startMayfly({ defaultEntryPath: '/go/server' });
    serverId = m.defaultSpiffeId as string;
    clientId = `spiffe://${m.trustDomain}/go/client`;
    intruderId = `spiffe://${m.trustDomain}/go/intruder`;
    await m.createEntry(clientId, [`unix:uid:${NOBODY}`]);
    await m.createEntry(intruderId, [`unix:uid:${OTHER}`]);
  }, 240_000); // a cold `go build` of go-spiffe and gRPC takes about a minute on 2 cores

  afterAll(async () => {
    await m?.stop();
  });

  it('X509Source: the SVID, its chain (verified by x509svid.Verify) and the bundle', async () => {
    const out = ok(await runGoWorkload(['x509'], { endpoint: m.endpoint }));
    expect(out.spiffeId).toBe(serverId);
    expect(out.trustDomain).toBe(m.trustDomain);
    expect(out.chainLength).toBeGreaterThanOrEqual(1);
    expect(out.chains).toBeGreaterThanOrEqual(1);
    expect(out.keyMatches).toBe(true);
    expect(out.bundleAuthorities).toBeGreaterThanOrEqual(1);
    // Only the entry selecting our uid; the others belong to other uids.
    expect(out.svidIds).toEqual([serverId]);
  });

  it('JWTSource: fetches a JWT-SVID, validates it locally against the JWT bundle and through the agent', async () => {
    const out = ok(await runGoWorkload(['jwt', '-audience', 'spiffe://interop.mayfly.test/db'], { endpoint: m.endpoint }));
    expect(out.spiffeId).toBe(serverId);
    expect(out.audience).toEqual(['spiffe://interop.mayfly.test/db']);
    expect(out.validatedByAgent).toBe(serverId);
    expect(out.wrongAudienceRejected).toBe(true);
    expect(Date.parse(out.expiry as string)).toBeGreaterThan(Date.now());
  });

  it('BundleSource: X.509 roots and JWT authorities of the trust domain', async () => {
    const out = ok(await runGoWorkload(['bundles', '-trust-domain', m.trustDomain], { endpoint: m.endpoint }));
    expect(out.trustDomain).toBe(m.trustDomain);
    expect(out.x509Authorities).toBeGreaterThanOrEqual(1);
    expect(out.selfSignedRoots).toBe(out.x509Authorities);
    expect((out.jwtAuthorities as string[]).length).toBeGreaterThanOrEqual(1);
  });

  it('a caller whose uid no entry selects gets no SVID (go-spiffe gives up)', async () => {
    requireRoot();
    const r = await runGoWorkload(['x509', '-timeout', '3s'], { endpoint: m.endpoint, uid: 65532, gid: 65532 });
    expect(r.code).not.toBe(0);
    expect(r.json).toEqual([]);
    expect(r.stderr).toMatch(/NewX509Source|context deadline|PermissionDenied|no identity/i);
  });

  it('spiffetls: mTLS between two workloads told apart by uid; wrong IDs are refused on both sides', async () => {
    requireRoot();
    const server = await GoWorkloadServer.start(['-listen', '127.0.0.1:0', '-authorize', clientId], { endpoint: m.endpoint });
    try {
      const listening = await server.waitFor((e) => e.event === 'listening', 'the server to listen');
      expect(listening.spiffeId).toBe(serverId);
      const addr = listening.addr as string;

      // The client (uid 65534) gets its own identity from the same socket and authorises the server's.
      const good = ok(
        await runGoWorkload(['client', '-connect', addr, '-authorize', serverId, '-message', 'ping from go'], { endpoint: m.endpoint, uid: NOBODY, gid: NOBODY }),
      );
      expect(good.spiffeId).toBe(clientId);
      expect(good.serverId).toBe(serverId);
      expect(good.reply).toBe(`${serverId} heard from ${clientId}: ping from go`);
      const served = await server.waitFor((e) => e.event === 'served', 'the server to serve the client');
      expect(served).toMatchObject({ peerId: clientId, message: 'ping from go' });

      // A client that expects another server ID refuses the handshake.
      const wrongServer = await runGoWorkload(
        ['client', '-connect', addr, '-authorize', `spiffe://${m.trustDomain}/go/someone-else`, '-message', 'x'],
        { endpoint: m.endpoint, uid: NOBODY, gid: NOBODY },
      );
      expect(wrongServer.code).not.toBe(0);
      expect(wrongServer.json).toEqual([]);
      expect(wrongServer.stderr).toMatch(/unexpected ID/);

      // A client with a valid SVID of the trust domain, but not the authorised ID, is refused by the server.
      const intruder = await runGoWorkload(['client', '-connect', addr, '-authorize', serverId, '-message', 'let me in'], {
        endpoint: m.endpoint,
        uid: OTHER,
        gid: OTHER,
      });
      expect(intruder.code).not.toBe(0);
      expect(intruder.json).toEqual([]);
      // (The wrong-server client above already made the server log a failed handshake: it sent
      // a bad_certificate alert. The intruder's is refused by the server's own authoriser.)
      const rejected = await server.waitFor(
        (e) => e.event === 'rejected' && String(e.error).includes(intruderId),
        'the server to reject the intruder',
      );
      expect(rejected.error).toMatch(/unexpected ID/);
      expect(server.events.filter((e) => e.event === 'served')).toHaveLength(1);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});

describe('go-spiffe X509Source follows rotation on one open stream', () => {
  let m: MayflyDeployment;

  beforeAll(async () => {
    await buildGoWorkload();
    // 4 s SVIDs: the agent renews each at about half its life.
    m = await startMayfly({ x509SvidTtl: 4, defaultEntryPath: '/go/rotating' });
  }, 240_000);

  afterAll(async () => {
    await m?.stop();
  });

  it('sees three distinct SVIDs, each verified by go-spiffe against the streamed bundle', async () => {
    const r = await runGoWorkload(['watch-rotation', '-count', '3', '-timeout', '40s'], { endpoint: m.endpoint });
    const done = ok(r);
    expect(done.event).toBe('done');
    expect(done.distinct).toBe(3);
    const svids = done.svids as { spiffeId: string; serial: string; notBefore: string; notAfter: string; keyMatches: boolean }[];
    expect(new Set(svids.map((s) => s.serial)).size).toBe(3);
    for (const s of svids) {
      expect(s.spiffeId).toBe(m.defaultSpiffeId);
      expect(s.keyMatches).toBe(true);
      // Short-lived as configured (the CA may backdate NotBefore a little for clock skew).
      expect(Date.parse(s.notAfter) - Date.parse(s.notBefore)).toBeLessThan(60_000);
    }
    // Each renewal expires later than the SVID it replaces.
    for (let i = 1; i < svids.length; i++) {
      expect(Date.parse(svids[i]!.notAfter)).toBeGreaterThan(Date.parse(svids[i - 1]!.notAfter));
    }
  });
});
