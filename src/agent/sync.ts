/**
 * @module agent/sync
 *
 * Entry sync by push: keeps one AgentSync.SubscribeAuthorizedEntries stream open to the
 * server and feeds every update to the cache. When the stream ends (server stopped,
 * unreachable, restarted) it subscribes again after a backoff of 1 s doubling to 30 s,
 * with jitter, and resets the backoff once an update arrives. No polling: between
 * changes the stream is idle. With several servers (agent/server-pool), a stream lost for
 * want of a server is reopened at once (within `FAILOVER_DELAY_MS`) on the next one while
 * the pool has one left to try; the backoff is for when every server failed in a row.
 *
 * It also owns the current `ServerClient` (one per set of TLS credentials) and routes the
 * cache's signing calls through it, so an agent SVID renewal swaps every call over to the
 * new certificate at once (the server refuses a superseded agent SVID).
 */
import type { SvidIssuer } from './cache.js';
import { Backoff, type Scheduler } from './clock.js';
import { SILENT_AGENT_LOGGER, type AgentLogger } from './logger.js';
import {
  GrpcCode,
  ServerCallError,
  type AuthorizedUpdate,
  type DeliveryReport,
  type IssuedJwtSvidWire,
  type NewX509SvidRequest,
  type NewX509SvidResult,
  type ServerClient,
  type TemplateInstanceRequest,
} from './server-client.js';

export interface EntrySyncConfig {
  /** A new client for the agent's current credentials. */
  connect: () => ServerClient;
  onUpdate: (u: AuthorizedUpdate) => void;
  /**
   * The stream ended UNAUTHENTICATED (the server no longer accepts the agent SVID, e.g. the
   * agent was evicted). Return true when the agent is attesting again (it then calls
   * `reconnect()`); the sync still retries on its own backoff either way.
   */
  onRefused?: (err: ServerCallError) => boolean;
  /**
   * The server refused the agent as banned (PERMISSION_DENIED with the `banned` standing
   * trailer): the agent must stop serving its workloads at once. The sync keeps retrying on
   * its backoff, so an agent whose record is later evicted can attest again.
   */
  onBanned?: (err: ServerCallError) => void;
  /** Several servers (agent/server-pool): true while one is left to try before backing off. */
  failover?: { hasAlternative(): boolean };
  scheduler: Scheduler;
  logger?: AgentLogger;
  random?: () => number;
}

/** Longest wait before reopening the stream on the next server (jittered from 0). */
export const FAILOVER_DELAY_MS = 200;

export type SyncState = 'idle' | 'connecting' | 'streaming' | 'backoff' | 'stopped';

export class EntrySync implements SvidIssuer {
  readonly #cfg: EntrySyncConfig;
  readonly #log: AgentLogger;
  readonly #backoff: Backoff;
  readonly #random: () => number;
  #client: ServerClient | undefined;
  #cancelStream: (() => void) | undefined;
  #cancelRetry: (() => void) | undefined;
  #state: SyncState = 'idle';
  #generation = 0;
  /** When the stream was last seen open (its last update, or the moment it was lost). */
  #lastStreamingAt: Date | undefined;
  /** Number of times a stream was (re)opened (tests, metrics). */
  subscriptions = 0;

  constructor(cfg: EntrySyncConfig) {
    this.#cfg = cfg;
    this.#log = cfg.logger ?? SILENT_AGENT_LOGGER;
    this.#random = cfg.random ?? Math.random;
    this.#backoff = new Backoff({ random: this.#random });
  }

  get state(): SyncState {
    return this.#state;
  }

  /**
   * The last moment the agent knew it was in sync with the server: now while the stream
   * is open (the server pushes every change on it), else when it was last open; undefined
   * when it never was.
   */
  lastInSync(): Date | undefined {
    return this.#state === 'streaming' ? this.#cfg.scheduler.now() : this.#lastStreamingAt;
  }

  start(): void {
    if (this.#state !== 'idle') throw new TypeError('entry sync already started');
    this.#subscribe();
  }

  /** Drops the current client and stream and starts over with fresh credentials (after renewal). */
  reconnect(): void {
    if (this.#state === 'stopped') return;
    this.#teardown();
    this.#backoff.reset();
    this.#subscribe();
  }

  #teardown(): void {
    if (this.#state === 'streaming') this.#lastStreamingAt = this.#cfg.scheduler.now();
    this.#generation++;
    this.#cancelRetry?.();
    this.#cancelRetry = undefined;
    this.#cancelStream?.();
    this.#cancelStream = undefined;
    this.#client?.close();
    this.#client = undefined;
  }

  #currentClient(): ServerClient {
    this.#client ??= this.#cfg.connect();
    return this.#client;
  }

  #subscribe(): void {
    if (this.#state === 'stopped') return;
    const gen = ++this.#generation;
    this.#state = 'connecting';
    this.subscriptions++;
    let client: ServerClient;
    try {
      client = this.#currentClient();
    } catch (err) {
      this.#onStreamError(gen, err instanceof ServerCallError ? err : new ServerCallError(GrpcCode.UNAVAILABLE, (err as Error).message, { cause: err }));
      return;
    }
    this.#cancelStream = client.subscribe(
      (u) => {
        if (gen !== this.#generation) return;
        if (this.#state !== 'streaming') this.#log.info({ sequence: u.sequence, entries: u.entries.length }, 'authorised-entry stream open');
        this.#state = 'streaming';
        this.#lastStreamingAt = this.#cfg.scheduler.now();
        this.#backoff.reset();
        try {
          this.#cfg.onUpdate(u);
        } catch (err) {
          this.#log.error({ err }, 'applying an authorised-entry update failed');
        }
      },
      (err) => this.#onStreamError(gen, err),
    );
  }

  #onStreamError(gen: number, err: ServerCallError): void {
    if (gen !== this.#generation || this.#state === 'stopped') return;
    if (this.#state === 'streaming') this.#lastStreamingAt = this.#cfg.scheduler.now();
    this.#cancelStream = undefined;
    const answered = err.grpcCode === GrpcCode.UNAUTHENTICATED || err.grpcCode === GrpcCode.PERMISSION_DENIED;
    const failover = !answered && this.#cfg.failover?.hasAlternative() === true;
    const delay = failover ? Math.floor(this.#random() * FAILOVER_DELAY_MS) : this.#backoff.next();
    const fields = { code: err.grpcCode, err: err.message, retryInMs: delay };
    if (err.grpcCode === GrpcCode.UNAUTHENTICATED) {
      let reattesting = false;
      try {
        reattesting = this.#cfg.onRefused?.(err) ?? false;
      } catch (e) {
        this.#log.warn({ err: e }, 'onRefused handler threw');
      }
      if (reattesting) this.#log.warn(fields, 'the server no longer accepts this agent (evicted?); attesting again');
      else this.#log.error(fields, 'the server no longer accepts this agent (evicted?); retrying, but the agent may need a new join token');
    } else if (err.grpcCode === GrpcCode.PERMISSION_DENIED && err.standing === 'banned') {
      try {
        this.#cfg.onBanned?.(err);
      } catch (e) {
        this.#log.warn({ err: e }, 'onBanned handler threw');
      }
      this.#log.debug(fields, 'the server refused this agent as banned; retrying');
    } else if (err.grpcCode === GrpcCode.PERMISSION_DENIED) this.#log.error(fields, 'the server refused this agent (superseded SVID); retrying');
    else if (failover) this.#log.warn(fields, 'authorised-entry stream lost; serving cached SVIDs and reconnecting to the next server');
    else this.#log.warn(fields, 'authorised-entry stream lost; serving cached SVIDs and reconnecting');
    this.#state = 'backoff';
    const retryGen = this.#generation;
    this.#cancelRetry = this.#cfg.scheduler.at(new Date(this.#cfg.scheduler.now().getTime() + delay), () => {
      this.#cancelRetry = undefined;
      if (retryGen === this.#generation) this.#subscribe();
    });
  }

  // SvidIssuer: signing calls go through the current client.
  newX509Svids(batch: readonly NewX509SvidRequest[]): Promise<NewX509SvidResult[]> {
    if (this.#state === 'stopped') return Promise.reject(new ServerCallError(GrpcCode.UNAVAILABLE, 'agent stopping'));
    return this.#currentClient().newX509Svids(batch);
  }

  newJwtSvid(entryId: string, audience: readonly string[], template?: TemplateInstanceRequest): Promise<IssuedJwtSvidWire> {
    if (this.#state === 'stopped') return Promise.reject(new ServerCallError(GrpcCode.UNAVAILABLE, 'agent stopping'));
    return template === undefined ? this.#currentClient().newJwtSvid(entryId, audience) : this.#currentClient().newJwtSvid(entryId, audience, template);
  }

  /** AgentSync.ReportDeliveries through the current client (agent/delivery-log). */
  reportDeliveries(report: DeliveryReport): Promise<{ recorded: number; refused: number }> {
    if (this.#state === 'stopped') return Promise.reject(new ServerCallError(GrpcCode.UNAVAILABLE, 'agent stopping'));
    const c = this.#currentClient();
    if (c.reportDeliveries === undefined) return Promise.reject(new ServerCallError(GrpcCode.UNIMPLEMENTED, 'this server client cannot report deliveries'));
    return c.reportDeliveries(report);
  }

  stop(): void {
    this.#teardown();
    this.#state = 'stopped';
  }
}
