/**
 * @module server/certification
 *
 * Owner certification (issue 11, item 5): every entry's owner re-attests, once per
 * `interval`, that the identity is still needed (`mayfly-server entry certify`). Machines
 * cannot certify themselves: an attestation is an admin call, recorded in the audit ledger
 * with the admin identity that made it. An entry past its interval is *due*: warned about
 * (a log line, the inventory, `mayfly_entry_certification{state="due"}`) but served; past
 * `interval + grace` it has *lapsed*: agents are no longer sent it and no SVID is signed for
 * it (PERMISSION_DENIED naming the reason) until its owner certifies it. An unscoped admin
 * may exempt an entry (break-glass, with a note, itself recorded): served until its owner
 * certifies it again.
 *
 * The ledger is the record: this module keeps an index of the newest certification and
 * exemption per entry, read from the ledger at start and followed on every sweep (so
 * servers sharing a datastore see each other's), and updated at once by its own calls.
 * An entry's clock starts at the later of its creation, its last certification, and the
 * ledger's first `certification.enabled` record (entries that existed when certification
 * was switched on get a full interval).
 *
 * Threat: identities that outlive their purpose because nobody is asked. The sweep is not
 * what enforces a lapse: `refusal` is computed from the clock on every issuance, so a
 * lapsed entry is refused the second it lapses; the sweep only tells agents to drop it.
 */
import type { AuditActor, AuditEvent } from '../audit/record.js';
import { decodeRecordBody } from '../audit/record.js';
import type { RegistrationEntry } from '../registration/entry.js';
import type { ServerLogger } from './ports.js';

export interface CertificationSettings {
  intervalSeconds: number;
  graceSeconds: number;
}

export type CertificationState = 'current' | 'due' | 'lapsed' | 'exempt';

export interface CertificationStatus {
  readonly state: CertificationState;
  /** Unix seconds of the last certification; 0 = never. */
  readonly certifiedAt: number;
  /** Unix seconds: due from then (warned about). */
  readonly dueAt: number;
  /** Unix seconds: not served from then, unless exempt. */
  readonly lapsesAt: number;
}

/** What this module needs of the ledger: appends (server/audit-ledger's AuditLedger) and reads (the datastore). */
export interface CertificationLedger {
  record(actor: AuditActor, event: AuditEvent): Promise<void>;
  listAuditRecords(q: { afterSeq?: number; limit?: number }): Promise<{ seq: number; body: string }[]>;
}

/** What the sweep reads of the entries. */
export interface CertificationEntries {
  listEntries(q: { pageSize?: number; pageToken?: string }): Promise<{ items: RegistrationEntry[]; nextPageToken: string }>;
}

export interface EntryCertificationsConfig {
  settings: CertificationSettings;
  ledger: CertificationLedger;
  entries: CertificationEntries;
  logger: ServerLogger;
  now: () => Date;
  /** Told when the set of lapsed entries changed (the server publishes an entries change, so agents drop or regain them). */
  onLapsedChanged?: () => void;
}

interface Known {
  certifiedAt: number;
  exemptAt: number;
}

export type CertificationCounts = Record<CertificationState, number>;

const sec = (ms: number): number => Math.floor(ms / 1000);
const iso = (s: number): string => new Date(s * 1000).toISOString();

/** "90d", "14d 12h": a duration for messages. */
export function formatDays(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const rest = seconds - d * 86_400;
  if (rest === 0) return `${d}d`;
  return d > 0 ? `${d}d${Math.round(rest / 3600)}h` : `${seconds}s`;
}

export class EntryCertifications {
  readonly settings: CertificationSettings;
  readonly #cfg: EntryCertificationsConfig;
  readonly #known = new Map<string, Known>();
  #afterSeq = 0;
  #enabledAt = 0;
  #lastStates = new Map<string, CertificationState>();
  #counts: CertificationCounts = { current: 0, due: 0, lapsed: 0, exempt: 0 };
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<CertificationCounts> | undefined;

  constructor(cfg: EntryCertificationsConfig) {
    if (typeof cfg !== 'object' || cfg === null || cfg.ledger === undefined || cfg.entries === undefined) throw new TypeError('EntryCertifications needs { settings, ledger, entries, logger, now }');
    const { intervalSeconds, graceSeconds } = cfg.settings;
    if (!Number.isSafeInteger(intervalSeconds) || intervalSeconds <= 0 || !Number.isSafeInteger(graceSeconds) || graceSeconds < 0) {
      throw new TypeError('certification interval must be a positive and grace a non-negative number of seconds');
    }
    this.#cfg = cfg;
    this.settings = cfg.settings;
  }

  /** Reads the ledger, records `certification.enabled` the first time, and sweeps once. */
  async start(opts: { sweepEveryMs?: number } = {}): Promise<void> {
    await this.#follow();
    if (this.#enabledAt === 0) {
      await this.#cfg.ledger.record({ kind: 'server', id: 'certification' }, { kind: 'certification.enabled', ...this.settings });
      this.#enabledAt = sec(this.#cfg.now().getTime());
    }
    await this.sweep();
    const every = opts.sweepEveryMs ?? 60_000;
    if (every > 0) {
      this.#timer = setInterval(() => {
        this.sweep().catch((err: unknown) => this.#cfg.logger.warn({ err }, 'entry certification sweep failed; retried at the next one'));
      }, every);
      this.#timer.unref();
    }
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Reads ledger records written since the last read (by this server or another). */
  async #follow(): Promise<void> {
    for (;;) {
      const page = await this.#cfg.ledger.listAuditRecords({ afterSeq: this.#afterSeq, limit: 1000 });
      for (const r of page) {
        // Most records are issuances: only parse the two kinds read here.
        if (r.body.includes('"kind":"entry.certified"') || r.body.includes('"kind":"certification.enabled"')) this.#apply(r.body);
        this.#afterSeq = Math.max(this.#afterSeq, r.seq);
      }
      if (page.length < 1000) return;
    }
  }

  #apply(body: string): void {
    const b = decodeRecordBody(body);
    if (b === undefined) return;
    const at = sec(b.time);
    if (b.kind === 'certification.enabled') {
      if (this.#enabledAt === 0 || at < this.#enabledAt) this.#enabledAt = at;
    } else if (b.kind === 'entry.certified') {
      this.#note(b.entryId, at, b.exempt);
    }
  }

  #note(entryId: string, at: number, exempt: boolean): void {
    const k = this.#known.get(entryId) ?? { certifiedAt: 0, exemptAt: 0 };
    if (exempt) k.exemptAt = Math.max(k.exemptAt, at);
    else k.certifiedAt = Math.max(k.certifiedAt, at);
    this.#known.set(entryId, k);
  }

  /** Where `entry` stands at `now` (unix seconds; default the clock's). */
  status(entry: Pick<RegistrationEntry, 'entryId' | 'createdAt'>, now = sec(this.#cfg.now().getTime())): CertificationStatus {
    const k = this.#known.get(entry.entryId);
    const certifiedAt = k?.certifiedAt ?? 0;
    const base = Math.max(certifiedAt, entry.createdAt, this.#enabledAt);
    const dueAt = base + this.settings.intervalSeconds;
    const lapsesAt = dueAt + this.settings.graceSeconds;
    let state: CertificationState;
    if (k !== undefined && k.exemptAt > certifiedAt && k.exemptAt >= entry.createdAt) state = 'exempt';
    else if (now < dueAt) state = 'current';
    else if (now < lapsesAt) state = 'due';
    else state = 'lapsed';
    return { state, certifiedAt, dueAt, lapsesAt };
  }

  /** Why `entry` may not be served now, or undefined when it may (the issuance check). */
  refusal(entry: RegistrationEntry): string | undefined {
    const s = this.status(entry);
    if (s.state !== 'lapsed') return undefined;
    const last = s.certifiedAt === 0 ? 'never certified' : `last certified ${iso(s.certifiedAt)}`;
    return (
      `entry ${entry.entryId} (${entry.spiffeId}) is not served: its owner certification lapsed at ${iso(s.lapsesAt)} ` +
      `(${last}; interval ${formatDays(this.settings.intervalSeconds)}, grace ${formatDays(this.settings.graceSeconds)}); ` +
      `its owner (${entry.owner === '' ? 'none recorded' : entry.owner}) must run: mayfly-server entry certify -entryID ${entry.entryId} -owner <owner>`
    );
  }

  /** Records a certification (or exemption) in the ledger, then applies it. The caller has checked who may. */
  async certify(actor: AuditActor, entry: RegistrationEntry, opts: { owner: string; note: string; exempt: boolean }): Promise<CertificationStatus> {
    const before = this.status(entry).state;
    await this.#cfg.ledger.record(actor, { kind: 'entry.certified', entryId: entry.entryId, spiffeId: entry.spiffeId, owner: opts.owner, note: opts.note, exempt: opts.exempt });
    this.#note(entry.entryId, sec(this.#cfg.now().getTime()), opts.exempt);
    const after = this.status(entry);
    this.#cfg.logger.info({ entryId: entry.entryId, spiffeId: entry.spiffeId, owner: opts.owner, exempt: opts.exempt, by: actor.id, dueAt: iso(after.dueAt) }, opts.exempt ? 'entry exempted from certification (break-glass)' : 'entry certified by its owner');
    this.#lastStates.set(entry.entryId, after.state);
    if (before === 'lapsed') this.#cfg.onLapsedChanged?.();
    return after;
  }

  /** Counts by state at the last sweep (the gauge). */
  get counts(): Readonly<CertificationCounts> {
    return this.#counts;
  }

  /**
   * Follows the ledger, then reads every entry: logs each entry that became due or lapsed
   * (once per change), counts the states, and tells `onLapsedChanged` when an entry lapsed
   * or came back. One sweep at a time (a call during one waits for it).
   */
  sweep(): Promise<CertificationCounts> {
    this.#sweeping ??= this.#sweep().finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  async #sweep(): Promise<CertificationCounts> {
    await this.#follow();
    const now = sec(this.#cfg.now().getTime());
    const counts: CertificationCounts = { current: 0, due: 0, lapsed: 0, exempt: 0 };
    const states = new Map<string, CertificationState>();
    let lapsedChanged = false;
    let pageToken: string | undefined;
    do {
      const page = await this.#cfg.entries.listEntries({ pageSize: 1000, ...(pageToken !== undefined ? { pageToken } : {}) });
      for (const e of page.items) {
        const s = this.status(e, now);
        counts[s.state]++;
        states.set(e.entryId, s.state);
        const prev = this.#lastStates.get(e.entryId);
        if (prev !== s.state) {
          if ((prev === 'lapsed') !== (s.state === 'lapsed') && (prev !== undefined || s.state === 'lapsed')) lapsedChanged = true;
          const fields = { entryId: e.entryId, spiffeId: e.spiffeId, owner: e.owner, dueAt: iso(s.dueAt), lapsesAt: iso(s.lapsesAt) };
          if (s.state === 'due') this.#cfg.logger.warn(fields, `entry certification due: its owner must certify it (mayfly-server entry certify) before ${fields.lapsesAt} or it stops being served`);
          else if (s.state === 'lapsed') this.#cfg.logger.warn(fields, 'entry certification lapsed: the entry is no longer served until its owner certifies it');
        }
      }
      pageToken = page.nextPageToken === '' ? undefined : page.nextPageToken;
    } while (pageToken !== undefined);
    for (const [id, st] of this.#lastStates) if (st === 'lapsed' && !states.has(id)) lapsedChanged = true;
    this.#lastStates = states;
    this.#counts = counts;
    if (lapsedChanged) this.#cfg.onLapsedChanged?.();
    return counts;
  }
}
