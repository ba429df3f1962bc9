/**
 * @module agent/failover-client
 *
 * A `ServerClient` over several servers (agent/server-pool): each call goes to the pool's
 * current endpoint through a per-endpoint client (grpc-js, agent/grpc-client), and a call
 * that fails for want of a server (UNAVAILABLE, DEADLINE_EXCEEDED, or no client could be
 * made) moves the pool on and is tried once on each other endpoint before it fails. An
 * answer from a server (PERMISSION_DENIED, UNAUTHENTICATED, …) is the answer: it is never
 * retried elsewhere, since the servers share one datastore and would answer the same.
 *
 * The authorised-entry stream is opened on the current endpoint; when it breaks for want
 * of a server the pool moves on before the entry sync hears of it, so the sync's next
 * subscription lands on the next server (at once, while the pool `hasAlternative()`). A
 * server answers a subscription with the full authorised state at once, so a stream that
 * brings nothing within `firstUpdateTimeoutMs` (default 15 s) is treated as unreachable:
 * an address that swallows connection attempts (no reset, the OS's TCP connect timeout is
 * about two minutes) or a hung server does not hold the stream up for longer.
 */
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
  type TemplateInstanceRequest,
  type ServerClient,
  type ServerClientCredentials,
  type ServerClientFactory,
} from './server-client.js';
import type { Scheduler } from './clock.js';
import type { ServerPool } from './server-pool.js';

/** How long a new stream may go without its first update before the server counts as unreachable. */
export const FIRST_UPDATE_TIMEOUT_MS = 15_000;

/** A client for one endpoint (`ip:port`) with one set of credentials. */
export type EndpointClientFactory = (address: string, creds: ServerClientCredentials) => ServerClient;

/** True when `err` says no server was reached (try another), not that one answered. */
export function isUnreachable(err: unknown): boolean {
  if (!(err instanceof ServerCallError)) return true;
  return err.grpcCode === GrpcCode.UNAVAILABLE || err.grpcCode === GrpcCode.DEADLINE_EXCEEDED;
}

function asCallError(err: unknown): ServerCallError {
  return err instanceof ServerCallError ? err : new ServerCallError(GrpcCode.UNAVAILABLE, (err as Error).message ?? String(err), { cause: err });
}

export interface FailoverServerClientConfig {
  pool: ServerPool;
  clientFor: EndpointClientFactory;
  credentials: ServerClientCredentials;
  scheduler: Scheduler;
  /** Default `FIRST_UPDATE_TIMEOUT_MS`. */
  firstUpdateTimeoutMs?: number;
}

export class FailoverServerClient implements ServerClient {
  readonly #pool: ServerPool;
  readonly #clientFor: EndpointClientFactory;
  readonly #creds: ServerClientCredentials;
  readonly #sched: Scheduler;
  readonly #firstUpdateMs: number;
  readonly #clients = new Map<string, ServerClient>();
  #closed = false;

  constructor(cfg: FailoverServerClientConfig) {
    this.#pool = cfg.pool;
    this.#clientFor = cfg.clientFor;
    this.#creds = cfg.credentials;
    this.#sched = cfg.scheduler;
    this.#firstUpdateMs = cfg.firstUpdateTimeoutMs ?? FIRST_UPDATE_TIMEOUT_MS;
  }

  #client(address: string): ServerClient {
    if (this.#closed) throw new ServerCallError(GrpcCode.CANCELLED, 'client closed');
    let c = this.#clients.get(address);
    if (c === undefined) {
      c = this.#clientFor(address, this.#creds);
      this.#clients.set(address, c);
    }
    return c;
  }

  /** `call` on the current endpoint; on an unreachable server, once on each other endpoint. */
  async #call<T>(call: (c: ServerClient) => Promise<T>): Promise<T> {
    const tried = new Set<string>();
    let last: ServerCallError | undefined;
    for (;;) {
      const address = await this.#pool.current();
      // Back at an endpoint this call already tried (the pool went round): give up.
      if (last !== undefined && tried.has(address)) throw last;
      tried.add(address);
      try {
        const result = await call(this.#client(address));
        this.#pool.succeeded(address);
        return result;
      } catch (err) {
        if (this.#closed || !isUnreachable(err)) throw err;
        last = asCallError(err);
        this.#pool.failed(address, last.message);
        // Every endpoint of this round failed: the caller backs off.
        if (!this.#pool.hasAlternative()) throw last;
      }
    }
  }

  attest(req: Parameters<ServerClient['attest']>[0]): Promise<AttestResult> {
    return this.#call((c) => c.attest(req));
  }

  renewAgent(csr: Buffer): Promise<IssuedX509Svid> {
    return this.#call((c) => c.renewAgent(csr));
  }

  reportDeliveries(report: DeliveryReport): Promise<{ recorded: number; refused: number }> {
    return this.#call((c) => {
      if (c.reportDeliveries === undefined) return Promise.reject(new ServerCallError(GrpcCode.UNIMPLEMENTED, 'this server client cannot report deliveries'));
      return c.reportDeliveries(report);
    });
  }

  newX509Svids(batch: readonly NewX509SvidRequest[]): Promise<NewX509SvidResult[]> {
    return this.#call((c) => c.newX509Svids(batch));
  }

  newJwtSvid(entryId: string, audience: readonly string[], template?: TemplateInstanceRequest): Promise<IssuedJwtSvidWire> {
    return this.#call((c) => (template === undefined ? c.newJwtSvid(entryId, audience) : c.newJwtSvid(entryId, audience, template)));
  }

  subscribe(onUpdate: (u: AuthorizedUpdate) => void, onError: (err: ServerCallError) => void): () => void {
    let cancelled = false;
    let address: string | undefined;
    let cancelInner: (() => void) | undefined;
    let cancelTimer: (() => void) | undefined;
    const fail = (err: unknown): void => {
      if (cancelled) return;
      cancelled = true;
      cancelTimer?.();
      if (address !== undefined) {
        this.#pool.streamEnded(address);
        if (isUnreachable(err)) this.#pool.failed(address, (err as Error).message);
      }
      onError(asCallError(err));
    };
    void this.#pool.current().then(
      (a) => {
        if (cancelled) return;
        address = a;
        let first = true;
        cancelTimer = this.#sched.at(new Date(this.#sched.now().getTime() + this.#firstUpdateMs), () => {
          if (!first) return;
          cancelInner?.();
          fail(new ServerCallError(GrpcCode.DEADLINE_EXCEEDED, `server ${a} sent no authorised entries within ${this.#firstUpdateMs / 1000}s of subscribing`));
        });
        try {
          cancelInner = this.#client(a).subscribe(
            (u) => {
              if (cancelled) return;
              if (first) {
                first = false;
                cancelTimer?.();
                this.#pool.streaming(a);
              }
              onUpdate(u);
            },
            fail,
          );
        } catch (err) {
          fail(err);
        }
      },
      fail,
    );
    return () => {
      if (cancelled) return;
      cancelled = true;
      cancelTimer?.();
      if (address !== undefined) this.#pool.streamEnded(address);
      cancelInner?.();
    };
  }

  close(): void {
    this.#closed = true;
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }
}

/** Clients over every server of `pool`, each made for the credentials the agent holds. */
export function failoverServerClientFactory(cfg: Omit<FailoverServerClientConfig, 'credentials'>): ServerClientFactory {
  return (credentials) => new FailoverServerClient({ ...cfg, credentials });
}
