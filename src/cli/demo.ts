/**
 * @module cli/demo
 *
 * `npm run demo`: the whole road in one process tree, on embedded defaults, in a temp
 * directory that is removed afterwards.
 *
 *   server (LevelDB + CA) → join token → agent attests over mTLS → two registration
 *   entries for the current user → the agent issues X.509-SVIDs by push → two Node
 *   services fetch them over the Workload API (caller attested from SO_PEERCRED) → an
 *   HTTPS request with mutual TLS where each side authorises the other's SPIFFE ID →
 *   and a caller the server does not authorise is refused.
 *
 * Both services run as the current user, so both entries select `unix:uid:<uid>`; each
 * service picks its own SVID by the entry's hint, as a workload entitled to several
 * identities does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MayflyAgent } from '../agent/agent.js';
import { resolveServerConfig } from '../server/config.js';
import { adminSocketClients, unaryCall } from '../server/client.js';
import { createServerLogger } from '../server/observability.js';
import { ServerRunner } from '../server/runner.js';
import { writeFileAtomic } from '../securefs/index.js';
import { X509Source } from '../sdk/sources.js';
import { authorizeId, createClientTlsOptions, createSpiffeHttpsServer, peerSpiffeId, PEER_REJECTED_EVENT } from '../sdk/tls.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';

const TRUST_DOMAIN = 'example.org';
const FRONTEND = `spiffe://${TRUST_DOMAIN}/demo/frontend`;
const BACKEND = `spiffe://${TRUST_DOMAIN}/demo/backend`;
const NODE = `spiffe://${TRUST_DOMAIN}/demo/node`;

interface BatchResult {
  status: { code: number; message: string };
}

function get(source: X509Source, serverId: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: '/hello', ...createClientTlsOptions(source, { authorize: authorizeId(serverId) }) },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

export async function runDemo(print: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mayfly-demo-'));
  const cleanups: Array<() => Promise<void> | void> = [() => rm(dir, { recursive: true, force: true })];
  const step = (n: number, text: string): void => print(`${n}. ${text}`);
  try {
    // 1. The server, on embedded defaults (LevelDB, disk keys) but in the temp dir and on a free port.
    const settings = resolveServerConfig(undefined, { dataDir: join(dir, 'server'), socketPath: join(dir, 'server.sock'), bindPort: 0, trustDomain: TRUST_DOMAIN });
    settings.metrics.enabled = false;
    const runner = new ServerRunner({ settings, logger: createServerLogger('error') });
    await runner.start();
    cleanups.unshift(() => runner.stop());
    const port = runner.server?.port ?? 0;
    step(1, `server up: trust domain ${TRUST_DOMAIN}, agent API on 127.0.0.1:${port}, data in ${settings.dataDir}`);

    // 2. A join token for the node, and two entries for the current user on that node.
    const admin = adminSocketClients(settings.socketPath);
    cleanups.unshift(() => admin.close());
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600, agent_id: NODE });
    const uid = String(process.getuid?.() ?? 0);
    const entry = (spiffeId: string, hint: string): object => ({ spiffe_id: spiffeId, parent_id: NODE, selectors: [{ type: 'unix', value: `uid:${uid}` }], hint, x509_svid_ttl: 600 });
    const created = await unaryCall<{ results: BatchResult[] }>(admin.Entry, 'BatchCreateEntry', { entries: [entry(FRONTEND, 'frontend'), entry(BACKEND, 'backend')] });
    for (const r of created.results) if (r.status.code !== 0) throw new Error(`entry create failed: ${r.status.message}`);
    const bundle = await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {});
    const bundlePath = join(dir, 'bootstrap-bundle.pem');
    writeFileAtomic(bundlePath, pemEncodeCertificates(bundle.x509_authorities), { mode: 0o644 });
    step(2, `registered ${FRONTEND} and ${BACKEND} for unix:uid:${uid} under node ${NODE}`);

    // 3. The agent attests with the token, trusting the server through the bootstrap bundle.
    const socketPath = join(dir, 'agent', 'api.sock');
    const agent = new MayflyAgent({ serverAddress: `127.0.0.1:${port}`, trustDomain: TRUST_DOMAIN, dataDir: join(dir, 'agent-data'), socketPath, joinToken: token.value, trustBundlePath: bundlePath });
    await agent.start();
    cleanups.unshift(() => agent.stop());
    await agent.whenReady(30_000);
    step(3, `agent attested as ${agent.agentSvid?.spiffeId.toString() ?? '?'}; Workload API on ${socketPath}`);

    // 4. Two services fetch their SVIDs over the Workload API, each picking its own by hint.
    const source = async (hint: string): Promise<X509Source> => {
      const s = await X509Source.create({ socketPath, timeoutMs: 15_000, picker: (svids) => svids.find((v) => v.hint === hint) ?? (svids[0] as (typeof svids)[number]) });
      cleanups.unshift(() => s.close());
      return s;
    };
    const front = await source('frontend');
    const back = await source('backend');
    const svid = front.getX509Svid();
    step(4, `frontend holds ${svid.id.toString()} (expires ${svid.expiresAt.toISOString()}); backend holds ${back.getX509Svid().id.toString()}`);

    // 5. mTLS: the backend only admits the frontend; the frontend only trusts the backend.
    const server = createSpiffeHttpsServer(back, { authorize: authorizeId(FRONTEND) }, (req, res) => {
      const caller = peerSpiffeId(req.socket as import('node:tls').TLSSocket).toString();
      res.end(`hello ${caller}, this is ${BACKEND}`);
    });
    // The backend's own word on each caller it refuses (the caller only sees the connection end).
    const refusals: string[] = [];
    server.on(PEER_REJECTED_EVENT, (err: Error) => refusals.push(err.message));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.unshift(() => new Promise<void>((r) => server.close(() => r())));
    const backendPort = (server.address() as AddressInfo).port;
    const reply = await get(front, BACKEND, backendPort);
    step(5, `mTLS GET /hello → "${reply}"`);

    // 6. The backend presenting itself as the caller is not on its allow-list: refused.
    const refused = await get(back, BACKEND, backendPort).then(
      () => false,
      () => true,
    );
    if (!refused) throw new Error('the backend accepted a caller it does not authorise');
    step(6, `a caller presenting ${BACKEND} was refused by the backend (not authorised); the backend says: ${refusals[0] ?? '(nothing)'}`);
  } finally {
    for (const c of cleanups) {
      try {
        await c();
      } catch {
        // Cleanup is best effort: one failing step must not leave the rest behind.
      }
    }
  }
  print('done: everything stopped and the temp directory removed.');
}

if (process.argv[1]?.endsWith('demo.js')) {
  runDemo().then(
    () => setTimeout(() => process.exit(0), 200).unref(),
    (err: unknown) => {
      process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
