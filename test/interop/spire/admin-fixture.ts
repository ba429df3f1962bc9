/**
 * @module test/interop/spire/admin-fixture
 *
 * What the issue-14 admin interop tests share: a running Mayfly server with a Mayfly agent
 * attested to it (`startMayfly`) and two more agents attested by join token over TCP (one
 * to ban, one to evict), SPIRE v1.13.3's `spire-server` CLI and Mayfly's own CLI both
 * pointed at its admin socket (raw clients of SPIRE's API, for what the CLI cannot send,
 * are in spire-raw-client).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adminSocketClients, unaryCall } from '../../../src/server/client.js';
import { attestJoinTokenAgent } from '../../../src/server/testing.js';
import { runProcess, startMayfly, type MayflyDeployment, type ProcessResult } from '../harness.js';
import { spireServerCli } from './peers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MAYFLY_SERVER = join(ROOT, 'bin', 'mayfly-server.js');

export interface AdminFixture {
  readonly m: MayflyDeployment;
  readonly td: string;
  readonly sock: string;
  /** The Mayfly agent of `startMayfly` (attested, serving). */
  readonly agentId: string;
  /** Agents attested only for `agent ban` and `agent evict`. */
  readonly banMe: string;
  readonly evictMe: string;
  spire(args: readonly string[], input?: string): Promise<ProcessResult>;
  mayfly(args: readonly string[]): Promise<ProcessResult>;
  /** Mayfly's CLI with `-output json`, which must succeed. */
  mayflyJson<T>(args: readonly string[]): Promise<T>;
  /** SPIRE's CLI with `-output json`, which must succeed. */
  spireJson<T>(args: readonly string[]): Promise<T>;
  stop(): Promise<void>;
}

function mustSucceed(what: string, r: ProcessResult): ProcessResult {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r;
}

export async function startAdminFixture(): Promise<AdminFixture> {
  const m = await startMayfly({ trustDomain: 'example.org' });
  try {
    const sock = m.server.adminSocketPath;
    const admin = adminSocketClients(sock);
    const extra: string[] = [];
    try {
      const bundle = await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {});
      for (let i = 0; i < 2; i++) {
        const a = await attestJoinTokenAgent({ port: m.server.port, admin, trustDomain: m.trustDomain, bundleRoots: bundle.x509_authorities });
        a.clients.close();
        extra.push(a.agentId);
      }
    } finally {
      admin.close();
    }
    const agentId = m.agent.agentSvid?.spiffeId;
    if (agentId === undefined) throw new Error('the Mayfly agent has no SVID');
    const spire = (args: readonly string[], input?: string): Promise<ProcessResult> => spireServerCli(sock, args, input);
    const mayfly = (args: readonly string[]): Promise<ProcessResult> => runProcess(process.execPath, [MAYFLY_SERVER, ...args, '-socketPath', sock]);
    return {
      m,
      td: m.trustDomain,
      sock,
      agentId,
      banMe: extra[0] as string,
      evictMe: extra[1] as string,
      spire,
      mayfly,
      mayflyJson: async <T>(args: readonly string[]) => JSON.parse(mustSucceed(`mayfly-server ${args.join(' ')}`, await mayfly([...args, '-output', 'json'])).stdout) as T,
      spireJson: async <T>(args: readonly string[]) => JSON.parse(mustSucceed(`spire-server ${args.join(' ')}`, await spire([...args, '-output', 'json'])).stdout) as T,
      stop: () => m.stop(),
    };
  } catch (err) {
    await m.stop();
    throw err;
  }
}
