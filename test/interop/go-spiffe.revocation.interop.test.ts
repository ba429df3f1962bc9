/**
 * go-spiffe receives Mayfly's CRLs (issue 10): after an operator revokes an SVID, the
 * Workload API's `crl` fields (FetchX509SVID and FetchX509Bundles), read with go-spiffe's
 * own generated Workload API client, carry DER CRLs that Go's `x509.ParseRevocationList`
 * parses, issued by the trust domain's CA (AKI = its SKI), listing the revoked serial with
 * its reason code. go-spiffe does not enforce CRLs; this shows they arrive intact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminSocketClients, unaryCall } from '../../src/server/client.js';
import { runGoWorkload } from './go-workload/client.js';
import { startMayfly, type MayflyDeployment } from './harness.js';

interface GoCrl {
  issuer: string;
  number: string;
  authorityKeyId: string;
  thisUpdate: string;
  nextUpdate: string;
  revoked: { serial: string; reason: number }[];
}

describe('go-spiffe and the Workload API crl fields', () => {
  let m: MayflyDeployment;

  beforeAll(async () => {
    m = await startMayfly({ defaultEntryPath: '/go/revoked' });
  }, 90_000);
  afterAll(async () => {
    await m?.stop();
  }, 60_000);

  it('the CRLs arrive on both streams and parse with x509.ParseRevocationList', async () => {
    const serial = m.agent.cache?.svidFor(m.defaultEntryId as string)?.serialHex as string;
    const admin = adminSocketClients(m.server.adminSocketPath);
    try {
      await unaryCall(admin.SVID, 'RevokeX509SVIDs', { serial_number: serial, reason: 'keyCompromise' });
    } finally {
      admin.close();
    }
    const deadline = Date.now() + 20_000;
    let out: { svidCrls: GoCrl[]; bundleCrls: GoCrl[] } | undefined;
    for (;;) {
      const r = await runGoWorkload(['crls'], { endpoint: m.endpoint });
      expect(r.code, r.stderr).toBe(0);
      out = r.json[0] as unknown as { svidCrls: GoCrl[]; bundleCrls: GoCrl[] };
      if (out.svidCrls.some((c) => c.revoked.length > 0)) break;
      if (Date.now() > deadline) throw new Error(`the revoked serial never reached go-spiffe: ${r.stdout}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(out.svidCrls.length).toBeGreaterThan(0);
    expect(out.bundleCrls).toEqual(out.svidCrls);
    const crl = out.svidCrls.find((c) => c.revoked.length > 0) as GoCrl;
    // Go prints serials without the DER sign pad.
    expect(crl.revoked).toEqual([{ serial: serial.replace(/^00/, ''), reason: 1 }]);
    expect(crl.authorityKeyId).toBe(m.server.ca.authorityState('x509').active?.id);
    expect(BigInt(crl.number)).toBeGreaterThan(0n);
    expect(Date.parse(crl.nextUpdate)).toBeGreaterThan(Date.parse(crl.thisUpdate));
  });
});
