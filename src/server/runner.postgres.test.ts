/**
 * Two whole servers of one trust domain, each assembled by ServerRunner from a SPIRE-style
 * server.conf whose `DataStore "sql"` names PostgreSQL, sharing one real (throwaway)
 * database: what one server's admin API writes, the other's serves at once.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgresDatastore } from '../datastore/postgres/postgres.js';
import { startTestPostgres, type TestPostgres } from '../datastore/postgres/testing.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from './client.js';
import { resolveServerConfig } from './config.js';
import { parseHcl } from './hcl.js';
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

function serverConf(name: string): string {
  return `
    server {
      trust_domain = "example.org"
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
      KeyManager "memory" { plugin_data {} }
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
});
