/**
 * java-spiffe (io.spiffe:java-spiffe-core with the grpc-netty-linux epoll transport) as a
 * workload of a real Mayfly agent: `DefaultX509Source.newSource()` finds the socket through
 * SPIFFE_ENDPOINT_SOCKET, fetches and parses the X.509-SVID and bundle with java-spiffe's
 * own code, and the client proves the private key signs for the leaf certificate.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess, startMayfly, type MayflyDeployment } from './harness.js';
import { javaSpiffeCommand } from './java-spiffe/client.js';

describe('java-spiffe DefaultX509Source against a Mayfly agent', () => {
  let m: MayflyDeployment;
  let javaArgs: string[] = [];

  beforeAll(async () => {
    javaArgs = await javaSpiffeCommand();
    m = await startMayfly({ defaultEntryPath: '/java/app' });
  }, 120_000);

  afterAll(async () => {
    await m?.stop();
  });

  it('gets the X.509-SVID and the bundle; the key matches the certificate', async () => {
    const r = await runProcess('java', ['-Xshare:auto', '-XX:TieredStopAtLevel=1', ...javaArgs], {
      env: { SPIFFE_ENDPOINT_SOCKET: `unix:${m.socketPath}` },
    });
    expect(r.code, `java-spiffe client failed: ${r.stderr.slice(-2000)}`).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    expect(line, `no JSON from the java-spiffe client; stdout: ${r.stdout}`).toBeDefined();
    const out = JSON.parse(line as string) as { spiffeId: string; chainLength: number; trustDomain: string; bundleAuthorities: number; keyMatches: boolean };
    expect(out.spiffeId).toBe(m.defaultSpiffeId);
    expect(out.trustDomain).toBe(m.trustDomain);
    expect(out.chainLength).toBeGreaterThanOrEqual(1);
    expect(out.bundleAuthorities).toBeGreaterThanOrEqual(1);
    expect(out.keyMatches).toBe(true);
  });
});
