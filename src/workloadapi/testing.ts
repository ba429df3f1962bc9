/**
 * @module workloadapi/testing
 *
 * For tests only, shared by the Workload API endpoint's test files:
 * - raw HTTP/2 frames as a client writes them (RFC 9113 §4.1: 24-bit length, type, flags,
 *   31-bit stream identifier, payload), to drive the endpoint, the `:authority` rewriter and
 *   the first-request sniffer byte by byte;
 * - test material (a throwaway CA and SVIDs) and a hand-written fake of the agent cache;
 * - gRPC client helpers (unary calls with a deadline, a stream reader);
 * - a recording logger, and `eventually` to wait for a condition with a generous bound.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import type {
  IssuedJwtSvid,
  JwtSvidRequest,
  PeerCredentials,
  Selector,
  WorkloadIdentities,
  WorkloadUpdate,
  X509Identity,
} from './identities.js';
import { SECURITY_HEADER, workloadServiceDefinition } from '../wire/workload/proto.js';

/** One HTTP/2 frame: the 9-octet header followed by `payload`. */
export function h2Frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

// ---------------------------------------------------------------- test material (endpoint tests)

export const TD = 'spiffe://example.org';
export const FED = 'spiffe://partner.test';
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface Material {
  rootDer: Buffer;
  makeIdentity(spiffeId: string, hint?: string): Promise<X509Identity>;
}

/** A throwaway root and leaf SVIDs it signs (real ECDSA P-256 certificates). */
export async function makeMaterial(): Promise<Material> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 3_600_000);
  const caKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=test root',
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  let serial = 1;
  return {
    rootDer: Buffer.from(root.rawData),
    async makeIdentity(spiffeId, hint) {
      const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: (++serial).toString(16).padStart(2, '0'),
        subject: 'CN=workload',
        issuer: root.subject,
        notBefore,
        notAfter,
        publicKey: keys.publicKey,
        signingKey: caKeys.privateKey,
        signingAlgorithm: ALG,
        extensions: [
          new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], false),
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        ],
      });
      const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
      return { spiffeId, certificates: [Buffer.from(leaf.rawData)], privateKeyPkcs8: pkcs8, ...(hint ? { hint } : {}) };
    },
  };
}

/** The full state a caller is entitled to: `identities`, the root as bundle, one federated bundle. */
export function update(material: Material, identities: X509Identity[], fedJwks = '{"keys":[]}'): WorkloadUpdate {
  return {
    identities,
    bundle: { trustDomain: TD, x509Authorities: material.rootDer, jwks: Buffer.from('{"keys":[{"kid":"k1"}]}') },
    federatedBundles: new Map([[FED, { x509Authorities: Buffer.from([0x30, 0x00]), jwks: Buffer.from(fedJwks) }]]),
  };
}

/** Hand-written fake of the agent cache. */
export class FakeIdentities implements WorkloadIdentities {
  attested: PeerCredentials[] = [];
  attestError: Error | undefined;
  current: WorkloadUpdate;
  readonly subscribers = new Set<(u: WorkloadUpdate) => void>();
  /** When set, JWT-SVIDs are minted per caller pid (for the two-callers test). */
  perPid = false;

  constructor(initial: WorkloadUpdate) {
    this.current = initial;
  }

  async attest(caller: PeerCredentials): Promise<Selector[]> {
    this.attested.push(caller);
    if (this.attestError) throw this.attestError;
    return [{ type: 'unix', value: `pid:${caller.pid}` }];
  }

  subscribe(_selectors: readonly Selector[], onUpdate: (u: WorkloadUpdate) => void): () => void {
    this.subscribers.add(onUpdate);
    onUpdate(this.current);
    return () => this.subscribers.delete(onUpdate);
  }

  publish(u: WorkloadUpdate): void {
    this.current = u;
    for (const s of [...this.subscribers]) s(u);
  }

  async fetchJwtSvid(selectors: readonly Selector[], req: JwtSvidRequest): Promise<IssuedJwtSvid[]> {
    if (this.perPid) {
      const pid = selectors[0]?.value.slice('pid:'.length);
      return [{ spiffeId: `${TD}/pid/${pid}`, token: 'tok' }];
    }
    return this.current.identities
      .filter((id) => req.spiffeId === undefined || id.spiffeId === req.spiffeId)
      .map((id) => ({ spiffeId: id.spiffeId, token: `jwt:${id.spiffeId}:${req.audience.join(',')}`, ...(id.hint ? { hint: id.hint } : {}) }));
  }
}

// ---------------------------------------------------------------- client helpers

/** A grpc-js client constructor for the Workload API service. */
export const Client = grpc.makeClientConstructor(workloadServiceDefinition(), 'SpiffeWorkloadAPI');

export function header(...values: string[]): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const v of values) md.add(SECURITY_HEADER, v);
  return md;
}
export const OK_HEADER = (): grpc.Metadata => header('true');

export function methodDef(method: string): grpc.MethodDefinition<object, unknown> {
  const d = workloadServiceDefinition()[method];
  if (!d) throw new Error(method);
  return d as grpc.MethodDefinition<object, unknown>;
}

export function unary<T>(c: grpc.Client, method: string, req: object, md = OK_HEADER()): Promise<T> {
  const d = methodDef(method);
  return new Promise((resolve, reject) => {
    // A deadline, so a server that never answers fails the test instead of hanging it.
    const options = { deadline: Date.now() + 10_000 };
    c.makeUnaryRequest(d.path, d.requestSerialize, d.responseDeserialize, req, md, options, (err, res) =>
      err ? reject(err) : resolve(res as T),
    );
  });
}

export async function unaryStatus(c: grpc.Client, method: string, req: object, md = OK_HEADER()): Promise<grpc.ServiceError> {
  try {
    await unary(c, method, req, md);
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error(`${method} unexpectedly succeeded`);
}

/** Reads a server stream message by message. */
export class Reader<T> {
  private readonly messages: T[] = [];
  private error: grpc.ServiceError | undefined;
  private wake: (() => void) | undefined;
  readonly call: grpc.ClientReadableStream<T>;
  received = 0;

  constructor(c: grpc.Client, method: string, md = OK_HEADER()) {
    const d = methodDef(method);
    this.call = c.makeServerStreamRequest(d.path, d.requestSerialize, d.responseDeserialize, {}, md) as grpc.ClientReadableStream<T>;
    this.call.on('data', (m: T) => {
      this.received++;
      this.messages.push(m);
      this.wake?.();
    });
    this.call.on('error', (e: grpc.ServiceError) => {
      this.error = e;
      this.wake?.();
    });
  }

  private async waitFor(ready: () => boolean): Promise<void> {
    while (!ready()) await new Promise<void>((r) => (this.wake = r));
  }

  async next(): Promise<T> {
    await this.waitFor(() => this.messages.length > 0 || this.error !== undefined);
    const m = this.messages.shift();
    if (m === undefined) throw this.error;
    return m;
  }

  async status(): Promise<grpc.ServiceError> {
    await this.waitFor(() => this.error !== undefined);
    return this.error as grpc.ServiceError;
  }
}

// ---------------------------------------------------------------- logging and waiting

/** One line a `RecordingLogger` received. */
export interface LogLine {
  level: 'debug' | 'warn';
  fields: Record<string, unknown>;
  msg: string;
}

/** An `EndpointLogger` that keeps every line. */
export class RecordingLogger {
  readonly lines: LogLine[] = [];
  debug(fields: object, msg: string): void {
    this.lines.push({ level: 'debug', fields: { ...fields }, msg });
  }
  warn(fields: object, msg: string): void {
    this.lines.push({ level: 'warn', fields: { ...fields }, msg });
  }
  at(level: LogLine['level']): LogLine[] {
    return this.lines.filter((l) => l.level === level);
  }
}

/** True when a field of a log line holds an error object or a stack trace. */
export function carriesStack(line: LogLine): boolean {
  return Object.values(line.fields).some((v) => v instanceof Error || (typeof v === 'string' && /\n\s+at /.test(v)));
}

/**
 * Polls `condition` every 10 ms until it holds (true) or `boundMs` passed (false). The bound
 * is a generous ceiling so a broken endpoint fails the test instead of hanging it; tests
 * assert on the result, never on how long it took.
 */
export async function eventually(condition: () => boolean, boundMs = 20_000): Promise<boolean> {
  const deadline = Date.now() + boundMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}
