/**
 * @module agent/grpc-client
 *
 * `ServerClient` over the Mayfly server API (`proto/server.proto`) with grpc-js, TCP + TLS.
 *
 * Threat: an agent talking to an impostor server (which could hand it a rogue bundle and
 * rogue SVIDs for every workload on the node). The server's certificate must chain to the
 * trust domain's roots (verified by TLS) and carry exactly the SPIFFE ID
 * `spiffe://<td>/spire/server` (host names mean nothing in SPIFFE, so this replaces the
 * host name check). The only exception is the operator's explicit `insecure-bootstrap`
 * mode, used for the first attestation only, whose answer then becomes the trust anchor.
 * Everything decoded from the wire is shape-checked before it reaches the cache.
 */
import type { KeyObject } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { RegistrationEntry } from '../registration/entry.js';
import { serverApiClientConstructors, SERVER_API_PACKAGE } from '../wire/server/proto.js';
import { AGENT_STANDING_TRAILER, parseAgentStanding } from '../wire/server/agent-standing.js';
import { Bundle } from '../spiffe/bundle/bundle.js';
import { TrustDomain } from '../spiffe/id.js';
import { importSpki } from '../spiffe/keys.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { attestOverSpireStream, spireAgentClient } from './spire-attest.js';
import {
  GrpcCode,
  ServerCallError,
  type AttestResult,
  type AuthorizedUpdate,
  type DeliveryReport,
  type IssuedJwtSvidWire,
  type IssuedX509Svid,
  type NewX509SvidRequest,
  type NewX509SvidResult,
  type ServerClient,
  type ServerClientCredentials,
  type ServerClientFactory,
  type TemplateInstanceRequest,
} from './server-client.js';

type Ctor = grpc.ServiceClientConstructor;
let ctors: { Agent: Ctor; SVID: Ctor; AgentSync: Ctor; Bundle: Ctor } | undefined;

function constructors(): { Agent: Ctor; SVID: Ctor; AgentSync: Ctor; Bundle: Ctor } {
  if (ctors === undefined) {
    const pkg: Record<string, Ctor | undefined> = serverApiClientConstructors();
    const get = (n: string): Ctor => {
      const c = pkg[n];
      if (c === undefined) throw new Error(`proto/server.proto has no service ${SERVER_API_PACKAGE}.${n}`);
      return c;
    };
    ctors = { Agent: get('Agent'), SVID: get('SVID'), AgentSync: get('AgentSync'), Bundle: get('Bundle') };
  }
  return ctors;
}

// ------------------------------------------------------------------ wire shapes

interface WireX509Svid { spiffe_id: string; cert_chain: Buffer[]; expires_at: number }
interface WireJwtAuthority { key_id: string; public_key: Buffer }
interface WireBundle { trust_domain: string; x509_authorities: Buffer[]; jwt_authorities: WireJwtAuthority[]; refresh_hint: number; sequence_number: number }
interface WireEntry {
  id: string; spiffe_id: string; parent_id: string; selectors: { type: string; value: string }[];
  x509_svid_ttl: number; jwt_svid_ttl: number; dns_names: string[]; federates_with: string[];
  admin: boolean; downstream: boolean; hint: string; expires_at: number; revision: number; created_at: number;
}

function bad(what: string, cause?: unknown): ServerCallError {
  return new ServerCallError(GrpcCode.UNAVAILABLE, `server sent a malformed ${what}`, cause === undefined ? undefined : { cause });
}

function arr<T>(v: T[] | undefined | null): T[] {
  return Array.isArray(v) ? v : [];
}

function x509FromWire(w: WireX509Svid | null | undefined): IssuedX509Svid {
  const chain = arr(w?.cert_chain);
  if (w === null || w === undefined || typeof w.spiffe_id !== 'string' || chain.length === 0 || !chain.every((c) => Buffer.isBuffer(c))) throw bad('X509-SVID');
  return { spiffeId: w.spiffe_id, certChain: chain, expiresAt: Number(w.expires_at ?? 0) };
}

/** A bundle from the wire; every certificate and key is checked by `Bundle`. */
export function bundleFromWire(w: WireBundle | null | undefined): Bundle {
  if (w === null || w === undefined) throw bad('bundle (missing)');
  try {
    const jwt = new Map<string, KeyObject>();
    for (const a of arr(w.jwt_authorities)) jwt.set(a.key_id, importSpki(a.public_key));
    return new Bundle({
      trustDomain: TrustDomain.parse(w.trust_domain),
      x509Authorities: arr(w.x509_authorities),
      jwtAuthorities: jwt,
      sequence: Number(w.sequence_number ?? 0),
      refreshHintSeconds: Number(w.refresh_hint ?? 0),
    });
  } catch (err) {
    throw bad(`bundle for ${String(w.trust_domain)}`, err);
  }
}

function entryFromWire(w: WireEntry): RegistrationEntry {
  if (typeof w?.id !== 'string' || w.id === '' || typeof w.spiffe_id !== 'string') throw bad('registration entry');
  return {
    entryId: w.id,
    spiffeId: w.spiffe_id,
    parentId: w.parent_id ?? '',
    selectors: arr(w.selectors).map((s) => ({ type: String(s.type), value: String(s.value) })),
    x509SvidTtl: Number(w.x509_svid_ttl ?? 0),
    jwtSvidTtl: Number(w.jwt_svid_ttl ?? 0),
    dnsNames: arr(w.dns_names).map(String),
    federatesWith: arr(w.federates_with).map(String),
    admin: Boolean(w.admin),
    downstream: Boolean(w.downstream),
    hint: w.hint ?? '',
    expiresAt: Number(w.expires_at ?? 0),
    // Governance fields (issue 11) are the server's business; agents are not sent them.
    owner: '',
    labels: {},
    purpose: '',
    revision: Number(w.revision ?? 0),
    createdAt: Number(w.created_at ?? 0),
  };
}

/** The template fields of an SVID request (an entry-template instance; template-instances.ts). */
function templateWire(t: Partial<TemplateInstanceRequest>): { spiffe_id?: string; template_selectors?: { type: string; value: string }[] } {
  if (t.spiffeId === undefined || t.templateSelectors === undefined) return {};
  return { spiffe_id: t.spiffeId, template_selectors: t.templateSelectors.map((s) => ({ type: s.type, value: s.value })) };
}

function callError(err: grpc.ServiceError | Error): ServerCallError {
  if (err instanceof ServerCallError) return err;
  const code = typeof (err as grpc.ServiceError).code === 'number' ? (err as grpc.ServiceError).code : GrpcCode.UNAVAILABLE;
  const details = (err as grpc.ServiceError).details ?? err.message;
  const md = (err as grpc.ServiceError).metadata;
  const standing = md instanceof grpc.Metadata ? parseAgentStanding(md.get(AGENT_STANDING_TRAILER)[0]) : undefined;
  return new ServerCallError(code, `server call failed (${grpc.status[code] ?? code}): ${details}`, { cause: err, standing });
}

// ------------------------------------------------------------------ client

export interface GrpcServerClientConfig {
  /** `host:port` of the server's TCP endpoint. */
  address: string;
  trustDomain: TrustDomain;
  credentials: ServerClientCredentials;
  /** Deadline of unary calls (ms, default 30 s). */
  callTimeoutMs?: number;
}

function channelCredentials(td: TrustDomain, c: ServerClientCredentials): grpc.ChannelCredentials {
  if (c.mode === 'insecure-bootstrap') {
    return grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined });
  }
  const expected = td.idWithPath('/spire/server').toString();
  const roots = Buffer.from(pemEncodeCertificates(c.roots));
  const key = c.mode === 'agent' ? Buffer.from(c.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string) : null;
  const chain = c.mode === 'agent' ? Buffer.from(pemEncodeCertificates(c.certChain)) : null;
  return grpc.credentials.createSsl(roots, key, chain, {
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      try {
        const uris = parseCertificate(cert.raw).uriSans;
        if (uris.length === 1 && uris[0] === expected) return undefined;
        return new Error(`the server presented ${uris.join(', ') || 'no SPIFFE ID'}; expected ${expected}`);
      } catch (err) {
        return err as Error;
      }
    },
  });
}

type Unary = (req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

export class GrpcServerClient implements ServerClient {
  readonly #agent: grpc.Client;
  readonly #svid: grpc.Client;
  readonly #sync: grpc.Client;
  readonly #bundle: grpc.Client;
  readonly #spireAgent: grpc.Client;
  readonly #channel: grpc.Channel;
  readonly #timeout: number;

  constructor(cfg: GrpcServerClientConfig) {
    const creds = channelCredentials(cfg.trustDomain, cfg.credentials);
    const options: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      // Notice a server that vanished without closing the connection (the push stream is idle otherwise).
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      // Reconnection pacing is the agent's (see sync.ts), not the channel's.
      'grpc.initial_reconnect_backoff_ms': 1000,
      'grpc.max_reconnect_backoff_ms': 30_000,
      // The server is identified by its SPIFFE ID (checkServerIdentity), not a host name; a
      // fixed TLS server name also avoids sending an IP address as SNI (RFC 6066).
      'grpc.ssl_target_name_override': `mayfly-server.${cfg.trustDomain.name}`,
      'grpc.default_authority': cfg.address,
    };
    this.#channel = new grpc.Channel(cfg.address, creds, options);
    const c = constructors();
    const opts = { ...options, channelOverride: this.#channel };
    this.#agent = new c.Agent(cfg.address, creds, opts);
    this.#svid = new c.SVID(cfg.address, creds, opts);
    this.#sync = new c.AgentSync(cfg.address, creds, opts);
    this.#bundle = new c.Bundle(cfg.address, creds, opts);
    this.#spireAgent = spireAgentClient(cfg.address, creds, opts);
    this.#timeout = cfg.callTimeoutMs ?? 30_000;
  }

  #unary<T>(client: grpc.Client, method: string, req: unknown): Promise<T> {
    const fn = (client as unknown as Record<string, Unary>)[method];
    if (typeof fn !== 'function') return Promise.reject(new TypeError(`no RPC ${method}`));
    return new Promise<T>((resolve, reject) => {
      try {
        fn.call(client, req, { deadline: Date.now() + this.#timeout }, (err, res) => (err ? reject(callError(err)) : resolve(res as T)));
      } catch (err) {
        // grpc-js throws (not calls back) on a closed channel: still a ServerCallError.
        reject(callError(err as Error));
      }
    });
  }

  async attest(req: Parameters<ServerClient['attest']>[0]): Promise<AttestResult> {
    const answer = req.answerChallenge;
    if (answer !== undefined) {
      // Challenge–response evidence: SPIRE's AttestAgent stream, then the (public) bundle.
      const svid = await attestOverSpireStream(this.#spireAgent, { type: req.type, payload: req.payload, csr: req.csr, answerChallenge: answer }, this.#timeout, callError);
      const bundle = await this.#unary<WireBundle>(this.#bundle, 'GetBundle', {});
      return { svid, bundle: bundleFromWire(bundle) };
    }
    const res = await this.#unary<{ svid: WireX509Svid; bundle: WireBundle }>(this.#agent, 'AttestAgent', {
      attestation_data: { type: req.type, payload: req.payload },
      csr: req.csr,
    });
    return { svid: x509FromWire(res.svid), bundle: bundleFromWire(res.bundle) };
  }

  async renewAgent(csr: Buffer): Promise<IssuedX509Svid> {
    const res = await this.#unary<{ svid: WireX509Svid }>(this.#agent, 'RenewAgent', { csr });
    return x509FromWire(res.svid);
  }

  async newX509Svids(batch: readonly NewX509SvidRequest[]): Promise<NewX509SvidResult[]> {
    const res = await this.#unary<{ results: { status: { code: number; message: string } | null; svid: WireX509Svid | null }[] }>(
      this.#svid, 'BatchNewX509SVID', { params: batch.map((b) => ({ entry_id: b.entryId, csr: b.csr, ...templateWire(b) })) },
    );
    const results = arr(res.results);
    if (results.length !== batch.length) throw bad(`BatchNewX509SVID answer (${results.length} results for ${batch.length} requests)`);
    return results.map((r, i): NewX509SvidResult => {
      const entryId = (batch[i] as { entryId: string }).entryId;
      const code = r.status?.code ?? 0;
      if (code !== 0 || r.svid === null || r.svid === undefined) {
        return { entryId, ok: false, code: code === 0 ? GrpcCode.UNAVAILABLE : code, message: r.status?.message ?? 'no SVID returned' };
      }
      return { entryId, ok: true, svid: x509FromWire(r.svid) };
    });
  }

  async newJwtSvid(entryId: string, audience: readonly string[], template?: TemplateInstanceRequest): Promise<IssuedJwtSvidWire> {
    const res = await this.#unary<{ svid: { spiffe_id: string; token: string; expires_at: number; issued_at: number } | null }>(
      this.#svid, 'NewJWTSVID', { entry_id: entryId, audience: [...audience], ...(template !== undefined ? templateWire(template) : {}) },
    );
    const s = res.svid;
    if (s === null || s === undefined || typeof s.token !== 'string' || s.token === '') throw bad('JWT-SVID');
    return { spiffeId: s.spiffe_id, token: s.token, expiresAt: Number(s.expires_at), issuedAt: Number(s.issued_at) };
  }

  async reportDeliveries(report: DeliveryReport): Promise<{ recorded: number; refused: number }> {
    const res = await this.#unary<{ recorded?: number; refused?: number }>(this.#sync, 'ReportDeliveries', {
      deliveries: report.deliveries.map((d) => ({
        kind: d.kind,
        spiffe_id: d.spiffeId,
        serial: d.serial ?? '',
        audience: [...(d.audience ?? [])],
        expires_at: d.expiresAt,
        delivered_at: d.deliveredAt,
        pid: d.pid,
        uid: d.uid,
        gid: d.gid,
        selectors: [...d.selectors],
      })),
      dropped: report.dropped,
      lost_at_restart: report.lostAtRestart,
      lost_at_restart_unknown_more: report.lostAtRestartUnknownMore,
    });
    return { recorded: Number(res.recorded ?? 0), refused: Number(res.refused ?? 0) };
  }

  subscribe(onUpdate: (u: AuthorizedUpdate) => void, onError: (err: ServerCallError) => void): () => void {
    const fn = (this.#sync as unknown as Record<string, (req: unknown, opts: grpc.CallOptions) => grpc.ClientReadableStream<unknown>>).SubscribeAuthorizedEntries;
    if (fn === undefined) throw new TypeError('no RPC SubscribeAuthorizedEntries');
    const stream = fn.call(this.#sync, {}, {});
    let ended = false;
    const end = (err: ServerCallError): void => {
      if (ended) return;
      ended = true;
      onError(err);
    };
    stream.on('data', (msg: { entries: WireEntry[]; bundle: WireBundle; federated_bundles: WireBundle[]; sequence: number; tainted_x509_authorities?: string[]; tainted_jwt_authorities?: string[]; x509_crls?: Buffer[]; withheld_entries?: { entry_id?: string; spiffe_id?: string; reason?: string }[] }) => {
      if (ended) return;
      let u: AuthorizedUpdate;
      try {
        u = {
          entries: arr(msg.entries).map(entryFromWire),
          bundle: bundleFromWire(msg.bundle),
          federatedBundles: arr(msg.federated_bundles).map(bundleFromWire),
          sequence: Number(msg.sequence ?? 0),
          taintedX509Authorities: arr(msg.tainted_x509_authorities).map(String),
          taintedJwtAuthorities: arr(msg.tainted_jwt_authorities).map(String),
          x509Crls: arr(msg.x509_crls).filter((c): c is Buffer => Buffer.isBuffer(c) && c.length > 0),
          withheldEntries: arr(msg.withheld_entries).map((w) => ({ entryId: String(w?.entry_id ?? ''), spiffeId: String(w?.spiffe_id ?? ''), reason: String(w?.reason ?? '').slice(0, 1024) })),
        };
      } catch (err) {
        stream.cancel();
        end(err instanceof ServerCallError ? err : bad('authorised-entry update', err));
        return;
      }
      onUpdate(u);
    });
    stream.on('error', (err: grpc.ServiceError) => {
      if (err.code === grpc.status.CANCELLED && ended) return;
      end(callError(err));
    });
    stream.on('end', () => end(new ServerCallError(GrpcCode.UNAVAILABLE, 'the server ended the authorised-entry stream')));
    return () => {
      if (ended) return;
      ended = true;
      stream.cancel();
    };
  }

  close(): void {
    this.#agent.close();
    this.#svid.close();
    this.#sync.close();
    this.#bundle.close();
    this.#spireAgent.close();
    this.#channel.close();
  }
}

/** A factory creating grpc-js clients for the server at `address`. */
export function grpcServerClientFactory(cfg: { address: string; trustDomain: TrustDomain; callTimeoutMs?: number }): ServerClientFactory {
  return (credentials) => new GrpcServerClient({ ...cfg, credentials });
}
