/**
 * One contract (agent/conformance `runServerClientContract`), two servers: the real one
 * (a `MayflyServer` from server/testing, reached with the agent's grpc-js client over TCP
 * + TLS) and `FakeServer`, the in-memory double the agent's unit tests run against. The
 * fake is only worth its tests while it answers as the real server does.
 */
import { TrustDomain } from '../spiffe/id.js';
import { adminSocketClients, unaryCall } from '../server/client.js';
import { startTestServer } from '../server/testing.js';
import { SystemScheduler } from './clock.js';
import { runServerClientContract } from './conformance.js';
import { grpcServerClientFactory } from './grpc-client.js';
import { FakeServer, testEntry } from './testing.js';

runServerClientContract('the real server (grpc-js over TCP + TLS)', async () => {
  const server = await startTestServer({ trustDomain: 'contract.test', keyManager: 'memory', drainMs: 200, csrWorkers: 0 });
  const admin = adminSocketClients(server.adminSocketPath);
  return {
    trustDomain: 'contract.test',
    bootstrap: async () => ({ mode: 'bootstrap', roots: (await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {})).x509_authorities }),
    connect: grpcServerClientFactory({ address: `127.0.0.1:${server.port}`, trustDomain: TrustDomain.parse('contract.test') }),
    joinToken: async () => (await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 })).value,
    createEntry: async (parentId, spiffeId) => {
      const res = await unaryCall<{ results: { status: { code: number; message: string }; entry: { id: string } }[] }>(admin.Entry, 'BatchCreateEntry', {
        entries: [{ spiffe_id: spiffeId, parent_id: parentId, selectors: [{ type: 'unix', value: 'uid:1000' }] }],
      });
      const r = res.results[0];
      if (r?.status.code !== 0) throw new Error(`BatchCreateEntry: ${r?.status.message}`);
      return r.entry.id;
    },
    stop: async () => {
      admin.close();
      await server.stop();
    },
  };
});

runServerClientContract('FakeServer (agent/testing)', async () => {
  const fake = new FakeServer({ trustDomain: 'contract.test', scheduler: new SystemScheduler() });
  let n = 0;
  return {
    trustDomain: 'contract.test',
    bootstrap: async () => ({ mode: 'bootstrap', roots: [...fake.bundle().x509Authorities] }),
    connect: (creds) => fake.client(creds),
    joinToken: async () => {
      const token = `contract-token-${++n}`;
      fake.joinTokens.add(token);
      return token;
    },
    createEntry: async (parentId, spiffeId) => {
      const entryId = `entry-${++n}`;
      fake.setEntries([...fake.entries, testEntry({ entryId, spiffeId, parentId })]);
      return entryId;
    },
    stop: async () => undefined,
  };
});
