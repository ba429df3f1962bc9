/**
 * @module test/interop/spire/spire-raw-client
 *
 * Bare grpc-js clients of SPIRE's server API (`src/wire/spire/definition.ts`, the protos
 * checked against spire-api-sdk), for the hostile requests SPIRE's own CLI and agent never
 * send (they check their input first): on an admin socket (`spireClient`,
 * `rawSpireClient`), or on the server's TCP port with TLS (`rawSpireClientTcp`, and
 * `spireClients`, which authenticates the server as SPIRE's agent does and drives
 * AttestAgent and SyncAuthorizedEntries by hand). Errors come back as grpc-js
 * ServiceErrors, or as `{ code, details }` from `spireCode` and `fail`.
 */
import { credentials, makeGenericClientConstructor, type ChannelCredentials, type Client, type ServiceError } from '@grpc/grpc-js';
import { X509Certificate, type KeyObject } from 'node:crypto';
import { exportPkcs8Pem } from '../../../src/spiffe/keys.js';
import { pemEncodeCertificates } from '../../../src/spiffe/x509/pem.js';
import { spireApiServiceDefinition, type SpireApiService } from '../../../src/wire/spire/definition.js';

function clientAt(target: string, creds: ChannelCredentials, options: Record<string, string>, service: SpireApiService, append: Partial<Record<string, Buffer>> = {}): Client {
  const def = { ...spireApiServiceDefinition(service) };
  for (const [method, extra] of Object.entries(append)) {
    const orig = def[method];
    if (orig === undefined || extra === undefined) throw new TypeError(`no method ${method}`);
    def[method] = { ...orig, requestSerialize: (req: object) => Buffer.concat([orig.requestSerialize(req), extra]) };
  }
  const Ctor = makeGenericClientConstructor(def, service);
  return new Ctor(target, creds, options);
}

/**
 * A raw client of one SPIRE service on the admin socket `sock`. `append` adds raw protobuf
 * bytes after a method's encoded request (fields the published protos do not have, to test
 * how unknown fields are treated).
 */
export function spireClient(sock: string, service: SpireApiService, append: Partial<Record<string, Buffer>> = {}): Client {
  return clientAt(`unix://${sock}`, credentials.createInsecure(), {}, service, append);
}

/** One unary call on a raw client; rejects with the ServiceError. */
export function spireCall<T>(client: Client, method: string, req: unknown): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const fn = (client as unknown as Record<string, (r: unknown, cb: (e: ServiceError | null, v: T) => void) => void>)[method];
    if (typeof fn !== 'function') throw new TypeError(`no method ${method}`);
    fn.call(client, req, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** The status code a call fails with (0 when it succeeds). */
export async function spireCode(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
    return { code: 0, details: '' };
  } catch (err) {
    const e = err as ServiceError;
    return { code: e.code, details: e.details };
  }
}

export interface RawSpireClient {
  call<Res = Record<string, unknown>>(service: SpireApiService, method: string, req: object): Promise<Res>;
  /** The call's failure (it must fail): its gRPC code and message. */
  fail(service: SpireApiService, method: string, req: object): Promise<{ code: number; details: string }>;
  close(): void;
}

/** A client of every service on the admin socket `socketPath`. */
export function rawSpireClient(socketPath: string): RawSpireClient {
  return rawSpireClientAt(`unix:${socketPath}`, credentials.createInsecure(), {});
}

/**
 * A client of the server's TCP port with TLS, presenting `svid` when given (else no client
 * certificate): the server is authenticated by `roots` only (its certificate names a SPIFFE
 * ID, not a host name).
 */
export function rawSpireClientTcp(address: string, roots: Buffer, svid?: { certChain: readonly Buffer[]; privateKey: KeyObject }): RawSpireClient {
  const key = svid === undefined ? null : Buffer.from(exportPkcs8Pem(svid.privateKey));
  const chain = svid === undefined ? null : Buffer.from(pemEncodeCertificates(svid.certChain));
  // A name, not the IP, as TLS server name (RFC 6066); the identity check is off anyway.
  return rawSpireClientAt(address, credentials.createSsl(roots, key, chain, { checkServerIdentity: () => undefined }), { 'grpc.ssl_target_name_override': 'mayfly-server' });
}

function rawSpireClientAt(target: string, creds: ChannelCredentials, options: Record<string, string>): RawSpireClient {
  const clients = new Map<SpireApiService, Client>();
  const client = (s: SpireApiService): Client => {
    let c = clients.get(s);
    if (c === undefined) {
      c = clientAt(target, creds, options, s);
      clients.set(s, c);
    }
    return c;
  };
  const call = <Res>(service: SpireApiService, method: string, req: object): Promise<Res> => spireCall<Res>(client(service), method, req);
  return {
    call,
    async fail(service, method, req) {
      const r = await spireCode(call(service, method, req));
      if (r.code === 0) throw new Error(`${service}.${method} succeeded; it should have failed`);
      return r;
    },
    close() {
      for (const c of clients.values()) c.close();
    },
  };
}

// ---------------------------------------------------------------- as an agent, over TCP

export interface RawAgentConfig {
  port: number;
  trustDomain: string;
  bundle: readonly Buffer[];
  /** The agent's SVID chain and key (none before attestation). */
  svid?: { chain: readonly Buffer[]; key: KeyObject };
}

export type SpireClients = Record<'Agent' | 'Entry' | 'SVID' | 'Bundle', Client> & { close(): void };

/**
 * The agent API's clients on the server's TCP port, authenticating the server as SPIRE's
 * agent does (the bundle, and the SPIFFE ID `spiffe://<td>/spire/server`) and presenting
 * the agent's X509-SVID once it has one.
 */
export function spireClients(cfg: RawAgentConfig): SpireClients {
  const serverId = `spiffe://${cfg.trustDomain}/spire/server`;
  const creds = credentials.createSsl(
    Buffer.from(pemEncodeCertificates(cfg.bundle)),
    cfg.svid ? Buffer.from(exportPkcs8Pem(cfg.svid.key)) : null,
    cfg.svid ? Buffer.from(pemEncodeCertificates(cfg.svid.chain)) : null,
    {
      checkServerIdentity: (_host, cert) => {
        const san = new X509Certificate(cert.raw).subjectAltName ?? '';
        return san === `URI:${serverId}` ? undefined : new Error(`server presented ${san}, not ${serverId}`);
      },
    },
  );
  const make = (name: SpireApiService): Client => clientAt(`127.0.0.1:${cfg.port}`, creds, { 'grpc.ssl_target_name_override': 'spire-server' }, name);
  const clients = { Agent: make('Agent'), Entry: make('Entry'), SVID: make('SVID'), Bundle: make('Bundle') };
  return { ...clients, close: () => Object.values(clients).forEach((c) => c.close()) };
}

export interface AttestResult {
  svid: { id: { trust_domain: string; path: string }; cert_chain: Buffer[]; expires_at: number };
  reattestable: boolean;
}

/** One AttestAgent stream: params, then the server's result (or its error). */
export function attest(agent: Client, type: string, payload: Buffer, csr: Buffer): Promise<AttestResult> {
  return new Promise((resolve, reject) => {
    const call = (agent as unknown as { AttestAgent(): NodeJS.ReadWriteStream & { end(): void; write(m: unknown): void } }).AttestAgent();
    let done = false;
    call.on('data', (m: { step?: string; result?: AttestResult }) => {
      if (m.step === 'result' && m.result) {
        done = true;
        resolve(m.result);
      }
    });
    call.on('error', (e: Error) => reject(e));
    call.on('end', () => {
      if (!done) reject(new Error('AttestAgent ended without a result'));
    });
    call.write({ params: { data: { type, payload }, params: { csr } } });
  });
}

export interface SyncPage {
  entry_revisions: { id: string; revision_number: number; created_at: number }[];
  entries: { id: string; revision_number: number; spiffe_id: { trust_domain: string; path: string } | null }[];
  more: boolean;
}

/** SyncAuthorizedEntries driven by hand: `send` a request, `recv` the next page. */
export function syncStream(entry: Client): { send(m: unknown): void; recv(): Promise<SyncPage>; end(): void; error(): Promise<ServiceError> } {
  const call = (entry as unknown as { SyncAuthorizedEntries(): NodeJS.ReadWriteStream & { end(): void; write(m: unknown): void } }).SyncAuthorizedEntries();
  const pages: SyncPage[] = [];
  const waiters: ((p: SyncPage) => void)[] = [];
  let failure: ((e: ServiceError) => void) | undefined;
  const failed = new Promise<ServiceError>((r) => (failure = r));
  call.on('data', (p: SyncPage) => {
    const w = waiters.shift();
    if (w) w(p);
    else pages.push(p);
  });
  call.on('error', (e: ServiceError) => failure?.(e));
  call.on('end', () => undefined);
  return {
    send: (m) => call.write(m),
    recv: () => {
      const p = pages.shift();
      return p ? Promise.resolve(p) : new Promise((r) => waiters.push(r));
    },
    end: () => call.end(),
    error: () => failed,
  };
}
