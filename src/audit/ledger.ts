/**
 * @module audit/ledger
 *
 * The server's audit ledger: `record()` resolves once the record is durable in the shared
 * chain, so an SVID or a change is only acknowledged after its record is. Records that arrive
 * while a write is under way are written together in the next one (group commit: one
 * datastore write for however many issuances were waiting), and every `checkpointEvery`
 * records or `checkpointIntervalMs` (whichever comes first) the ledger appends a checkpoint
 * signed by the server's JWT authority (checkpoint.ts).
 *
 * Threat: a record lost silently. When the store refuses or fails a write, every waiting
 * `record()` rejects with `ERR_AUDIT_UNAVAILABLE` and the caller refuses what it was about to
 * hand out (fail closed); nothing is retried behind the caller's back or dropped.
 */
import { isMayflyError } from '../spiffe/errors.js';
import { AuditError } from './audit-error.js';
import { checkpointAudience } from './checkpoint.js';
import { auditLink, encodeRecordBody, type AuditActor, type AuditEvent, type AuditRecord } from './record.js';

/**
 * The datastore calls the ledger makes (the datastore's own types fit). `I` is what a
 * record may carry into the same write (the server's X509-SVID issuance records): the
 * ledger passes them through untouched, in `x509Issuances`.
 */
export interface AuditStore<I = never> {
  appendAuditRecords(
    bodies: readonly string[],
    link: (seq: number, prevHash: string, body: string) => string,
    opts?: { expectedLastSeq?: number; x509Issuances?: readonly I[] },
  ): Promise<AuditRecord[]>;
  lastAuditRecord(): Promise<AuditRecord | undefined>;
}

/** Mints the checkpoint token: a JWT-SVID for the server's ID with this one audience. */
export interface CheckpointSigner {
  signCheckpoint(audience: string): { token: string; publicJwk?: Record<string, unknown> };
}

export interface AuditLedgerLogger {
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface AuditLedgerConfig<I = never> {
  store: AuditStore<I>;
  signer: CheckpointSigner;
  /** This server's instance ID, written into every record. */
  serverInstance: string;
  now?: () => Date;
  /** Records between checkpoints (default 1000). */
  checkpointEvery?: number;
  /** Longest time a written record waits for a checkpoint (ms, default 60,000). */
  checkpointIntervalMs?: number;
  /** Most records one write carries (default 1000). */
  maxBatch?: number;
  logger?: AuditLedgerLogger;
  /** Told after every durable write, with the number of records it held (metrics). */
  onWritten?(records: number): void;
}

interface Waiter<I> {
  body: string;
  x509Issuances: readonly I[] | undefined;
  resolve(): void;
  reject(err: Error): void;
}

export class AuditLedger<I = never> {
  readonly #cfg: Required<Pick<AuditLedgerConfig<I>, 'checkpointEvery' | 'checkpointIntervalMs' | 'maxBatch'>> & AuditLedgerConfig<I>;
  readonly #now: () => Date;
  #queue: Waiter<I>[] = [];
  #writing: Promise<void> | undefined;
  #sinceCheckpoint = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopped = false;

  constructor(cfg: AuditLedgerConfig<I>) {
    if (typeof cfg !== 'object' || cfg === null || cfg.store === undefined || cfg.signer === undefined || typeof cfg.serverInstance !== 'string') {
      throw new TypeError('AuditLedger needs { store, signer, serverInstance }');
    }
    const every = cfg.checkpointEvery ?? 1000;
    const interval = cfg.checkpointIntervalMs ?? 60_000;
    const maxBatch = cfg.maxBatch ?? 1000;
    for (const [n, v] of [['checkpointEvery', every], ['checkpointIntervalMs', interval], ['maxBatch', maxBatch]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new TypeError(`AuditLedger ${n} must be a positive integer`);
    }
    this.#cfg = { ...cfg, checkpointEvery: every, checkpointIntervalMs: interval, maxBatch };
    this.#now = cfg.now ?? (() => new Date());
  }

  /** Starts the checkpoint timer. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      if (this.#sinceCheckpoint > 0) void this.#enqueueCheckpoint();
    }, this.#cfg.checkpointIntervalMs);
    this.#timer.unref();
  }

  /**
   * Writes `event` by `actor`; resolves once it is durable, rejects with ERR_AUDIT_UNAVAILABLE
   * otherwise. `attached.x509Issuances` go into the same store write (durable exactly when the record is).
   */
  record(actor: AuditActor, event: AuditEvent, attached?: { x509Issuances?: readonly I[] }): Promise<void> {
    if (this.#stopped) return Promise.reject(new AuditError('ERR_AUDIT_UNAVAILABLE', 'the audit ledger is stopped'));
    const body = encodeRecordBody({ v: 1, time: this.#now().getTime(), server: this.#cfg.serverInstance, actor, ...event });
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ body, x509Issuances: attached?.x509Issuances, resolve, reject });
      this.#kick();
    });
  }

  /** Appends a checkpoint for the current head now (after the records already queued). */
  async checkpoint(): Promise<void> {
    if (this.#queue.length > 0) this.#kick();
    while (this.#writing !== undefined) await this.#writing;
    await this.#enqueueCheckpoint();
  }

  /** Waits for queued records, writes a last checkpoint when records are unsigned, stops the timer. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    while (this.#writing !== undefined) await this.#writing;
    if (this.#sinceCheckpoint > 0) await this.#enqueueCheckpoint();
    this.#stopped = true;
  }

  #kick(): void {
    if (this.#writing !== undefined) return;
    this.#writing = this.#drain().finally(() => {
      this.#writing = undefined;
      if (this.#queue.length > 0) this.#kick();
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      // Never more than the checkpoint spacing allows: the head is signed at least every `checkpointEvery` records.
      const batch = this.#queue.splice(0, Math.min(this.#cfg.maxBatch, Math.max(1, this.#cfg.checkpointEvery - this.#sinceCheckpoint)));
      try {
        const x509Issuances = batch.flatMap((w) => w.x509Issuances ?? []);
        const rows = await this.#cfg.store.appendAuditRecords(
          batch.map((w) => w.body),
          auditLink,
          x509Issuances.length > 0 ? { x509Issuances } : undefined,
        );
        this.#sinceCheckpoint += rows.length;
        this.#cfg.onWritten?.(rows.length);
        for (const w of batch) w.resolve();
      } catch (err) {
        this.#cfg.logger?.error({ err, records: batch.length }, 'audit ledger write failed; the calls that needed these records are refused');
        const why = isMayflyError(err) ? err.message : String((err as Error)?.message ?? err);
        for (const w of batch) w.reject(new AuditError('ERR_AUDIT_UNAVAILABLE', `the audit ledger could not record this (${why}); nothing was issued or changed without its record`, { cause: err }));
        continue;
      }
      if (this.#sinceCheckpoint >= this.#cfg.checkpointEvery) await this.#checkpoint();
    }
  }

  async #enqueueCheckpoint(): Promise<void> {
    while (this.#writing !== undefined) await this.#writing;
    this.#writing = this.#checkpoint().finally(() => {
      this.#writing = undefined;
      if (this.#queue.length > 0) this.#kick();
    });
    await this.#writing;
  }

  /** Appends a checkpoint for the current head (retrying when another server appended in between). */
  async #checkpoint(): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const head = await this.#cfg.store.lastAuditRecord();
        if (head === undefined) return;
        const { token, publicJwk } = this.#cfg.signer.signCheckpoint(checkpointAudience(head));
        const body = encodeRecordBody({
          v: 1,
          time: this.#now().getTime(),
          server: this.#cfg.serverInstance,
          actor: { kind: 'server', id: this.#cfg.serverInstance },
          kind: 'checkpoint',
          head: { seq: head.seq, hash: head.hash },
          token,
          ...(publicJwk !== undefined ? { publicJwk } : {}),
        });
        await this.#cfg.store.appendAuditRecords([body], auditLink, { expectedLastSeq: head.seq });
        this.#sinceCheckpoint = 0;
        this.#cfg.onWritten?.(1);
        return;
      } catch (err) {
        if (isMayflyError(err, 'ERR_DATASTORE_CONFLICT')) continue;
        // A missed checkpoint loses nothing: the records are durable and the next one covers them.
        this.#cfg.logger?.warn({ err }, 'audit checkpoint not written; the next one will cover these records');
        return;
      }
    }
  }
}
