/**
 * server.conf's `registrars` and `certification` blocks reach the server as `mayfly-server
 * run` assembles it (ServerRunner over resolveServerConfig of HCL text): the registrar is
 * scoped over mTLS, certification runs over the audit ledger, the log says when an entry is
 * due, and /metrics shows mayfly_entry_certification.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../config/hcl.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { adminSocketClients, tcpClients, unaryCall, type ServerApiClients } from './client.js';
import { resolveServerConfig } from './config.js';
import type { WireEntry, WireX509Svid } from './messages.js';
import { createServerLogger } from './observability.js';
import { ServerRunner } from './runner.js';

const TD = 'example.org';
const root = mkdtempSync(join(tmpdir(), 'mayfly-runner-governance-'));
let t = Date.now();
let runner: ServerRunner;
const closers: (() => void)[] = [];

const CONF = `
server {
  trust_domain = "${TD}"
  certification {
    interval = "1d"
    grace    = "1d"
  }
  registrars {
    registrar "spiffe://${TD}/ci/team-a" {
      spiffe_id_prefixes = ["spiffe://${TD}/team-a/"]
      parent_ids         = ["spiffe://${TD}/nodes/a"]
      owners             = ["team-a"]
    }
  }
}
`;

beforeAll(async () => {
  const settings = resolveServerConfig(parseConfigText(CONF), { dataDir: join(root, 'server'), socketPath: join(root, 'private', 'api.sock'), bindPort: 0 });
  settings.metrics = { enabled: true, host: '127.0.0.1', port: 0 };
  runner = new ServerRunner({ settings, logger: createServerLogger('error'), drainMs: 200, now: () => new Date(t) });
  await runner.start();
}, 60_000);

afterAll(async () => {
  for (const c of closers) c();
  await runner?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('server.conf registrars and certification', () => {
  it('scope the registrar and certify entries over the ledger, with the gauge', async () => {
    const local = adminSocketClients(join(root, 'private', 'api.sock'));
    closers.push(() => local.close());
    const reg = `spiffe://${TD}/ci/team-a`;
    await unaryCall(local.Entry, 'BatchCreateEntry', { entries: [{ spiffe_id: reg, parent_id: `spiffe://${TD}/nodes/ops`, selectors: [{ type: 'unix', value: 'uid:0' }], admin: true, owner: 'platform' }] });
    const key = generateKeyPair();
    const minted = await unaryCall<{ svid: WireX509Svid }>(local.SVID, 'MintX509SVID', { csr: createCsr({ privateKey: key.privateKey }), spiffe_id: reg, ttl: 600 });
    const bundle = await unaryCall<{ x509_authorities: Buffer[] }>(local.Bundle, 'GetBundle', {});
    const a: ServerApiClients = tcpClients({ address: `127.0.0.1:${runner.server!.port}`, trustDomain: TD, bundleRoots: bundle.x509_authorities, svid: { certChain: minted.svid.cert_chain, privateKey: key.privateKey } });
    closers.push(() => a.close());
    const created = await unaryCall<{ results: { status: { code: number; message: string }; entry: WireEntry }[] }>(a.Entry, 'BatchCreateEntry', {
      entries: [
        { spiffe_id: `spiffe://${TD}/team-a/web`, parent_id: `spiffe://${TD}/nodes/a`, selectors: [{ type: 'unix', value: 'uid:7' }], owner: 'team-a' },
        { spiffe_id: `spiffe://${TD}/team-ab/web`, parent_id: `spiffe://${TD}/nodes/a`, selectors: [{ type: 'unix', value: 'uid:8' }], owner: 'team-a' },
      ],
    });
    expect(created.results.map((r) => r.status.code)).toEqual([status.OK, status.PERMISSION_DENIED]);
    const web = created.results[0]!.entry;
    try {
      await unaryCall(a.Agent, 'CreateJoinToken', { ttl: 60 });
      expect.unreachable();
    } catch (err) {
      expect((err as ServiceError).code).toBe(status.PERMISSION_DENIED);
    }

    t += 30 * 3600_000;
    await runner.server!.certification!.sweep();
    const metrics = await (await fetch(`http://127.0.0.1:${runner.httpPorts[0]}/metrics`)).text();
    expect(metrics).toMatch(/mayfly_entry_certification\{state="due"\} 2/);
    const res = await unaryCall<{ state: string }>(local.Entry, 'CertifyEntry', { entry_id: web.id, owner: 'team-a', note: 'ci' });
    expect(res.state).toBe('current');
    await runner.server!.certification!.sweep();
    const after = await (await fetch(`http://127.0.0.1:${runner.httpPorts[0]}/metrics`)).text();
    expect(after).toMatch(/mayfly_entry_certification\{state="due"\} 1/);
    expect(after).toMatch(/mayfly_entry_certification\{state="current"\} 1/);
  });
});
