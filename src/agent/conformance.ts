/**
 * @module agent/conformance
 *
 * The contract of the server as the agent uses it (agent/server-client `ServerClient`),
 * written against that interface only, so the same cases run against the real server
 * (grpc-js over TCP + TLS to a `MayflyServer`) and against `FakeServer` (agent/testing):
 * a fake that drifted from the real thing fails here instead of passing the agent's tests
 * for a server that does not exist. What is checked:
 * - AttestAgent with a join token gives an agent SVID under `/spire/agent/join_token/` for
 *   the CSR's key, which verifies against the bundle returned; a used or unknown token is
 *   PERMISSION_DENIED;
 * - agent calls (RenewAgent, BatchNewX509SVID, NewJWTSVID, the stream) from a client
 *   without an agent SVID are refused;
 * - RenewAgent keeps the agent's ID for a new key;
 * - the authorised-entry stream sends the trust domain's bundle at once, and an entry
 *   created for the agent afterwards;
 * - BatchNewX509SVID mints for an authorised entry (its SPIFFE ID, the CSR's key) and
 *   answers PERMISSION_DENIED for an entry that is not the agent's, item by item;
 * - NewJWTSVID mints a token for the entry's ID and audience that verifies against the
 *   bundle's JWT authorities;
 * - a closed client fails its calls with a ServerCallError.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCsr } from '../spiffe/x509/csr.js';
import { exportSpkiDer, generateKeyPair, type KeyPair } from '../spiffe/keys.js';
import { TrustDomain } from '../spiffe/id.js';
import { validateJwtSvid } from '../spiffe/jwt/validate.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import type { Bundle } from '../spiffe/bundle/bundle.js';
import { GrpcCode, ServerCallError, type AuthorizedUpdate, type IssuedX509Svid, type ServerClient, type ServerClientCredentials, type ServerClientFactory } from './server-client.js';

/** A server to hold to the contract, as the test that runs it sets one up. */
export interface ServerContractTarget {
  readonly trustDomain: string;
  /** Credentials for the first attestation (the server authenticated by its roots). */
  bootstrap(): Promise<ServerClientCredentials>;
  readonly connect: ServerClientFactory;
  /** A join token the server accepts once. */
  joinToken(): Promise<string>;
  /** Registers an entry `spiffeId` under the agent `parentId`; returns its entry ID. */
  createEntry(parentId: string, spiffeId: string): Promise<string>;
  stop(): Promise<void>;
}

async function callError(p: Promise<unknown>): Promise<ServerCallError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ServerCallError);
  return err as ServerCallError;
}

function expectSvidFor(svid: IssuedX509Svid, key: KeyPair, bundle: Bundle): void {
  const leaf = parseCertificate(svid.certChain[0] as Buffer);
  expect(leaf.uriSans).toEqual([svid.spiffeId]);
  expect(leaf.spki.equals(exportSpkiDer(key.publicKey))).toBe(true);
  expect(svid.expiresAt).toBe(Math.floor(leaf.notAfter.getTime() / 1000));
  expect(verifyX509Svid(svid.certChain, bundle).spiffeId.toString()).toBe(svid.spiffeId);
}

export function runServerClientContract(name: string, target: () => Promise<ServerContractTarget>): void {
  describe(`server client contract: ${name}`, () => {
    let t: ServerContractTarget;
    let td: TrustDomain;
    let anon: ServerClient;
    let agentKey: KeyPair;
    let agentChain: readonly Buffer[];
    let agentId = '';
    let bundle: Bundle;
    let client: ServerClient;
    let entryId = '';
    const opened: ServerClient[] = [];
    const open = (creds: ServerClientCredentials): ServerClient => {
      const c = t.connect(creds);
      opened.push(c);
      return c;
    };
    const agentCreds = (): ServerClientCredentials => ({ mode: 'agent', roots: [...bundle.x509Authorities], certChain: agentChain, privateKey: agentKey.privateKey });

    beforeAll(async () => {
      t = await target();
      td = TrustDomain.parse(t.trustDomain);
      anon = open(await t.bootstrap());
    });
    afterAll(async () => {
      for (const c of opened) c.close();
      await t?.stop();
    });

    it('attests with a join token: an agent SVID for the CSR\'s key under /spire/agent/join_token/, verified by the bundle returned', async () => {
      agentKey = generateKeyPair();
      const res = await anon.attest({ type: 'join_token', payload: Buffer.from(await t.joinToken()), csr: createCsr({ privateKey: agentKey.privateKey }) });
      expect(res.bundle.trustDomain.equals(td)).toBe(true);
      expect(res.svid.spiffeId.startsWith(`${td.idString}/spire/agent/join_token/`)).toBe(true);
      expectSvidFor(res.svid, agentKey, res.bundle);
      agentId = res.svid.spiffeId;
      agentChain = res.svid.certChain;
      bundle = res.bundle;
      client = open(agentCreds());
    });

    it('refuses a used and an unknown join token with PERMISSION_DENIED', async () => {
      const token = await t.joinToken();
      const csr = (): Buffer => createCsr({ privateKey: generateKeyPair().privateKey });
      await anon.attest({ type: 'join_token', payload: Buffer.from(token), csr: csr() });
      expect((await callError(anon.attest({ type: 'join_token', payload: Buffer.from(token), csr: csr() }))).grpcCode).toBe(GrpcCode.PERMISSION_DENIED);
      expect((await callError(anon.attest({ type: 'join_token', payload: Buffer.from('0b5a7f2e-never-issued'), csr: csr() }))).grpcCode).toBe(GrpcCode.PERMISSION_DENIED);
    });

    it('refuses agent calls from a client without an agent SVID', async () => {
      const csr = createCsr({ privateKey: generateKeyPair().privateKey });
      const stream = new Promise<never>((_resolve, reject) => {
        anon.subscribe(() => reject(new Error('the stream sent an update to a client without an agent SVID')), reject);
      });
      // Every outcome is awaited at once: one that settles first is never left unhandled.
      const errors = await Promise.all([anon.renewAgent(csr), anon.newX509Svids([{ entryId: 'x', csr }]), anon.newJwtSvid('x', ['a']), stream].map(callError));
      for (const err of errors) expect([GrpcCode.UNAUTHENTICATED, GrpcCode.PERMISSION_DENIED]).toContain(err.grpcCode);
    });

    it('renews the agent SVID for a new key under the same agent ID', async () => {
      const key = generateKeyPair();
      const svid = await client.renewAgent(createCsr({ privateKey: key.privateKey }));
      expect(svid.spiffeId).toBe(agentId);
      expectSvidFor(svid, key, bundle);
      agentKey = key;
      agentChain = svid.certChain;
      client = open(agentCreds());
    });

    it('streams the bundle at once, then an entry created for the agent', async () => {
      const updates: AuthorizedUpdate[] = [];
      let wake: () => void = () => undefined;
      const cancel = client.subscribe(
        (u) => {
          updates.push(u);
          wake();
        },
        () => wake(),
      );
      const until = async (pred: () => boolean, what: string): Promise<void> => {
        const deadline = Date.now() + 15_000;
        while (!pred()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise<void>((r) => {
            wake = r;
            setTimeout(r, 200);
          });
        }
      };
      try {
        await until(() => updates.length > 0, 'the first update');
        expect(updates[0]?.bundle.trustDomain.equals(td)).toBe(true);
        expect(updates[0]?.bundle.x509Authorities.length).toBeGreaterThan(0);
        entryId = await t.createEntry(agentId, `${td.idString}/contract/workload`);
        await until(() => updates.some((u) => u.entries.some((e) => e.entryId === entryId)), 'the new entry');
        const entry = updates.flatMap((u) => u.entries).find((e) => e.entryId === entryId);
        expect(entry?.spiffeId).toBe(`${td.idString}/contract/workload`);
        expect(entry?.parentId).toBe(agentId);
      } finally {
        cancel();
      }
    });

    it('mints X509-SVIDs item by item: the entry\'s ID for the CSR\'s key, PERMISSION_DENIED for an entry not the agent\'s', async () => {
      const key = generateKeyPair();
      const [ok, refused] = await client.newX509Svids([
        { entryId, csr: createCsr({ privateKey: key.privateKey }) },
        { entryId: 'not-an-entry-of-this-agent', csr: createCsr({ privateKey: generateKeyPair().privateKey }) },
      ]);
      expect(ok?.ok).toBe(true);
      if (ok?.ok !== true) return;
      expect(ok.entryId).toBe(entryId);
      expect(ok.svid.spiffeId).toBe(`${td.idString}/contract/workload`);
      expectSvidFor(ok.svid, key, bundle);
      expect(refused).toMatchObject({ entryId: 'not-an-entry-of-this-agent', ok: false, code: GrpcCode.PERMISSION_DENIED });
    });

    it('mints a JWT-SVID for the entry and audience that verifies against the bundle', async () => {
      const jwt = await client.newJwtSvid(entryId, ['contract-audience']);
      expect(jwt.spiffeId).toBe(`${td.idString}/contract/workload`);
      expect(jwt.expiresAt).toBeGreaterThan(jwt.issuedAt);
      const v = validateJwtSvid(jwt.token, { audience: 'contract-audience', bundles: await currentBundle(client) });
      expect(v.spiffeId.toString()).toBe(jwt.spiffeId);
      expect((await callError(client.newJwtSvid('not-an-entry-of-this-agent', ['a']))).grpcCode).toBe(GrpcCode.PERMISSION_DENIED);
    });

    it('fails every call of a closed client with a ServerCallError', async () => {
      const c = t.connect(agentCreds());
      c.close();
      await callError(c.renewAgent(createCsr({ privateKey: generateKeyPair().privateKey })));
      await callError(c.newJwtSvid(entryId, ['a']));
    });
  });
}

/** The bundle as the stream sends it now (JWT authorities included). */
function currentBundle(client: ServerClient): Promise<Bundle> {
  return new Promise((resolve, reject) => {
    const cancel = client.subscribe(
      (u) => {
        cancel();
        resolve(u.bundle);
      },
      (err) => reject(err),
    );
  });
}
