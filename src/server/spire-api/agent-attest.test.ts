/**
 * SPIRE's AttestAgent stream runs any node attestor of the catalog, challenge–response ones
 * included (x509pop's shape): the attestor gets `NodeAttestationContext.challenge`, the
 * agent's answers come back over the stream, and an agent that answers wrongly, out of turn
 * or not at all is refused. Mayfly's own unary AttestAgent has no channel, so such an
 * attestor refuses there.
 */
import { createHash, randomBytes } from 'node:crypto';
import { credentials, makeGenericClientConstructor, status, type Client, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeAttestationContext, NodeAttestationResult, NodeAttestor } from '../../attestors/node/attestor.js';
import { JoinTokenAttestor } from '../../attestors/node/join_token/join_token.js';
import { MayflyError } from '../../spiffe/errors.js';
import { generateKeyPair } from '../../spiffe/keys.js';
import { createCsr } from '../../spiffe/x509/csr.js';
import { parseCertificate } from '../../spiffe/x509/parse.js';
import { pemEncodeCertificates } from '../../spiffe/x509/pem.js';
import { spireApiServiceDefinition } from '../../wire/spire/definition.js';
import { adminSocketClients, tcpClients, unaryCall, type ServerApiClients } from '../client.js';
import { startTestServer, type TestServer } from '../testing.js';

const TD = 'challenge.test';

/** Proves knowledge of a secret: the answer to nonce N is sha256(N ‖ secret). Two rounds. */
class ChallengeAttestor implements NodeAttestor {
  readonly type = 'test_pop';
  constructor(private readonly secret: Buffer) {}
  async attest(payload: Uint8Array, ctx: NodeAttestationContext): Promise<NodeAttestationResult> {
    if (ctx.challenge === undefined) throw new MayflyError('ERR_ATTESTATION_FAILED', 'test_pop needs challenge–response');
    for (let round = 0; round < 2; round++) {
      const nonce = randomBytes(16);
      const answer = await ctx.challenge(nonce);
      const want = createHash('sha256').update(nonce).update(this.secret).digest();
      if (!Buffer.from(answer).equals(want)) throw new MayflyError('ERR_ATTESTATION_FAILED', 'wrong challenge response');
    }
    return { agentId: ctx.trustDomain.idWithPath(`/spire/agent/test_pop/${Buffer.from(payload).toString('utf8')}`), selectors: [{ type: 'test_pop', value: 'ok' }], canReattest: true };
  }
}

const SECRET = randomBytes(32);
let server: TestServer;
let admin: ServerApiClients;
let agentApi: Client;

interface Step {
  step?: string;
  challenge?: Buffer;
  result?: { svid: { id: { path: string }; cert_chain: Buffer[] }; reattestable: boolean };
}

type Answer = (challenge: Buffer) => Record<string, unknown> | 'close';

/** One AttestAgent stream; `answer` decides each reply to a challenge. */
function attestStream(first: Record<string, unknown>, answer: Answer): Promise<{ result?: Step['result']; error?: ServiceError; challenges: number }> {
  return new Promise((resolve) => {
    const call = (agentApi as unknown as { AttestAgent(): NodeJS.ReadWriteStream & { write(m: unknown): void; end(): void } }).AttestAgent();
    let challenges = 0;
    call.on('data', (m: Step) => {
      if (m.step === 'challenge' && m.challenge) {
        challenges++;
        const a = answer(m.challenge);
        if (a === 'close') call.end();
        else call.write(a);
      } else if (m.step === 'result') resolve({ result: m.result, challenges });
    });
    call.on('error', (error: ServiceError) => resolve({ error, challenges }));
    call.write(first);
  });
}

const params = (name: string): Record<string, unknown> => ({ params: { data: { type: 'test_pop', payload: Buffer.from(name) }, params: { csr: createCsr({ privateKey: generateKeyPair().privateKey }) } } });
const right: Answer = (c) => ({ challenge_response: createHash('sha256').update(c).update(SECRET).digest() });

beforeAll(async () => {
  server = await startTestServer({ trustDomain: TD, keyManager: 'memory', attestors: (ds) => [new JoinTokenAttestor({ datastore: ds }), new ChallengeAttestor(SECRET)] });
  admin = adminSocketClients(server.adminSocketPath);
  const roots = server.server.servedBundle().x509Authorities;
  const creds = credentials.createSsl(Buffer.from(pemEncodeCertificates(roots)), null, null, {
    checkServerIdentity: (_h, cert) => (parseCertificate(cert.raw).uriSans[0] === `spiffe://${TD}/spire/server` ? undefined : new Error('not the server')),
  });
  const Ctor = makeGenericClientConstructor(spireApiServiceDefinition('Agent'), 'Agent');
  agentApi = new Ctor(`127.0.0.1:${server.port}`, creds, { 'grpc.ssl_target_name_override': 'spire-server' });
});

afterAll(async () => {
  agentApi?.close();
  admin?.close();
  await server?.stop();
});

describe("SPIRE's AttestAgent with a challenge–response node attestor", () => {
  it('runs every challenge round over the stream and answers with the agent SVID', async () => {
    const r = await attestStream(params('node-a'), right);
    expect(r.error).toBeUndefined();
    expect(r.challenges).toBe(2);
    expect(r.result?.svid.id.path).toBe('/spire/agent/test_pop/node-a');
    expect(r.result?.reattestable).toBe(true);
    expect(parseCertificate(r.result?.svid.cert_chain[0] as Buffer).uriSans).toEqual([`spiffe://${TD}/spire/agent/test_pop/node-a`]);
    const rec = await unaryCall<{ attestation_type: string; selectors: { type: string; value: string }[] }>(admin.Agent, 'GetAgent', { id: `spiffe://${TD}/spire/agent/test_pop/node-a` });
    expect(rec).toMatchObject({ attestation_type: 'test_pop', selectors: [{ type: 'test_pop', value: 'ok' }] });
  });

  it('refuses a wrong answer (PERMISSION_DENIED) and records no agent', async () => {
    const r = await attestStream(params('node-b'), () => ({ challenge_response: randomBytes(32) }));
    expect(r.error?.code).toBe(status.PERMISSION_DENIED);
    await expect(unaryCall(admin.Agent, 'GetAgent', { id: `spiffe://${TD}/spire/agent/test_pop/node-b` })).rejects.toMatchObject({ code: status.NOT_FOUND });
  });

  it('refuses an agent that answers out of turn or not at all (INVALID_ARGUMENT)', async () => {
    expect((await attestStream(params('node-c'), () => params('node-c'))).error?.code).toBe(status.INVALID_ARGUMENT);
    expect((await attestStream(params('node-d'), () => 'close')).error?.code).toBe(status.INVALID_ARGUMENT);
    // A challenge response before any params.
    expect((await attestStream({ challenge_response: Buffer.from('x') }, right)).error?.code).toBe(status.INVALID_ARGUMENT);
  });

  it("Mayfly's unary AttestAgent gives no challenge channel, so the attestor refuses there", async () => {
    const anon = tcpClients({ address: `127.0.0.1:${server.port}`, trustDomain: TD, bundleRoots: server.server.servedBundle().x509Authorities });
    try {
      await expect(
        unaryCall(anon.Agent, 'AttestAgent', { attestation_data: { type: 'test_pop', payload: Buffer.from('node-e') }, csr: createCsr({ privateKey: generateKeyPair().privateKey }) }),
      ).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    } finally {
      anon.close();
    }
  });

  it('a join token through the stream: no challenge; reused, INVALID_ARGUMENT as SPIRE answers', async () => {
    const token = (await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 60 })).value;
    const jt = (): Record<string, unknown> => ({ params: { data: { type: 'join_token', payload: Buffer.from(token) }, params: { csr: createCsr({ privateKey: generateKeyPair().privateKey }) } } });
    const ok = await attestStream(jt(), right);
    expect(ok.challenges).toBe(0);
    expect(ok.result?.reattestable).toBe(false);
    expect((await attestStream(jt(), right)).error?.code).toBe(status.INVALID_ARGUMENT);
  });
});
