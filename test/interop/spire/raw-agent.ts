/**
 * @module test/interop/spire/raw-agent
 *
 * A hand-driven client of SPIRE's agent API (`spire.api.server.*.v1`, the protos in
 * proto/spire) over a server's TCP port, for the hostile cases a real `spire-agent` never
 * produces: replayed join tokens, CSRs signed by another key, SVIDs of entries that are not
 * the caller's. It authenticates the server the way SPIRE's agent does (the bundle, and the
 * SPIFFE ID `spiffe://<td>/spire/server`) and presents an agent X509-SVID once it has one.
 */
import { credentials, makeGenericClientConstructor, Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import type { KeyObject } from 'node:crypto';
import { X509Certificate } from 'node:crypto';
import { spireApiServiceDefinition, type SpireApiService } from '../../../src/wire/spire/definition.js';
import { exportPkcs8Pem } from '../../../src/spiffe/keys.js';
import { pemEncodeCertificates } from '../../../src/spiffe/x509/pem.js';

export interface RawAgentConfig {
  port: number;
  trustDomain: string;
  bundle: readonly Buffer[];
  /** The agent's SVID chain and key (none before attestation). */
  svid?: { chain: readonly Buffer[]; key: KeyObject };
}

export type SpireClients = Record<'Agent' | 'Entry' | 'SVID' | 'Bundle', Client> & { close(): void };

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
  const make = (name: SpireApiService): Client => {
    const Ctor = makeGenericClientConstructor(spireApiServiceDefinition(name), name);
    return new Ctor(`127.0.0.1:${cfg.port}`, creds, { 'grpc.ssl_target_name_override': 'spire-server' });
  };
  const clients = { Agent: make('Agent'), Entry: make('Entry'), SVID: make('SVID'), Bundle: make('Bundle') };
  return { ...clients, close: () => Object.values(clients).forEach((c) => c.close()) };
}

export function unary<Res>(client: Client, method: string, req: unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (r: unknown, md: Metadata, cb: (e: ServiceError | null, r: Res) => void) => void>)[method];
    if (typeof fn !== 'function') throw new TypeError(`no method ${method}`);
    fn.call(client, req, new Metadata(), (err, res) => (err ? reject(err) : resolve(res)));
  });
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
