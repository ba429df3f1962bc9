/**
 * @module sdk/testing
 *
 * A hand-written fake Workload API for tests of the SDK and the CLI: a real grpc-js server
 * on a real Unix socket, serving canned responses built from real certificates. It
 * enforces the `workload.spiffe.io` header like an agent, records what every call sent,
 * and pushes new messages to open streams when the test changes its state. Not for
 * production use.
 */
import { existsSync, rmSync } from 'node:fs';
import { Metadata, Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall, type ServerWritableStream } from '@grpc/grpc-js';
import { TrustDomain } from '../spiffe/id.js';
import { exportPkcs8Der, generateKeyPair, type KeyPair } from '../spiffe/keys.js';
import { JwtSvidSigner } from '../spiffe/jwt/signer.js';
import { makeTestCa, makeTestSvid, type TestCa } from '../spiffe/x509/testing.js';
import { Bundle } from '../spiffe/bundle/index.js';
import type {
  JWTBundlesResponse, JWTSVIDRequest, JWTSVIDResponse, ValidateJWTSVIDRequest, ValidateJWTSVIDResponse, X509BundlesResponse, X509SVIDResponse,
} from '../wire/workload/messages.js';
import { SECURITY_HEADER, workloadServiceDefinition } from '../wire/workload/proto.js';
import { toStruct } from '../wire/workload/struct.js';

/** A gRPC error the fake answers with instead of data. */
export interface FakeStatus {
  code: status;
  details: string;
}

export type FakeAnswer<T> = T | FakeStatus;

function isStatus<T>(a: FakeAnswer<T>): a is FakeStatus {
  return typeof a === 'object' && a !== null && 'code' in a && typeof (a as FakeStatus).code === 'number' && 'details' in a;
}

export interface RecordedCall {
  method: string;
  /** Every value of the `workload.spiffe.io` metadata key. */
  securityHeader: string[];
  request: unknown;
}

export interface FakeWorkloadApiConfig {
  socketPath: string;
  x509?: FakeAnswer<X509SVIDResponse>;
  x509Bundles?: FakeAnswer<X509BundlesResponse>;
  jwtBundles?: FakeAnswer<JWTBundlesResponse>;
  jwtSvid?: (req: JWTSVIDRequest) => FakeAnswer<JWTSVIDResponse>;
  validate?: (req: ValidateJWTSVIDRequest) => FakeAnswer<ValidateJWTSVIDResponse>;
}

type StreamName = 'FetchX509SVID' | 'FetchX509Bundles' | 'FetchJWTBundles';

export class FakeWorkloadApi {
  readonly socketPath: string;
  readonly calls: RecordedCall[] = [];
  #server: Server | undefined;
  #state: {
    FetchX509SVID?: FakeAnswer<X509SVIDResponse>;
    FetchX509Bundles?: FakeAnswer<X509BundlesResponse>;
    FetchJWTBundles?: FakeAnswer<JWTBundlesResponse>;
  };
  jwtSvid: ((req: JWTSVIDRequest) => FakeAnswer<JWTSVIDResponse>) | undefined;
  validate: ((req: ValidateJWTSVIDRequest) => FakeAnswer<ValidateJWTSVIDResponse>) | undefined;
  readonly #streams = new Map<StreamName, Set<ServerWritableStream<unknown, unknown>>>();

  constructor(config: FakeWorkloadApiConfig) {
    this.socketPath = config.socketPath;
    this.#state = { FetchX509SVID: config.x509, FetchX509Bundles: config.x509Bundles, FetchJWTBundles: config.jwtBundles };
    this.jwtSvid = config.jwtSvid;
    this.validate = config.validate;
  }

  /** `unix:///...`, for SPIFFE_ENDPOINT_SOCKET. */
  get address(): string {
    return `unix://${this.socketPath}`;
  }

  /** Open streams of `method` right now. */
  openStreams(method: StreamName): number {
    return this.#streams.get(method)?.size ?? 0;
  }

  static async start(config: FakeWorkloadApiConfig): Promise<FakeWorkloadApi> {
    const fake = new FakeWorkloadApi(config);
    await fake.start();
    return fake;
  }

  #checkHeader(method: string, md: Metadata, request: unknown): FakeStatus | undefined {
    const values = md.get(SECURITY_HEADER).map((v) => v.toString());
    this.calls.push({ method, securityHeader: values, request });
    if (values.length !== 1 || values[0] !== 'true') {
      return { code: status.INVALID_ARGUMENT, details: 'security header missing from request' };
    }
    return undefined;
  }

  #streamHandler(method: StreamName) {
    return (call: ServerWritableStream<unknown, unknown>): void => {
      const bad = this.#checkHeader(method, call.metadata, call.request);
      if (bad) {
        call.emit('error', { code: bad.code, details: bad.details });
        return;
      }
      const answer = this.#state[method];
      if (answer !== undefined && isStatus(answer)) {
        call.emit('error', { code: answer.code, details: answer.details });
        return;
      }
      let set = this.#streams.get(method);
      if (!set) this.#streams.set(method, (set = new Set()));
      set.add(call);
      call.on('cancelled', () => set.delete(call));
      call.on('close', () => set.delete(call));
      if (answer !== undefined) call.write(answer);
    };
  }

  #unaryHandler<Req, Res>(method: string, get: () => ((req: Req) => FakeAnswer<Res>) | undefined) {
    return (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>): void => {
      const bad = this.#checkHeader(method, call.metadata, call.request);
      if (bad) return cb({ code: bad.code, details: bad.details });
      const fn = get();
      if (!fn) return cb({ code: status.UNIMPLEMENTED, details: `${method} not configured in the fake` });
      const answer = fn(call.request);
      if (isStatus(answer)) return cb({ code: answer.code, details: answer.details });
      cb(null, answer);
    };
  }

  /** Binds the socket (removing a stale file first). */
  async start(): Promise<void> {
    if (this.#server) throw new Error('already started');
    if (existsSync(this.socketPath)) rmSync(this.socketPath);
    const server = new Server();
    server.addService(workloadServiceDefinition(), {
      FetchX509SVID: this.#streamHandler('FetchX509SVID'),
      FetchX509Bundles: this.#streamHandler('FetchX509Bundles'),
      FetchJWTBundles: this.#streamHandler('FetchJWTBundles'),
      FetchJWTSVID: this.#unaryHandler<JWTSVIDRequest, JWTSVIDResponse>('FetchJWTSVID', () => this.jwtSvid),
      ValidateJWTSVID: this.#unaryHandler<ValidateJWTSVIDRequest, ValidateJWTSVIDResponse>('ValidateJWTSVID', () => this.validate),
    });
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(this.address, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
    });
    this.#server = server;
  }

  /** Sets the answer of a stream method and pushes it to every open stream of it (a status ends them). */
  set(method: StreamName, answer: FakeAnswer<unknown>): void {
    (this.#state as Record<StreamName, unknown>)[method] = answer;
    for (const call of [...(this.#streams.get(method) ?? [])]) {
      if (isStatus(answer)) {
        this.#streams.get(method)?.delete(call);
        call.emit('error', { code: answer.code, details: answer.details });
      } else {
        call.write(answer);
      }
    }
  }

  setX509(answer: FakeAnswer<X509SVIDResponse>): void {
    this.set('FetchX509SVID', answer);
  }

  /**
   * Stops like a grpc-go agent (SPIRE): open streams end with UNAVAILABLE, then every
   * connection closes. With `{ abrupt: true }` it only calls grpc-js `forceShutdown()`,
   * which resets open streams with CANCELLED.
   */
  async stop(opts: { abrupt?: boolean } = {}): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const set of this.#streams.values()) {
      if (!opts.abrupt) for (const call of set) call.emit('error', { code: status.UNAVAILABLE, details: 'agent is shutting down' });
      set.clear();
    }
    if (!server) return;
    if (opts.abrupt) {
      server.forceShutdown();
    } else {
      // Let the UNAVAILABLE statuses reach the clients, then close (force after 1 s).
      const timer = setTimeout(() => server.forceShutdown(), 1000);
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      clearTimeout(timer);
    }
    if (existsSync(this.socketPath)) rmSync(this.socketPath);
  }
}

// ------------------------------------------------------------------------------------------
// Identities for the fake

/** A trust domain with a CA, a JWT signing key, and helpers to mint identities. */
export interface FakeTrustDomain {
  trustDomain: TrustDomain;
  ca: TestCa;
  /** An intermediate under `ca`, when the trust domain was made with `intermediate: true`. */
  intermediate?: TestCa;
  jwtKey: KeyPair;
  jwtKid: string;
  signer: JwtSvidSigner;
  /** Mints an X509-SVID (leaf, plus the intermediate when there is one). */
  svid(path: string, opts?: { ttlSeconds?: number; now?: Date; hint?: string; dnsNames?: string[] }): FakeSvid;
  /** The wire form of this trust domain's JWT bundle (JWKS JSON bytes). */
  jwtBundle(): Buffer;
  /** The root certificate as the wire's concatenated DER. */
  x509BundleDer(): Buffer;
}

export interface FakeSvid {
  spiffeId: string;
  /** leaf first */
  certificates: Buffer[];
  key: KeyPair;
  hint: string;
}

let kidCounter = 0;

export function makeFakeTrustDomain(name: string, opts: { intermediate?: boolean; now?: Date } = {}): FakeTrustDomain {
  const ca = makeTestCa({ trustDomain: name, now: opts.now });
  const intermediate = opts.intermediate ? makeTestCa({ upstream: ca, now: opts.now }) : undefined;
  const jwtKey = generateKeyPair('ec-p256');
  const jwtKid = `kid-${name}-${++kidCounter}`;
  const signer = new JwtSvidSigner({ privateKey: jwtKey.privateKey, kid: jwtKid });
  const td = TrustDomain.parse(name);
  return {
    trustDomain: td,
    ca,
    intermediate,
    jwtKey,
    jwtKid,
    signer,
    svid(path, o = {}) {
      const issuer = intermediate ?? ca;
      const { certificate, key } = makeTestSvid(issuer, path, { ttlSeconds: o.ttlSeconds, now: o.now, dnsNames: o.dnsNames });
      const certificates = intermediate ? [certificate, intermediate.certificate] : [certificate];
      return { spiffeId: `spiffe://${name}${path}`, certificates, key, hint: o.hint ?? '' };
    },
    jwtBundle() {
      return new Bundle({ trustDomain: td, jwtAuthorities: [[jwtKid, jwtKey.publicKey]] }).jwksForWorkloadApi();
    },
    x509BundleDer() {
      return Buffer.from(ca.certificate);
    },
  };
}

/** An X509SVIDResponse for `svids` of `own`, with `federated` trust domains' roots. */
export function x509Response(own: FakeTrustDomain, svids: FakeSvid[], federated: FakeTrustDomain[] = []): X509SVIDResponse {
  const federated_bundles: Record<string, Buffer> = {};
  for (const f of federated) federated_bundles[f.trustDomain.idString] = f.x509BundleDer();
  return {
    svids: svids.map((s) => ({
      spiffe_id: s.spiffeId,
      x509_svid: Buffer.concat(s.certificates),
      x509_svid_key: exportPkcs8Der(s.key.privateKey),
      bundle: own.x509BundleDer(),
      hint: s.hint,
    })),
    crl: [],
    federated_bundles,
  };
}

export function x509BundlesResponse(tds: FakeTrustDomain[]): X509BundlesResponse {
  const bundles: Record<string, Buffer> = {};
  for (const t of tds) bundles[t.trustDomain.idString] = t.x509BundleDer();
  return { crl: [], bundles };
}

export function jwtBundlesResponse(tds: FakeTrustDomain[]): JWTBundlesResponse {
  const bundles: Record<string, Buffer> = {};
  for (const t of tds) bundles[t.trustDomain.idString] = t.jwtBundle();
  return { bundles };
}

/** A ValidateJWTSVIDResponse carrying `claims`. */
export function validateResponse(spiffeId: string, claims: Record<string, unknown>): ValidateJWTSVIDResponse {
  return { spiffe_id: spiffeId, claims: toStruct(claims) };
}
