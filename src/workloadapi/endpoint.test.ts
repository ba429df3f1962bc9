import v8 from 'node:v8';
import vm from 'node:vm';
import 'reflect-metadata';
import { spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import hpack from 'hpack.js';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readPeerCredentials, verifyCaller } from '../agent/peercred/index.js';
import { WorkloadApiEndpoint, type WorkloadApiEndpointConfig } from './endpoint.js';
import { CONNECTION_PREFACE } from './h2-authority.js';
import {
  Client,
  FakeIdentities,
  FED,
  h2Frame,
  header,
  makeMaterial,
  methodDef,
  OK_HEADER,
  Reader,
  TD,
  unary,
  unaryStatus,
  update,
  type Material,
} from './testing.js';
import type { CallerCheck, PeerCredentials, PeerCredentialSource, ValidateJwtSvid, X509Identity } from './identities.js';
import type {
  JWTBundlesResponse,
  JWTSVIDResponse,
  Struct,
  ValidateJWTSVIDResponse,
  X509BundlesResponse,
  X509SVIDResponse,
} from '../wire/workload/messages.js';
import { protoDir, SECURITY_HEADER } from '../wire/workload/proto.js';
import { fromStruct } from '../wire/workload/struct.js';

/** The real peer credential reader, with switches to simulate refusal, PID reuse and an exec. */
class SwitchablePeerCreds implements PeerCredentialSource {
  refuse = false;
  replaced = false;
  execed = false;
  async read(socket: net.Socket): Promise<PeerCredentials> {
    if (this.refuse) throw new Error('simulated: credentials unreadable');
    return readPeerCredentials(socket);
  }
  verify(cred: PeerCredentials): CallerCheck {
    if (this.replaced) return { ok: false, reason: 'pid-reused', detail: 'simulated' };
    if (this.execed) return { ok: false, reason: 'executable-changed', detail: 'simulated' };
    return verifyCaller(cred);
  }
}

// ---------------------------------------------------------------- fixtures

let material: Material;
let dir: string;
let endpoint: WorkloadApiEndpoint;
let fake: FakeIdentities;
let peer: SwitchablePeerCreds;
let validateCalls: Array<[string, string]>;
let client: grpc.Client;
const clients: grpc.Client[] = [];

const validateJwtSvid: ValidateJwtSvid = async (token, audience) => {
  validateCalls.push([token, audience]);
  if (token !== 'good.token.here') throw new Error('token signed by unknown authority "k9"');
  return {
    spiffeId: `${TD}/web`,
    claims: { sub: `${TD}/web`, aud: [audience], exp: 1_900_000_000, nested: { ok: true, n: null, list: [1, 'two', { three: 3 }] } },
  };
};

function newClient(path = endpoint.socketPath): grpc.Client {
  const c = new Client(`unix://${path}`, grpc.credentials.createInsecure());
  clients.push(c);
  return c;
}

async function startEndpoint(extra: Partial<WorkloadApiEndpointConfig> = {}): Promise<WorkloadApiEndpoint> {
  const e = new WorkloadApiEndpoint({
    socketPath: join(dir, 'run', 'agent.sock'),
    identities: fake,
    validateJwtSvid,
    peerCredentials: peer,
    ...extra,
  });
  await e.start();
  return e;
}

let alice: X509Identity;
let aliceRotated: X509Identity;
let bob: X509Identity;

beforeAll(async () => {
  material = await makeMaterial();
  alice = await material.makeIdentity(`${TD}/alice`, 'internal');
  aliceRotated = await material.makeIdentity(`${TD}/alice`, 'internal');
  bob = await material.makeIdentity(`${TD}/bob`, 'external');
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mayfly-wl-'));
  fake = new FakeIdentities(update(material, [alice, bob]));
  peer = new SwitchablePeerCreds();
  validateCalls = [];
  endpoint = await startEndpoint();
  client = newClient();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await endpoint.close();
  await rm(dir, { recursive: true, force: true });
});

const ALL_RPCS: Array<{ method: string; stream: boolean; req: object }> = [
  { method: 'FetchX509SVID', stream: true, req: {} },
  { method: 'FetchX509Bundles', stream: true, req: {} },
  { method: 'FetchJWTBundles', stream: true, req: {} },
  { method: 'FetchJWTSVID', stream: false, req: { audience: ['a'] } },
  { method: 'ValidateJWTSVID', stream: false, req: { audience: 'a', svid: 'good.token.here' } },
];

async function statusOf(c: grpc.Client, rpc: (typeof ALL_RPCS)[number], md: grpc.Metadata): Promise<grpc.status> {
  if (rpc.stream) return (await new Reader(c, rpc.method, md).status()).code;
  return (await unaryStatus(c, rpc.method, rpc.req, md)).code;
}

// ---------------------------------------------------------------- tests

describe('security header', () => {
  for (const rpc of ALL_RPCS) {
    it(`${rpc.method}: missing, wrong or duplicated → INVALID_ARGUMENT`, async () => {
      expect(await statusOf(client, rpc, header())).toBe(grpc.status.INVALID_ARGUMENT);
      expect(await statusOf(client, rpc, header('false'))).toBe(grpc.status.INVALID_ARGUMENT);
      expect(await statusOf(client, rpc, header('TRUE'))).toBe(grpc.status.INVALID_ARGUMENT);
      expect(await statusOf(client, rpc, header('true', 'true'))).toBe(grpc.status.INVALID_ARGUMENT);
      // The header is checked before attestation: nobody was attested.
      expect(fake.attested).toHaveLength(0);
    });
  }
});

describe('FetchX509SVID', () => {
  it('sends the caller its SVIDs at once, with bundle, key, hint and federated bundles', async () => {
    const r = new Reader<X509SVIDResponse>(client, 'FetchX509SVID');
    const first = await r.next();
    expect(first.svids.map((s) => s.spiffe_id)).toEqual([`${TD}/alice`, `${TD}/bob`]);
    const s0 = first.svids[0]!;
    expect(s0.hint).toBe('internal');
    expect(s0.bundle.equals(material.rootDer)).toBe(true);
    const leaf = new X509Certificate(s0.x509_svid);
    expect(leaf.subjectAltName).toBe(`URI:${s0.spiffe_id}`);
    expect(leaf.checkPrivateKey(createPrivateKey({ key: s0.x509_svid_key, format: 'der', type: 'pkcs8' }))).toBe(true);
    expect(leaf.verify(new X509Certificate(material.rootDer).publicKey)).toBe(true);
    expect(Object.keys(first.federated_bundles)).toEqual([FED]);
    r.call.cancel();
  });

  it('re-sends the full state on every change, skips identical state, ends with PERMISSION_DENIED when identities vanish', async () => {
    const r = new Reader<X509SVIDResponse>(client, 'FetchX509SVID');
    const first = await r.next();
    fake.publish(update(material, [aliceRotated, bob]));
    const second = await r.next();
    expect(second.svids[0]!.x509_svid.equals(first.svids[0]!.x509_svid)).toBe(false);
    expect(second.svids[0]!.x509_svid.equals(aliceRotated.certificates[0]!)).toBe(true);
    // Same state again (e.g. a JWT bundle change): nothing new to say.
    fake.publish(update(material, [aliceRotated, bob], '{"keys":[{"kid":"x"}]}'));
    fake.publish(update(material, [bob]));
    const third = await r.next();
    expect(third.svids.map((s) => s.spiffe_id)).toEqual([`${TD}/bob`]);
    expect(r.received).toBe(3);

    fake.publish(update(material, []));
    const st = await r.status();
    expect(st.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(fake.subscribers.size).toBe(0);
  });

  it('no identity → PERMISSION_DENIED on every fetch', async () => {
    fake.current = update(material, []);
    for (const method of ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTBundles']) {
      expect((await new Reader(client, method).status()).code).toBe(grpc.status.PERMISSION_DENIED);
    }
    expect((await unaryStatus(client, 'FetchJWTSVID', { audience: ['a'] })).code).toBe(grpc.status.PERMISSION_DENIED);
    expect(fake.subscribers.size).toBe(0);
  });

  it('unsubscribes when the client cancels', async () => {
    const r = new Reader<X509SVIDResponse>(client, 'FetchX509SVID');
    await r.next();
    expect(fake.subscribers.size).toBe(1);
    r.call.cancel();
    expect((await r.status()).code).toBe(grpc.status.CANCELLED);
    for (let i = 0; i < 100 && fake.subscribers.size > 0; i++) await new Promise((res) => setTimeout(res, 10));
    expect(fake.subscribers.size).toBe(0);
  });
});

describe('shutdown', () => {
  it('ends every open stream with UNAVAILABLE (never CANCELLED, which go-spiffe does not retry)', async () => {
    const streams = ['FetchX509SVID', 'FetchX509Bundles', 'FetchJWTBundles'].map((m) => new Reader(client, m));
    for (const r of streams) await r.next();
    await endpoint.close();
    for (const r of streams) {
      const st = await r.status();
      expect(st.code).toBe(grpc.status.UNAVAILABLE);
      // Our own trailers arrived: the stream was ended deliberately, not torn down with the socket.
      expect(st.details).toBe('agent is shutting down');
    }
    expect(fake.subscribers.size).toBe(0);
  });
});

describe('bundle streams', () => {
  it('FetchX509Bundles: own and federated roots keyed by trust domain ID; identical state suppressed', async () => {
    const r = new Reader<X509BundlesResponse>(client, 'FetchX509Bundles');
    const first = await r.next();
    expect(Object.keys(first.bundles).sort()).toEqual([TD, FED].sort());
    expect(first.bundles[TD]!.equals(material.rootDer)).toBe(true);
    fake.publish(update(material, [aliceRotated, bob])); // SVID rotation only: same bundles
    const fed = update(material, [aliceRotated, bob]);
    (fed.federatedBundles as Map<string, { x509Authorities: Buffer; jwks: Buffer }>).set(FED, {
      x509Authorities: Buffer.from([0x30, 0x01, 0x00]),
      jwks: Buffer.from('{}'),
    });
    fake.publish(fed);
    const second = await r.next();
    expect(second.bundles[FED]).toEqual(Buffer.from([0x30, 0x01, 0x00]));
    expect(r.received).toBe(2);
    fake.publish(update(material, []));
    expect((await r.status()).code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('FetchJWTBundles: JWKS bytes keyed by trust domain ID; identical state suppressed', async () => {
    const r = new Reader<JWTBundlesResponse>(client, 'FetchJWTBundles');
    const first = await r.next();
    expect(JSON.parse(first.bundles[TD]!.toString())).toEqual({ keys: [{ kid: 'k1' }] });
    expect(first.bundles[FED]!.toString()).toBe('{"keys":[]}');
    fake.publish(update(material, [aliceRotated])); // no JWKS change
    fake.publish(update(material, [aliceRotated], '{"keys":[{"kid":"f2"}]}'));
    const second = await r.next();
    expect(second.bundles[FED]!.toString()).toBe('{"keys":[{"kid":"f2"}]}');
    expect(r.received).toBe(2);
    r.call.cancel();
  });
});

describe('FetchJWTSVID', () => {
  it('returns one JWT-SVID per identity, or only the one asked for', async () => {
    const all = await unary<JWTSVIDResponse>(client, 'FetchJWTSVID', { audience: ['a', 'b'] });
    expect(all.svids).toEqual([
      { spiffe_id: `${TD}/alice`, svid: `jwt:${TD}/alice:a,b`, hint: 'internal' },
      { spiffe_id: `${TD}/bob`, svid: `jwt:${TD}/bob:a,b`, hint: 'external' },
    ]);
    const one = await unary<JWTSVIDResponse>(client, 'FetchJWTSVID', { audience: ['a'], spiffe_id: `${TD}/bob` });
    expect(one.svids.map((s) => s.spiffe_id)).toEqual([`${TD}/bob`]);
  });

  it('empty audience or malformed spiffe_id → INVALID_ARGUMENT; not the caller\'s → PERMISSION_DENIED', async () => {
    expect((await unaryStatus(client, 'FetchJWTSVID', { audience: [] })).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await unaryStatus(client, 'FetchJWTSVID', { audience: [''] })).code).toBe(grpc.status.INVALID_ARGUMENT);
    for (const bad of ['spiffe://Example.org/x', 'spiffe://example.org/a/../b', 'https://example.org/x']) {
      expect((await unaryStatus(client, 'FetchJWTSVID', { audience: ['a'], spiffe_id: bad })).code).toBe(grpc.status.INVALID_ARGUMENT);
    }
    const denied = await unaryStatus(client, 'FetchJWTSVID', { audience: ['a'], spiffe_id: `${TD}/mallory` });
    expect(denied.code).toBe(grpc.status.PERMISSION_DENIED);
  });
});

describe('ValidateJWTSVID', () => {
  it('returns the SPIFFE ID and the claims as a google.protobuf.Struct', async () => {
    const res = await unary<ValidateJWTSVIDResponse>(client, 'ValidateJWTSVID', { audience: 'svc', svid: 'good.token.here' });
    expect(validateCalls).toEqual([['good.token.here', 'svc']]);
    expect(res.spiffe_id).toBe(`${TD}/web`);
    expect(fromStruct(res.claims as Struct)).toEqual({
      sub: `${TD}/web`,
      aud: ['svc'],
      exp: 1_900_000_000,
      nested: { ok: true, n: null, list: [1, 'two', { three: 3 }] },
    });
  });

  it('empty audience/svid and invalid tokens → INVALID_ARGUMENT with the reason', async () => {
    expect((await unaryStatus(client, 'ValidateJWTSVID', { audience: '', svid: 'x' })).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await unaryStatus(client, 'ValidateJWTSVID', { audience: 'a', svid: '' })).code).toBe(grpc.status.INVALID_ARGUMENT);
    const bad = await unaryStatus(client, 'ValidateJWTSVID', { audience: 'a', svid: 'forged' });
    expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.details).toContain('unknown authority "k9"');
  });
});

describe('attestation and the PID-reuse guard', () => {
  it('attestation failure → UNAVAILABLE on every RPC', async () => {
    fake.attestError = new Error('attestor down');
    for (const rpc of ALL_RPCS) expect(await statusOf(client, rpc, OK_HEADER())).toBe(grpc.status.UNAVAILABLE);
  });

  it('a caller replaced during attestation → UNAVAILABLE on every RPC', async () => {
    peer.replaced = true;
    for (const rpc of ALL_RPCS) expect(await statusOf(client, rpc, OK_HEADER())).toBe(grpc.status.UNAVAILABLE);
    expect(fake.subscribers.size).toBe(0);
  });

  it('a caller that exec\'d since it connected → PERMISSION_DENIED on every RPC, and an open stream ends at its next update', async () => {
    const stream = new Reader<X509SVIDResponse>(client, 'FetchX509SVID');
    expect((await stream.next()).svids[0]?.spiffe_id).toBe(alice.spiffeId);
    peer.execed = true;
    for (const rpc of ALL_RPCS) expect(await statusOf(client, rpc, OK_HEADER())).toBe(grpc.status.PERMISSION_DENIED);
    fake.publish(update(material, [bob]));
    expect((await stream.status()).code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('handlers see the kernel-reported credentials of their own connection', async () => {
    await unary(client, 'FetchJWTSVID', { audience: ['a'] });
    expect(fake.attested[0]).toMatchObject({ pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() });
  });

  it('two callers with different pids on one server each get their own identity', async () => {
    fake.perPid = true;
    const script = `
      const grpc = require('@grpc/grpc-js'); const pl = require('@grpc/proto-loader');
      const [proto, sock] = process.argv.slice(1);
      const def = pl.loadSync(proto, { keepCase: true, longs: Number, bytes: Buffer, defaults: true, oneofs: true });
      const C = grpc.loadPackageDefinition(def).SpiffeWorkloadAPI;
      const c = new C('unix://' + sock, grpc.credentials.createInsecure());
      const call = () => new Promise((res, rej) => {
        const md = new grpc.Metadata(); md.set('workload.spiffe.io', 'true');
        c.FetchJWTSVID({ audience: ['a'] }, md, (e, r) => e ? rej(e) : res(r.svids[0].spiffe_id));
      });
      (async () => {
        console.log(await call());
        await new Promise((r) => process.stdin.once('data', r));
        console.log(await call());
        c.close(); process.exit(0);
      })().catch((e) => { console.error(String(e)); process.exit(1); });`;
    const children: ChildProcess[] = [];
    const lines: Array<AsyncIterableIterator<string>> = [];
    try {
      for (let i = 0; i < 2; i++) {
        const child = spawn(process.execPath, ['-e', script, join(protoDir(), 'workload.proto'), endpoint.socketPath], {
          cwd: process.cwd(),
          stdio: ['pipe', 'pipe', 'inherit'],
        });
        children.push(child);
        lines.push(createInterface({ input: child.stdout! })[Symbol.asyncIterator]());
      }
      // Both children hold their connections open while the parent calls in between.
      const firsts = await Promise.all(lines.map(async (l) => (await l.next()).value as string));
      const mine = await unary<JWTSVIDResponse>(client, 'FetchJWTSVID', { audience: ['a'] });
      for (const c of children) c.stdin!.write('go\n');
      const seconds = await Promise.all(lines.map(async (l) => (await l.next()).value as string));

      children.forEach((c, i) => {
        expect(firsts[i]).toBe(`${TD}/pid/${c.pid}`);
        expect(seconds[i]).toBe(`${TD}/pid/${c.pid}`);
      });
      expect(mine.svids[0]!.spiffe_id).toBe(`${TD}/pid/${process.pid}`);
      const pids = new Set(fake.attested.map((a) => a.pid));
      expect(pids).toEqual(new Set([process.pid, children[0]!.pid, children[1]!.pid]));
      for (const a of fake.attested) expect(a.uid).toBe(process.getuid?.());
    } finally {
      for (const c of children) c.kill();
    }
  });
});

describe('connections', () => {
  it('a connection whose credentials cannot be read is refused before any request is served', async () => {
    peer.refuse = true;
    const err = await unaryStatus(newClient(), 'FetchJWTSVID', { audience: ['a'] });
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(fake.attested).toHaveLength(0);
    expect(endpoint.connectionCount).toBe(0);
    // A raw connection is closed by the server without a byte of answer.
    const raw = net.connect(endpoint.socketPath);
    const got: Buffer[] = [];
    raw.on('data', (d: Buffer) => got.push(d));
    await new Promise((res) => raw.once('close', res));
    expect(Buffer.concat(got).length).toBe(0);
  });

  it('grpc-js clients go to grpc-js directly; a socket-path :authority (grpc-java) is served through the rewriter', async () => {
    // grpc-js (the fixture's client) sends a valid authority: handed over as it is.
    expect((await new Reader<X509SVIDResponse>(client, 'FetchX509SVID').next()).svids[0]?.spiffe_id).toBe(alice.spiffeId);
    expect(endpoint.routes).toEqual({ direct: 1, rewrite: 0 });

    // Raw HTTP/2 as grpc-java writes it: the socket path as :authority.
    const frame = h2Frame;
    const compressor = hpack.compressor.create({ table: { maxSize: 4096 } });
    compressor.write([
      { name: ':method', value: 'POST' },
      { name: ':scheme', value: 'http' },
      { name: ':path', value: '/SpiffeWorkloadAPI/FetchX509SVID' },
      { name: ':authority', value: endpoint.socketPath },
      { name: 'content-type', value: 'application/grpc' },
      { name: 'te', value: 'trailers' },
      { name: SECURITY_HEADER, value: 'true' },
    ]);
    const block = compressor.read() ?? Buffer.alloc(0);
    const raw = net.connect(endpoint.socketPath);
    raw.on('error', () => {});
    const body = await new Promise<Buffer>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      let data = Buffer.alloc(0);
      raw.on('close', () => reject(new Error('the endpoint closed the connection')));
      raw.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
          const len = buf.readUIntBE(0, 3);
          const [type, flags, stream] = [buf[3] as number, buf[4] as number, buf.readUInt32BE(5) & 0x7fffffff];
          const payload = buf.subarray(9, 9 + len);
          buf = buf.subarray(9 + len);
          if (type === 0x4 && !(flags & 1)) raw.write(frame(0x4, 1, 0, Buffer.alloc(0)));
          if (type === 0x3 && stream === 1) reject(new Error(`stream reset (code ${payload.readUInt32BE(0)})`));
          if (type === 0x0 && stream === 1) data = Buffer.concat([data, payload]);
          if (data.length >= 5 && data.length >= 5 + data.readUInt32BE(1)) resolve(data.subarray(5, 5 + data.readUInt32BE(1)));
        }
      });
      raw.write(Buffer.concat([CONNECTION_PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)), frame(0x1, 0x4, 1, block), frame(0x0, 0x1, 1, Buffer.alloc(5))]));
    });
    raw.destroy();
    const msg = methodDef('FetchX509SVID').responseDeserialize(body) as X509SVIDResponse;
    expect(msg.svids.map((x) => x.spiffe_id)).toEqual([alice.spiffeId, bob.spiffeId]);
    expect(endpoint.routes).toEqual({ direct: 1, rewrite: 1 });
  });

  it('unknown methods (FetchWITSVID, FetchWITBundles) → UNIMPLEMENTED', async () => {
    const ser = (): Buffer => Buffer.alloc(0);
    const de = (b: Buffer): Buffer => b;
    const unaryErr = await new Promise<grpc.ServiceError>((resolve) =>
      client.makeUnaryRequest('/SpiffeWorkloadAPI/FetchWITSVID', ser, de, {}, OK_HEADER(), (e) => resolve(e as grpc.ServiceError)),
    );
    expect(unaryErr.code).toBe(grpc.status.UNIMPLEMENTED);
    const s = client.makeServerStreamRequest('/SpiffeWorkloadAPI/FetchWITBundles', ser, de, {}, OK_HEADER());
    s.on('data', () => {});
    const streamErr = await new Promise<grpc.ServiceError>((resolve) => s.on('error', resolve));
    expect(streamErr.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it('oversized requests are refused with RESOURCE_EXHAUSTED', async () => {
    const err = await unaryStatus(client, 'FetchJWTSVID', { audience: ['x'.repeat(80 * 1024)] });
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(fake.attested).toHaveLength(0);
  });

  it('10,000 failed attestations leave file descriptors and memory flat', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const fds = async (): Promise<number> => (await readdir('/proc/self/fd')).length;
    fake.attestError = new Error('attestor down');
    const round = async (calls: number): Promise<void> => {
      // 100 calls per connection: both per-call and per-connection state get exercised.
      for (let done = 0; done < calls; done += 100) {
        const c = new Client(`unix://${endpoint.socketPath}`, grpc.credentials.createInsecure());
        const codes = await Promise.all(Array.from({ length: 100 }, () => unaryStatus(c, 'FetchJWTSVID', { audience: ['a'] }).then((e) => e.code)));
        expect(new Set(codes)).toEqual(new Set([grpc.status.UNAVAILABLE]));
        c.close();
        fake.attested.length = 0; // the fake's own record, not the endpoint's state
      }
    };
    const settle = async (): Promise<{ fd: number; heap: number }> => {
      for (let i = 0; i < 200 && endpoint.connectionCount > 0; i++) await new Promise((res) => setTimeout(res, 10));
      await new Promise((res) => setTimeout(res, 50));
      gc();
      const m = process.memoryUsage();
      // Buffers live outside the V8 heap: count both.
      return { fd: await fds(), heap: m.heapUsed + m.external };
    };
    await round(1000); // warm-up: lazy initialisation, JIT, pools
    const before = await settle();
    await round(10_000);
    const after = await settle();
    expect(endpoint.connectionCount).toBe(0);
    expect(after.fd).toBeLessThanOrEqual(before.fd + 5);
    // Per-call leaks of even 1 KiB would show as 10 MB here.
    expect(after.heap - before.heap).toBeLessThan(4 * 1024 * 1024);
  });

  it('2,000 short connections leave the open file descriptor count flat', async () => {
    const fds = async (): Promise<number> => (await readdir('/proc/self/fd')).length;
    // Warm up: one full gRPC call on its own connection, then close it.
    const warm = newClient();
    await unary(warm, 'FetchJWTSVID', { audience: ['a'] });
    warm.close();
    const settle = async (target: number): Promise<number> => {
      let n = await fds();
      for (let i = 0; i < 200 && n > target; i++) {
        await new Promise((res) => setTimeout(res, 10));
        n = await fds();
      }
      return n;
    };
    await new Promise((res) => setTimeout(res, 50));
    const before = await fds();
    const one = (): Promise<void> =>
      new Promise((resolve) => {
        const s = net.connect(endpoint.socketPath);
        s.resume(); // read to EOF, so 'close' follows the server hanging up
        // A server that never hangs up must fail the test, not time it out.
        const timer = setTimeout(() => {
          hung++;
          s.destroy();
        }, 2000);
        const done = (): void => {
          clearTimeout(timer);
          resolve();
        };
        s.on('error', done);
        s.on('close', done);
        // Half of them start an HTTP/2 session, half hang up at once.
        s.on('connect', () => (Math.random() < 0.5 ? s.end('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n') : s.destroy()));
      });
    let hung = 0;
    for (let batch = 0; batch < 40; batch++) {
      await Promise.all(Array.from({ length: 50 }, one));
      expect(hung).toBe(0);
    }
    // Plus a few real gRPC clients, each making a call and going away.
    for (let i = 0; i < 20; i++) {
      const c = new Client(`unix://${endpoint.socketPath}`, grpc.credentials.createInsecure());
      await unary(c, 'FetchJWTSVID', { audience: ['a'] });
      c.close();
    }
    const after = await settle(before + 5);
    expect(after).toBeLessThanOrEqual(before + 5);
    for (let i = 0; i < 200 && endpoint.connectionCount > 0; i++) await new Promise((res) => setTimeout(res, 10));
    expect(endpoint.connectionCount).toBe(0);
  });
});

describe('socket file', () => {
  it('creates the parent directory 0755, the socket 0777, and removes it at close', async () => {
    const st = await stat(endpoint.socketPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o777);
    expect((await stat(join(dir, 'run'))).mode & 0o777).toBe(0o755);
    await endpoint.close();
    await expect(stat(endpoint.socketPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('replaces a stale socket left by a dead process, but never a regular file', async () => {
    const path = join(dir, 'stale.sock');
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`]);
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))));
    });
    expect((await stat(path)).isSocket()).toBe(true);
    const e2 = await startEndpoint({ socketPath: path });
    try {
      const res = await unary<JWTSVIDResponse>(newClient(path), 'FetchJWTSVID', { audience: ['a'] });
      expect(res.svids).toHaveLength(2);
    } finally {
      await e2.close();
    }
    const file = join(dir, 'not-a-socket');
    await writeFile(file, 'precious');
    await expect(startEndpoint({ socketPath: file })).rejects.toThrow(/not a socket/);
  });
});
