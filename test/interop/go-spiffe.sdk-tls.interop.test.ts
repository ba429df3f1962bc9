/**
 * go-spiffe v2 spiffetls ↔ the Node SDK's mTLS helpers (issue 13), both ends workloads of a
 * real Mayfly agent, told apart by uid (see go-spiffe.workload.interop.test.ts): a go-spiffe
 * client with `tlsconfig.AuthorizeID` → a Node `createSpiffeTlsServer` with `authorizeId`,
 * and a Node client (`createClientTlsOptions` with `authorizeId`) → a go-spiffe server with
 * `AuthorizeID`. Both speak goworkload's line protocol over TLS. An unauthorised ID is
 * refused on both sides. Spawning as other uids needs root (CI has it).
 */
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Source } from '../../src/sdk/sources.js';
import { authorizeId, createClientTlsOptions, createSpiffeTlsServer, PEER_REJECTED_EVENT, peerSpiffeId } from '../../src/sdk/tls.js';
import { buildGoWorkload, GoWorkloadServer, runGoWorkload } from './go-workload/client.js';
import { startMayfly, type MayflyDeployment } from './harness.js';

const GO = 65534;
const OTHER = 65533;

describe('go-spiffe spiffetls and the Node SDK speak mTLS both ways', () => {
  let m: MayflyDeployment;
  let nodeId = '';
  let goId = '';
  let source: X509Source;

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('this test spawns workloads as other uids and needs root (CI runs as root)');
    await buildGoWorkload();
    m = await startMayfly({ defaultEntryPath: '/node/server' });
    nodeId = m.defaultSpiffeId as string;
    goId = `spiffe://${m.trustDomain}/go/peer`;
    await m.createEntry(goId, [`unix:uid:${GO}`]);
    await m.createEntry(`spiffe://${m.trustDomain}/go/intruder`, [`unix:uid:${OTHER}`]);
    source = await X509Source.create({ address: m.endpoint });
  }, 240_000);

  afterAll(async () => {
    source?.close();
    await m?.stop();
  });

  it('go-spiffe client (AuthorizeID) → Node SDK server (authorizeId); an intruder is refused by Node', async () => {
    const rejected: Error[] = [];
    const server = createSpiffeTlsServer(source, { authorize: authorizeId(goId), log: () => undefined }, (socket) => {
      let line = '';
      socket.on('data', (d: Buffer) => {
        line += d.toString();
        if (line.includes('\n')) socket.end(`${nodeId} heard from ${peerSpiffeId(socket).toString()}: ${line.trim()}\n`);
      });
    });
    server.on(PEER_REJECTED_EVENT, (e: Error) => rejected.push(e));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      const good = await runGoWorkload(['client', '-connect', addr, '-authorize', nodeId, '-message', 'ping from go'], { endpoint: m.endpoint, uid: GO, gid: GO });
      expect(good.stderr).toBe('');
      expect(good.json.at(-1)).toMatchObject({ spiffeId: goId, serverId: nodeId, reply: `${nodeId} heard from ${goId}: ping from go` });
      const wrongServer = await runGoWorkload(['client', '-connect', addr, '-authorize', `spiffe://${m.trustDomain}/someone-else`, '-message', 'x'], { endpoint: m.endpoint, uid: GO, gid: GO });
      expect(wrongServer.code).not.toBe(0);
      expect(wrongServer.stderr).toMatch(/unexpected ID/);
      const intruder = await runGoWorkload(['client', '-connect', addr, '-authorize', nodeId, '-message', 'let me in'], { endpoint: m.endpoint, uid: OTHER, gid: OTHER });
      expect(intruder.code).not.toBe(0);
      expect(rejected.map((e) => e.message).join('\n')).toMatch(/go\/intruder is not the expected/);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('Node SDK client (authorizeId) → go-spiffe server (AuthorizeID); a wrong server ID is refused by Node', async () => {
    const server = await GoWorkloadServer.start(['-listen', '127.0.0.1:0', '-authorize', nodeId], { endpoint: m.endpoint, uid: GO, gid: GO });
    try {
      const listening = await server.waitFor((e) => e.event === 'listening', 'the go server to listen');
      expect(listening.spiffeId).toBe(goId);
      const [host, port] = String(listening.addr).split(':') as [string, string];
      const talk = (expected: string): Promise<{ reply: string; error?: Error & { code?: string } }> =>
        new Promise((resolve) => {
          const out: { reply: string; error?: Error & { code?: string } } = { reply: '' };
          const socket = tls.connect({ host, port: Number(port), ...createClientTlsOptions(source, { authorize: authorizeId(expected) }) }, () => socket.write('ping from node\n'));
          socket.on('data', (d: Buffer) => (out.reply += d.toString()));
          socket.on('error', (e: Error) => (out.error ??= e));
          socket.on('close', () => resolve(out));
        });
      const good = await talk(goId);
      expect(good.error).toBeUndefined();
      expect(good.reply).toBe(`${goId} heard from ${nodeId}: ping from node\n`);
      await server.waitFor((e) => e.event === 'served', 'the go server to serve');
      const wrong = await talk(`spiffe://${m.trustDomain}/someone-else`);
      expect(wrong.reply).toBe('');
      expect(wrong.error?.code).toBe('ERR_PEER_UNAUTHORIZED');
      expect(server.events.filter((e) => e.event === 'served')).toHaveLength(1);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
