/**
 * @module sdk/client
 *
 * A Workload API client for Node services. It speaks the standard wire protocol only
 * (`proto/workload.proto`, service `SpiffeWorkloadAPI`), so it works against any SPIFFE
 * agent, Mayfly's or SPIRE's, and imports nothing of Mayfly's server or agent.
 *
 * Every call carries the `workload.spiffe.io: true` metadata the standard requires (agents
 * refuse calls without it: it stops a browser or SSRF-style proxy from reaching the
 * socket). Responses are parsed and checked by `model.ts` before anyone sees them.
 *
 * Watches reconnect on their own like go-spiffe's: after any failure except
 * INVALID_ARGUMENT (and our own cancellation; see `isRetryable`) they wait 1 s, 2 s, 3 s ... up to 30 s (reset after a
 * message arrives) and open the stream again; a stream the agent closes cleanly is
 * reopened too.
 */
import { Client, type ChannelOptions, credentials, Metadata, status, type ClientReadableStream, type MethodDefinition, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import type { BundleSet } from '../spiffe/bundle/index.js';
import type { MayflyError } from '../spiffe/errors.js';
import { SpiffeId } from '../spiffe/id.js';
import type {
  JWTBundlesResponse, JWTSVIDRequest, JWTSVIDResponse, ValidateJWTSVIDRequest, ValidateJWTSVIDResponse, X509BundlesResponse, X509SVIDResponse,
} from '../wire/workload/messages.js';
import { SECURITY_HEADER, WORKLOAD_SERVICE_NAME, workloadServiceDefinition } from '../wire/workload/proto.js';
import { fromStruct } from '../wire/workload/struct.js';
import { resolveEndpoint, type EndpointOptions, type ResolvedEndpoint } from './endpoint.js';
import { toWorkloadApiError, WorkloadApiError } from './errors.js';
import {
  parseJwtBundles, parseJwtSvidMessage, parseX509Bundles, parseX509Context, type JwtSvid, type ValidatedJwtSvid, type X509Context, type X509Svid,
} from './model.js';

/** Linear backoff as go-spiffe: initialMs × attempt, capped at maxMs. */
export interface BackoffConfig {
  /** Default 1000. */
  initialMs?: number;
  /** Default 30000. */
  maxMs?: number;
}

export interface WorkloadApiClientConfig extends EndpointOptions {
  backoff?: BackoffConfig;
  /** Deadline for unary calls and for the first message of a fetch (ms). Default: none. */
  timeoutMs?: number;
  channelOptions?: ChannelOptions;
}

export interface CallOptions {
  /** Overrides the client's timeoutMs for this call. */
  timeoutMs?: number;
}

/** Called when a watch fails; `willRetry` false means the watch has ended. */
export type WatchErrorHandler = (err: MayflyError, willRetry: boolean) => void;

/** Stops a watch. Idempotent. */
export type CancelWatch = () => void;

/**
 * True when a watch should reconnect after this status from the agent.
 *
 * go-spiffe stops on INVALID_ARGUMENT (the request itself is wrong: retrying cannot help)
 * and on CANCELLED, meaning its own context was cancelled. Our own cancellation never
 * reaches this check (a cancelled watch ignores its stream's status), so a CANCELLED seen
 * here came from the agent: grpc-js servers that `forceShutdown()` on restart reset open
 * streams with CANCELLED. Giving up then would leave a service without SVID rotation after
 * every agent restart, so it is retried like UNAVAILABLE.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof WorkloadApiError && err.grpcCode !== undefined) return err.grpcCode !== status.INVALID_ARGUMENT;
  return true;
}

/** The `attempt`-th retry delay (attempt ≥ 1). */
export function backoffDelay(attempt: number, cfg: BackoffConfig = {}): number {
  const initial = cfg.initialMs ?? 1000;
  const max = cfg.maxMs ?? 30_000;
  return Math.min(initial * Math.max(1, attempt), max);
}

type Method<Req, Res> = MethodDefinition<Req, Res>;

export class WorkloadApiClient {
  readonly endpoint: ResolvedEndpoint;
  readonly #client: Client;
  readonly #methods: Record<string, Method<unknown, unknown>>;
  readonly #backoff: BackoffConfig;
  readonly #timeoutMs: number | undefined;
  readonly #watches = new Set<CancelWatch>();
  #closed = false;

  constructor(config: WorkloadApiClientConfig = {}) {
    this.endpoint = resolveEndpoint(config);
    this.#methods = workloadServiceDefinition() as unknown as Record<string, Method<unknown, unknown>>;
    this.#client = new Client(this.endpoint.target, credentials.createInsecure(), {
      // Unix socket paths are not DNS names; keep grpc-js from trying to treat them as authorities.
      'grpc.default_authority': 'localhost',
      // grpc-js's own reconnect backoff grows to 120 s; cap it at the watch backoff's 30 s so a
      // restarted agent is found again as soon as go-spiffe clients would find it.
      'grpc.max_reconnect_backoff_ms': 30_000,
      ...config.channelOptions,
    });
    this.#backoff = config.backoff ?? {};
    this.#timeoutMs = config.timeoutMs;
  }

  #metadata(): Metadata {
    const md = new Metadata();
    md.set(SECURITY_HEADER, 'true');
    return md;
  }

  #method<Req, Res>(name: string): Method<Req, Res> {
    const m = this.#methods[name];
    if (m === undefined) throw new Error(`proto/workload.proto lacks ${name}`);
    return m as unknown as Method<Req, Res>;
  }

  #deadline(opts: CallOptions | undefined): { deadline?: Date } {
    const ms = opts?.timeoutMs ?? this.#timeoutMs;
    return ms === undefined ? {} : { deadline: new Date(Date.now() + ms) };
  }

  #checkOpen(): void {
    if (this.#closed) throw new TypeError('the WorkloadApiClient is closed');
  }

  #stream<Res>(name: string, opts?: CallOptions): ClientReadableStream<Res> {
    const m = this.#method<object, Res>(name);
    return this.#client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, {}, this.#metadata(), this.#deadline(opts));
  }

  #unary<Req, Res>(name: string, req: Req, opts?: CallOptions): Promise<Res> {
    this.#checkOpen();
    const m = this.#method<Req, Res>(name);
    return new Promise<Res>((resolve, reject) => {
      this.#client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, this.#metadata(), this.#deadline(opts), (err: ServiceError | null, res?: Res) => {
        if (err) reject(toWorkloadApiError(err, name));
        else resolve(res as Res);
      });
    });
  }

  /** Opens a stream, resolves with its first message parsed, then cancels it. */
  #first<Res, T>(name: string, parse: (m: Res) => T, opts?: CallOptions): Promise<T> {
    this.#checkOpen();
    return new Promise<T>((resolve, reject) => {
      const call = this.#stream<Res>(name, opts);
      let done = false;
      call.on('data', (m: Res) => {
        if (done) return;
        done = true;
        call.cancel();
        try {
          resolve(parse(m));
        } catch (err) {
          reject(err);
        }
      });
      call.on('error', () => undefined); // reported through 'status'
      call.on('status', (s: StatusObject) => {
        if (done) return;
        done = true;
        if (s.code === status.OK) {
          reject(new WorkloadApiError('ERR_WORKLOAD_API_CALL', `${name} ended without sending a message`, { grpcCode: status.UNAVAILABLE }));
        } else {
          reject(toWorkloadApiError(Object.assign(new Error(s.details), { code: s.code, details: s.details }), name));
        }
      });
    });
  }

  /** Keeps a stream open, reconnecting with backoff; see the module comment. */
  #watch<Res, T>(name: string, parse: (m: Res) => T, onUpdate: (v: T) => void, onError?: WatchErrorHandler): CancelWatch {
    this.#checkOpen();
    let stopped = false;
    let call: ClientReadableStream<Res> | undefined;
    let timer: NodeJS.Timeout | undefined;
    let failures = 0;
    const report = (err: MayflyError, willRetry: boolean): void => {
      if (onError) onError(err, willRetry);
    };
    const cancel: CancelWatch = () => {
      if (stopped) return;
      stopped = true;
      this.#watches.delete(cancel);
      if (timer) clearTimeout(timer);
      call?.cancel();
    };
    const open = (): void => {
      timer = undefined;
      if (stopped) return;
      const c = this.#stream<Res>(name);
      call = c;
      c.on('data', (m: Res) => {
        if (stopped || call !== c) return;
        failures = 0;
        let value: T;
        try {
          value = parse(m);
        } catch (err) {
          // Bad data: keep the stream; the agent's next message may be fine.
          report(toWorkloadApiError(err, name), true);
          return;
        }
        onUpdate(value);
      });
      c.on('error', () => undefined); // reported through 'status'
      c.on('status', (s: StatusObject) => {
        if (stopped || call !== c) return;
        const err =
          s.code === status.OK
            ? new WorkloadApiError('ERR_WORKLOAD_API_CALL', `${name} stream was closed by the agent`, { grpcCode: status.UNAVAILABLE })
            : toWorkloadApiError(Object.assign(new Error(s.details), { code: s.code, details: s.details }), name);
        const retry = isRetryable(err);
        if (!retry) {
          stopped = true;
          this.#watches.delete(cancel);
          report(err, false);
          return;
        }
        failures++;
        report(err, true);
        if (stopped) return; // the handler may have cancelled
        timer = setTimeout(open, backoffDelay(failures, this.#backoff));
      });
    };
    this.#watches.add(cancel);
    open();
    return cancel;
  }

  /** The current X.509 context (every SVID of this workload, bundles, CRLs). */
  fetchX509Context(opts?: CallOptions): Promise<X509Context> {
    return this.#first<X509SVIDResponse, X509Context>('FetchX509SVID', parseX509Context, opts);
  }

  /** The default X509-SVID (`svids[0]`). */
  async fetchX509Svid(opts?: CallOptions): Promise<X509Svid> {
    return (await this.fetchX509Context(opts)).svids[0] as X509Svid;
  }

  /** Every X.509 context update until cancelled. */
  watchX509Context(onUpdate: (ctx: X509Context) => void, onError?: WatchErrorHandler): CancelWatch {
    return this.#watch<X509SVIDResponse, X509Context>('FetchX509SVID', parseX509Context, onUpdate, onError);
  }

  /** X.509 bundles of every trust domain the workload trusts (own and federated). */
  fetchX509Bundles(opts?: CallOptions): Promise<BundleSet> {
    return this.#first<X509BundlesResponse, BundleSet>('FetchX509Bundles', parseX509Bundles, opts);
  }

  watchX509Bundles(onUpdate: (bundles: BundleSet) => void, onError?: WatchErrorHandler): CancelWatch {
    return this.#watch<X509BundlesResponse, BundleSet>('FetchX509Bundles', parseX509Bundles, onUpdate, onError);
  }

  /** JWT-SVIDs for `audience`: one per identity, or only `spiffeId`'s. */
  async fetchJwtSvids(req: { audience: string | readonly string[]; spiffeId?: string | SpiffeId }, opts?: CallOptions): Promise<JwtSvid[]> {
    const audience = typeof req.audience === 'string' ? [req.audience] : [...req.audience];
    if (audience.length === 0 || audience.some((a) => typeof a !== 'string' || a === '')) {
      throw new TypeError('fetchJwtSvid needs at least one non-empty audience');
    }
    const spiffeId = req.spiffeId === undefined ? '' : SpiffeId.parseWorkload(String(req.spiffeId)).toString();
    const res = await this.#unary<JWTSVIDRequest, JWTSVIDResponse>('FetchJWTSVID', { audience, spiffe_id: spiffeId }, opts);
    if (!res.svids || res.svids.length === 0) {
      throw new WorkloadApiError('ERR_WORKLOAD_API_RESPONSE', 'the Workload API sent an unusable response: FetchJWTSVID returned no JWT-SVIDs');
    }
    return res.svids.map(parseJwtSvidMessage);
  }

  /** The JWT-SVID for `audience` (the default identity's, or `spiffeId`'s). */
  async fetchJwtSvid(req: { audience: string | readonly string[]; spiffeId?: string | SpiffeId }, opts?: CallOptions): Promise<JwtSvid> {
    return (await this.fetchJwtSvids(req, opts))[0] as JwtSvid;
  }

  /** JWT bundles (JWKS) of every trust domain the workload trusts. */
  fetchJwtBundles(opts?: CallOptions): Promise<BundleSet> {
    return this.#first<JWTBundlesResponse, BundleSet>('FetchJWTBundles', parseJwtBundles, opts);
  }

  watchJwtBundles(onUpdate: (bundles: BundleSet) => void, onError?: WatchErrorHandler): CancelWatch {
    return this.#watch<JWTBundlesResponse, BundleSet>('FetchJWTBundles', parseJwtBundles, onUpdate, onError);
  }

  /** Asks the agent to validate a JWT-SVID for `audience`; resolves with its SPIFFE ID and claims. */
  async validateJwtSvid(req: { token: string; audience: string }, opts?: CallOptions): Promise<ValidatedJwtSvid> {
    if (typeof req.token !== 'string' || req.token === '') throw new TypeError('validateJwtSvid needs a token');
    if (typeof req.audience !== 'string' || req.audience === '') throw new TypeError('validateJwtSvid needs an audience');
    const res = await this.#unary<ValidateJWTSVIDRequest, ValidateJWTSVIDResponse>('ValidateJWTSVID', { audience: req.audience, svid: req.token }, opts);
    let spiffeId: SpiffeId;
    try {
      spiffeId = SpiffeId.parse(res.spiffe_id);
    } catch (cause) {
      throw new WorkloadApiError('ERR_WORKLOAD_API_RESPONSE', `the Workload API sent an unusable response: ValidateJWTSVID spiffe_id: ${(cause as Error).message}`, { cause });
    }
    return { spiffeId, claims: res.claims ? fromStruct(res.claims) : {} };
  }

  /** Cancels every watch and closes the channel. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const cancel of [...this.#watches]) cancel();
    this.#client.close();
  }
}

/** The gRPC service name this client calls (for diagnostics). */
export const SERVICE_NAME = WORKLOAD_SERVICE_NAME;
