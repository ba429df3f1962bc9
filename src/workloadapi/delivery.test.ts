import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readPeerCredentials, verifyCaller } from '../agent/peercred/index.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import type { X509SVIDResponse } from '../wire/workload/messages.js';
import type { DeliveredSvid, DeliveryCaller } from './delivery.js';
import { WorkloadApiEndpoint } from './endpoint.js';
import type { X509Identity } from './identities.js';
import { Client, eventually, FakeIdentities, makeMaterial, Reader, TD, unary, update, type Material } from './testing.js';

let material: Material;
let alice: X509Identity;
let aliceRotated: X509Identity;
let dir: string;
let fake: FakeIdentities;
let endpoint: WorkloadApiEndpoint;
let seen: { caller: DeliveryCaller; what: DeliveredSvid }[];
let throwing: boolean;
const clients: grpc.Client[] = [];

const serialOf = (id: X509Identity): string => parseCertificate(id.certificates[0]!).serialHex;
const newClient = (): grpc.Client => {
  const c = new Client(`unix://${endpoint.socketPath}`, grpc.credentials.createInsecure());
  clients.push(c);
  return c;
};

beforeAll(async () => {
  material = await makeMaterial();
  alice = await material.makeIdentity(`${TD}/alice`);
  aliceRotated = await material.makeIdentity(`${TD}/alice`);
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mayfly-wl-delivery-'));
  fake = new FakeIdentities(update(material, [alice]));
  seen = [];
  throwing = false;
  endpoint = new WorkloadApiEndpoint({
    socketPath: join(dir, 'run', 'agent.sock'),
    identities: fake,
    validateJwtSvid: async () => ({ spiffeId: `${TD}/alice`, claims: {} }),
    peerCredentials: { read: (s) => readPeerCredentials(s), verify: (c) => verifyCaller(c) },
    onDelivered: (caller, what) => {
      seen.push({ caller, what });
      if (throwing) throw new Error('the delivery log is broken');
    },
  });
  await endpoint.start();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await endpoint.close();
  await rm(dir, { recursive: true, force: true });
});

describe('onDelivered', () => {
  it('names the caller (pid, uid, gid, selectors) and the X.509 serial, once per (stream, serial)', async () => {
    const r = new Reader<X509SVIDResponse>(newClient(), 'FetchX509SVID');
    await r.next();
    expect(seen).toHaveLength(1);
    expect(seen[0]!.caller).toEqual({ pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.(), selectors: [`unix:pid:${process.pid}`] });
    expect(seen[0]!.what).toMatchObject({ kind: 'x509', spiffeId: `${TD}/alice`, serial: serialOf(alice) });
    expect(seen[0]!.what.notAfter).toBeGreaterThan(0);
    // A bundle change resends the same SVID: not a new delivery.
    const same = update(material, [alice]);
    fake.publish({ ...same, bundle: { ...same.bundle, x509Authorities: Buffer.concat([material.rootDer, material.rootDer]) } });
    await r.next();
    expect(seen).toHaveLength(1);
    // A rotated SVID is.
    fake.publish(update(material, [aliceRotated]));
    await r.next();
    expect(seen.map((s) => (s.what.kind === 'x509' ? s.what.serial : ''))).toEqual([serialOf(alice), serialOf(aliceRotated)]);
    // Another stream of the same caller reports again.
    const r2 = new Reader<X509SVIDResponse>(newClient(), 'FetchX509SVID');
    await r2.next();
    expect(seen).toHaveLength(3);
    r.call.cancel();
    r2.call.cancel();
  });

  it('names a JWT-SVID with its audience and expiry', async () => {
    const exp = 1_900_000_123;
    const payload = Buffer.from(JSON.stringify({ sub: `${TD}/alice`, exp })).toString('base64url');
    fake.fetchJwtSvid = async () => [{ spiffeId: `${TD}/alice`, token: `e30.${payload}.sig` }];
    await unary(newClient(), 'FetchJWTSVID', { audience: ['db', 'cache'] });
    expect(seen.map((s) => s.what)).toEqual([{ kind: 'jwt', spiffeId: `${TD}/alice`, audience: ['db', 'cache'], notAfter: exp }]);
  });

  it('a failing onDelivered never fails or blocks the call', async () => {
    throwing = true;
    const r = new Reader<X509SVIDResponse>(newClient(), 'FetchX509SVID');
    const first = await r.next();
    expect(first.svids.map((s) => s.spiffe_id)).toEqual([`${TD}/alice`]);
    fake.publish(update(material, [aliceRotated]));
    const second = await r.next();
    expect(second.svids).toHaveLength(1);
    expect(await eventually(() => seen.length === 2)).toBe(true);
    const jwt = await unary<{ svids: unknown[] }>(newClient(), 'FetchJWTSVID', { audience: ['db'] });
    expect(jwt.svids).toHaveLength(1);
    r.call.cancel();
  });
});
