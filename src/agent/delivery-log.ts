/**
 * @module agent/delivery-log
 *
 * The agent's delivery records: which local caller received which SVID on the Workload API
 * (the endpoint's `onDelivered` seam, workloadapi/delivery), buffered in memory and shipped to
 * the server's audit ledger in batches over `AgentSync.ReportDeliveries`.
 *
 * Never in the way of a workload: `record` is synchronous and O(1), and it never waits for the
 * server. The buffer is bounded (`maxBuffered`, default 10,000 records); once full, further
 * records are dropped and counted, and the count goes to the server with the next batch (a
 * `svid.deliveries-lost` ledger record) and to `mayfly_agent_delivery_records_total{outcome="dropped"}`.
 * A batch (at most `maxBatch`) is sent every `flushIntervalMs`, or at once when `maxBatch`
 * records wait. A failed send is retried with backoff; the batch stays at the head of the
 * buffer until the server acknowledged it, so records reach the ledger in order (at least
 * once: a send whose answer was lost is sent again).
 *
 * A JWT-SVID the cache hands the same process again (same ID, audience and expiry: the same
 * cached token) is recorded once (the last 10,000 such deliveries are remembered); X.509
 * repeats on one stream are already left out by the endpoint.
 *
 * What an agent crash loses: the buffer itself (it is never written to disk: it would be
 * caller data on disk, and a write per delivery). After every flush attempt the agent writes
 * how many records are buffered and unsent, with the counts not yet reported, to
 * `<dataDir>/delivery-records.json` (securefs), and marks the file clean on an orderly stop.
 * The next process reports that number as `lost_at_restart`; when the file was not marked
 * clean (kill -9, crash, power loss) it also says the real number may be higher: records
 * delivered after the last flush are unknown.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { readPrivateFile, writeFileAtomic } from '../securefs/index.js';
import type { DeliveredSvid, DeliveryCaller } from '../workloadapi/delivery.js';
import { Backoff, type Scheduler } from './clock.js';
import { SILENT_AGENT_LOGGER, type AgentLogger } from './logger.js';
import type { DeliveryRecord, DeliveryReport } from './server-client.js';

/** Where batches go (the entry sync's current server client). */
export interface DeliverySink {
  reportDeliveries(report: DeliveryReport): Promise<{ recorded: number; refused: number }>;
}

/** Counts for the agent's metrics (agent/metrics). */
export interface DeliveryLogRecorder {
  deliveryRecords(outcome: 'sent' | 'dropped' | 'refused' | 'lost_at_restart', n: number): void;
}

export interface DeliveryLogConfig {
  sink: DeliverySink;
  scheduler: Scheduler;
  /** Where `delivery-records.json` (the unsent-count file) lives; not persisted when absent. */
  dataDir?: string;
  /** Records held in memory at most (default 10,000). */
  maxBuffered?: number;
  /** Records per ReportDeliveries call at most (default 500, the server's batch limit). */
  maxBatch?: number;
  /** How often buffered records are sent (default 1000 ms). */
  flushIntervalMs?: number;
  /** Retry backoff bounds after a failed send (default 1 s .. 60 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
  random?: () => number;
  logger?: AgentLogger;
  recorder?: DeliveryLogRecorder;
}

interface CounterFile {
  unsent: number;
  dropped: number;
  lostAtRestart: number;
  unknownMore: boolean;
  clean: boolean;
}

export const DELIVERY_COUNTER_FILE = 'delivery-records.json';

/** JWT-SVID deliveries remembered for de-duplication (oldest forgotten first). */
const RECENT_JWT_KEYS = 10_000;

export class DeliveryLog {
  readonly #cfg: DeliveryLogConfig;
  readonly #log: AgentLogger;
  readonly #max: number;
  readonly #batch: number;
  readonly #interval: number;
  readonly #backoff: Backoff;
  readonly #file: string | undefined;
  #buf: DeliveryRecord[] = [];
  #head = 0;
  /** Dropped since the last accepted report. */
  #dropped = 0;
  #lostAtRestart = 0;
  #unknownMore = false;
  #inFlight = false;
  #failing = false;
  #cancel: (() => void) | undefined;
  #dueAt = Infinity;
  #stopped = true;
  /** stop() was called: records are no longer buffered. */
  #ended = false;
  #lastWritten = '';
  readonly #recentJwt = new Set<string>();

  constructor(cfg: DeliveryLogConfig) {
    if (typeof cfg !== 'object' || cfg === null || typeof cfg.sink?.reportDeliveries !== 'function') throw new TypeError('DeliveryLog needs { sink, scheduler }');
    this.#cfg = cfg;
    this.#log = cfg.logger ?? SILENT_AGENT_LOGGER;
    this.#max = cfg.maxBuffered ?? 10_000;
    this.#batch = cfg.maxBatch ?? 500;
    this.#interval = cfg.flushIntervalMs ?? 1000;
    for (const [k, v] of [['maxBuffered', this.#max], ['maxBatch', this.#batch], ['flushIntervalMs', this.#interval]] as const) {
      if (!Number.isSafeInteger(v) || v < 1) throw new TypeError(`${k} must be a positive integer`);
    }
    this.#backoff = new Backoff({ minMs: cfg.retryMinMs ?? 1000, maxMs: cfg.retryMaxMs ?? 60_000, ...(cfg.random !== undefined ? { random: cfg.random } : {}) });
    this.#file = cfg.dataDir !== undefined ? join(cfg.dataDir, DELIVERY_COUNTER_FILE) : undefined;
  }

  /** Records buffered and not yet acknowledged by the server. */
  get buffered(): number {
    return this.#buf.length - this.#head;
  }

  /** Dropped (buffer full) and not yet reported to the server. */
  get droppedUnreported(): number {
    return this.#dropped;
  }

  /** Reads what the previous process left unsent (see module doc) and starts flushing. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#ended = false;
    const prev = this.#readFile();
    if (prev !== undefined) {
      this.#lostAtRestart += prev.unsent + prev.lostAtRestart;
      this.#dropped += prev.dropped;
      this.#unknownMore ||= prev.unknownMore || !prev.clean;
      const lost = prev.unsent;
      if (lost > 0 || !prev.clean) {
        this.#cfg.recorder?.deliveryRecords('lost_at_restart', lost);
        this.#log.warn({ lost, clean: prev.clean }, prev.clean ? 'delivery records unsent at the last shutdown are lost; the server is told' : 'the previous agent process ended uncleanly: its unsent delivery records are lost (at least this many); the server is told');
      }
    }
    this.#persist(false);
    this.#arm(this.#interval);
  }

  /** The endpoint's `onDelivered`: buffers one record, or counts it dropped. Never throws for a full buffer. */
  record(caller: DeliveryCaller, what: DeliveredSvid): void {
    if (what.kind === 'jwt' && this.#seenJwt(caller, what)) return;
    if (this.#ended) {
      // Stopping (or stopped): nothing will send it; the next process reports it lost.
      this.#dropped++;
      this.#cfg.recorder?.deliveryRecords('dropped', 1);
      this.#persist(true);
      return;
    }
    if (this.buffered >= this.#max) {
      this.#dropped++;
      this.#cfg.recorder?.deliveryRecords('dropped', 1);
      return;
    }
    this.#buf.push({
      kind: what.kind,
      spiffeId: what.spiffeId,
      ...(what.kind === 'x509' ? { serial: what.serial } : { audience: recordedAudience(what.audience) }),
      expiresAt: what.notAfter,
      deliveredAt: this.#cfg.scheduler.now().getTime(),
      pid: caller.pid,
      uid: caller.uid,
      gid: caller.gid,
      selectors: caller.selectors,
    });
    if (this.buffered >= this.#batch && !this.#failing && !this.#stopped) this.#arm(0);
  }

  /** Sends what is buffered now, once (tests; `stop`). Resolves true when nothing is left to report. */
  async flush(): Promise<boolean> {
    await this.#send();
    return this.buffered === 0 && !this.#pendingCounts();
  }

  /**
   * Stops flushing after one last attempt (bounded by `timeoutMs`), then marks the counter
   * file clean with what is still unsent (reported as lost by the next process).
   */
  async stop(timeoutMs = 2000): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#ended = true;
    this.#cancel?.();
    this.#cancel = undefined;
    if (this.buffered > 0 || this.#pendingCounts()) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.#send(true), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
    }
    this.#persist(true);
  }

  /**
   * The same cached JWT-SVID (ID, audience, expiry) handed to the same process again: one
   * record is enough, or a caller polling FetchJWTSVID would fill the buffer and the ledger.
   */
  #seenJwt(caller: DeliveryCaller, what: DeliveredSvid & { kind: 'jwt' }): boolean {
    // Hashed: an audience set may be 32 KiB, and 10,000 of them would be 320 MB of keys.
    const key = createHash('sha256').update(`${caller.pid}|${caller.uid}|${caller.gid}|${what.spiffeId}|${what.audience.join('\n')}|${what.notAfter}`).digest('base64');
    if (this.#recentJwt.has(key)) return true;
    this.#recentJwt.add(key);
    if (this.#recentJwt.size > RECENT_JWT_KEYS) {
      const oldest = this.#recentJwt.values().next().value;
      if (oldest !== undefined) this.#recentJwt.delete(oldest);
    }
    return false;
  }

  #pendingCounts(): boolean {
    return this.#dropped > 0 || this.#lostAtRestart > 0 || this.#unknownMore;
  }

  #arm(delayMs: number): void {
    if (this.#stopped) return;
    const at = this.#cfg.scheduler.now().getTime() + delayMs;
    if (this.#cancel !== undefined && this.#dueAt <= at) return;
    this.#cancel?.();
    this.#dueAt = at;
    this.#cancel = this.#cfg.scheduler.at(new Date(at), () => {
      this.#cancel = undefined;
      this.#dueAt = Infinity;
      void this.#tick();
    });
  }

  async #tick(): Promise<void> {
    const ok = await this.#send();
    if (this.#stopped) return;
    if (!ok) this.#arm(this.#backoff.next());
    else this.#arm(this.buffered >= this.#batch ? 0 : this.#interval);
  }

  /** One ReportDeliveries call with the head of the buffer; true when it succeeded (or there was nothing to send). */
  async #send(final = false): Promise<boolean> {
    if (this.#inFlight) return true;
    if (this.buffered === 0 && !this.#pendingCounts()) {
      this.#persist(false);
      return true;
    }
    this.#inFlight = true;
    const batch = this.#buf.slice(this.#head, this.#head + this.#batch);
    const report: DeliveryReport = { deliveries: batch, dropped: this.#dropped, lostAtRestart: this.#lostAtRestart, lostAtRestartUnknownMore: this.#unknownMore };
    try {
      const res = await this.#cfg.sink.reportDeliveries(report);
      // The batch is still the head of the buffer: records are only ever appended behind it.
      this.#head += batch.length;
      this.#dropped -= report.dropped;
      this.#lostAtRestart -= report.lostAtRestart;
      if (report.lostAtRestartUnknownMore) this.#unknownMore = false;
      if (this.#head > 1024 && this.#head * 2 > this.#buf.length) {
        this.#buf = this.#buf.slice(this.#head);
        this.#head = 0;
      }
      this.#cfg.recorder?.deliveryRecords('sent', batch.length - res.refused);
      if (res.refused > 0) {
        this.#cfg.recorder?.deliveryRecords('refused', res.refused);
        this.#log.warn({ refused: res.refused }, 'the server refused delivery records (identities this agent is not authorised for); it counted them in its ledger');
      }
      if (this.#failing) this.#log.info({ buffered: this.buffered }, 'delivery records reach the server again');
      this.#failing = false;
      this.#backoff.reset();
      return true;
    } catch (err) {
      if (!this.#failing && !final) this.#log.warn({ err, buffered: this.buffered }, 'sending delivery records to the server failed; they stay buffered and are retried');
      this.#failing = true;
      return false;
    } finally {
      this.#inFlight = false;
      // A last send that outlived stop()'s wait corrects the count stop() wrote.
      this.#persist(final || this.#ended);
    }
  }

  #readFile(): CounterFile | undefined {
    if (this.#file === undefined) return undefined;
    let raw: Buffer | undefined;
    try {
      raw = readPrivateFile(this.#file);
    } catch (err) {
      this.#log.warn({ err, path: this.#file }, 'cannot read the delivery-record counter file; what the previous process lost is unknown');
      this.#unknownMore = true;
      return undefined;
    }
    if (raw === undefined) return undefined;
    try {
      const v = JSON.parse(raw.toString('utf8')) as Partial<CounterFile>;
      const n = (x: unknown): number => (typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 ? x : 0);
      return { unsent: n(v.unsent), dropped: n(v.dropped), lostAtRestart: n(v.lostAtRestart), unknownMore: v.unknownMore === true, clean: v.clean === true };
    } catch {
      return { unsent: 0, dropped: 0, lostAtRestart: 0, unknownMore: true, clean: false };
    }
  }

  #persist(clean: boolean): void {
    if (this.#file === undefined) return;
    const text = JSON.stringify({ unsent: this.buffered, dropped: this.#dropped, lostAtRestart: this.#lostAtRestart, unknownMore: this.#unknownMore, clean } satisfies CounterFile);
    if (text === this.#lastWritten) return;
    try {
      // Not fsynced: this runs after every flush, on the event loop that serves the Workload
      // API, and two fsyncs there showed up in its tail latency. A kill -9 still finds the last
      // count (the page cache outlives the process); after a power loss the file may be old or
      // unreadable, which the next process reports as "at least this many lost".
      writeFileAtomic(this.#file, text, { durable: false });
      this.#lastWritten = text;
    } catch (err) {
      this.#log.warn({ err, path: this.#file }, 'cannot write the delivery-record counter file; a crash now would lose an uncounted number of records');
    }
  }
}

/** Audiences kept per JWT delivery record, and characters kept of each. */
const RECORDED_AUDIENCES = 4;
const RECORDED_AUDIENCE_CHARS = 256;

/**
 * What a record keeps of a JWT-SVID's audience: the first few values, each cut to a bounded
 * length, and `+N more` for the rest. A workload may ask for 32 audiences of 1 KiB each; kept
 * whole, a full buffer would hold 330 MB and one batch would pass gRPC's message limit.
 */
export function recordedAudience(audience: readonly string[]): string[] {
  const kept = audience.slice(0, RECORDED_AUDIENCES).map((a) => (a.length > RECORDED_AUDIENCE_CHARS ? `${a.slice(0, RECORDED_AUDIENCE_CHARS)}…` : a));
  if (audience.length > RECORDED_AUDIENCES) kept.push(`+${audience.length - RECORDED_AUDIENCES} more`);
  return kept;
}
