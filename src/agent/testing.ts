/**
 * @module agent/testing
 *
 * Hand-written test doubles for the agent: `ManualScheduler` (time that moves only when a
 * test says so, and `settle()` to wait for the work its timers started) and `FakeServer`
 * (an in-memory Mayfly server API with a real test CA, that hands out `ServerClient`s).
 * Not for production use.
 */
import { parseCsr } from '../spiffe/x509/csr.js';
import type { RegistrationEntry } from '../registration/entry.js';
import { Bundle } from '../spiffe/bundle/bundle.js';
import { SpiffeId, TrustDomain } from '../spiffe/id.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { JwtSvidSigner } from '../spiffe/jwt/signer.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { makeTestCa, type TestCa } from '../spiffe/x509/testing.js';
import type { Scheduler } from './clock.js';
import {
  GrpcCode,
  ServerCallError,
  type AttestResult,
  type AuthorizedUpdate,
  type IssuedJwtSvidWire,
  type IssuedX509Svid,
  type NewX509SvidResult,
  type ServerClient,
  type ServerClientCredentials,
} from './server-client.js';

/**
 * Background work a test can wait for: `MayflyAgent`, `AgentIdentity`, `SvidCache` (each
 * says whether work is in flight, and resolves `settled()` when it has ended).
 */
export interface Settleable {
  readonly idle: boolean;
  settled(): Promise<void>;
}

/** Rounds `settle()` goes through at most before it decides the work never ends. */
const MAX_SETTLE_ROUNDS = 100;

/** A scheduler whose clock only moves on `advance`/`set`; due timers run in time order. */
export class ManualScheduler implements Scheduler {
  #nowMs: number;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();
  readonly #watched = new Set<Settleable>();

  constructor(start: Date = new Date('2030-01-01T00:00:00Z')) {
    this.#nowMs = start.getTime();
  }

  now(): Date {
    return new Date(this.#nowMs);
  }

  at(at: Date, fn: () => void): () => void {
    const id = ++this.#seq;
    this.#timers.set(id, { at: at.getTime(), fn });
    return () => {
      this.#timers.delete(id);
    };
  }

  /** The earliest pending timer, if any. */
  get nextTimer(): Date | undefined {
    let min = Infinity;
    for (const t of this.#timers.values()) min = Math.min(min, t.at);
    return min === Infinity ? undefined : new Date(min);
  }

  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Moves the clock to `to`, running every timer due on the way (each at its own time). */
  set(to: Date): void {
    const target = to.getTime();
    this.#runDue(target);
    this.#nowMs = Math.max(this.#nowMs, target);
  }

  /** Runs every timer due by `target`, earliest first, each at its own time. */
  #runDue(target: number): void {
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.#timers) if (e[1].at <= target && (next === undefined || e[1].at < next[1].at)) next = e;
      if (next === undefined) return;
      this.#timers.delete(next[0]);
      this.#nowMs = Math.max(this.#nowMs, next[1].at);
      next[1].fn();
    }
  }

  /**
   * One `settle()` round's timers: those due at the current time when the round starts,
   * earliest first (one they cancel does not run); ones they arm wait for the next round,
   * so work that keeps re-arming at `now` meets the round limit instead of looping here.
   */
  #runDueNow(): boolean {
    const due = [...this.#timers].filter(([, t]) => t.at <= this.#nowMs).sort((a, b) => a[1].at - b[1].at || a[0] - b[0]);
    for (const [id, t] of due) {
      if (!this.#timers.delete(id)) continue;
      t.fn();
    }
    return due.length > 0;
  }

  advance(ms: number): void {
    this.set(new Date(this.#nowMs + ms));
  }

  /** Adds components whose work `settle()` waits for. */
  watch(...work: Settleable[]): this {
    for (const w of work) this.#watched.add(w);
    return this;
  }

  /**
   * Waits until what is due now has finished, without moving the clock: each round lets
   * queued callbacks run (one `setImmediate` turn, so every promise chain that waits on
   * nothing else completes), runs timers that came due at the current time, and awaits
   * `settled()` of every watched component that is not idle. Done after a round that found
   * nothing to run and every watched component idle. No wall-clock waits: a round waits
   * only for work in flight, so the outcome does not depend on machine speed. Throws after
   * 100 rounds that still found work (something that keeps re-arming at `now`).
   */
  async settle(): Promise<void> {
    for (let round = 0; round < MAX_SETTLE_ROUNDS; round++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      const ran = this.#runDueNow();
      const busy = [...this.#watched].filter((w) => !w.idle);
      if (!ran && busy.length === 0) return;
      await Promise.all(busy.map((w) => w.settled()));
    }
    throw new Error(`ManualScheduler.settle: work still in flight after ${MAX_SETTLE_ROUNDS} rounds`);
  }

  /** `advance(ms)`, then `settle()`. */
  async advanceAndSettle(ms: number): Promise<void> {
    this.advance(ms);
    await this.settle();
  }

  /** `set(to)`, then `settle()`. */
  async setAndSettle(to: Date): Promise<void> {
    this.set(to);
    await this.settle();
  }
}

export interface FakeServerConfig {
  trustDomain?: string;
  scheduler: Scheduler;
  /** X509-SVID lifetime (default 3600 s). */
  x509TtlSeconds?: number;
  jwtTtlSeconds?: number;
  agentTtlSeconds?: number;
  /** Join tokens accepted once each. */
  joinTokens?: string[];
  /**
   * Judges other attestation evidence (e.g. k8s_psat): the agent ID path (`/spire/agent/…`)
   * to issue, or undefined to refuse. Such agents may attest again.
   */
  nodeAttestation?: (type: string, payload: Buffer) => string | undefined;
}

/**
 * An in-memory server: a real CA signs what the CSRs ask (the SPIFFE ID always from the
 * entry), entries are pushed to every subscribed client on `setEntries`, and `available =
 * false` makes every call fail with UNAVAILABLE and ends open streams.
 */
export class FakeServer {
  readonly trustDomain: TrustDomain;
  ca: TestCa;
  readonly #sched: Scheduler;
  #jwtKey = generateKeyPair('ec-p256');
  #jwtKid = 'jwt-1';
  #signer: JwtSvidSigner;
  /** CAs replaced by `rotateCa()`: still in the bundle, no longer signing. */
  readonly previousCas: TestCa[] = [];
  /** JWT keys replaced by `rotateJwtKey()`: still in the bundle. */
  readonly #previousJwtKeys: [string, ReturnType<typeof generateKeyPair>][] = [];
  /** Authority IDs pushed as tainted (X.509: CA SKI hex; JWT: kid). */
  tainted: { x509: string[]; jwt: string[] } = { x509: [], jwt: [] };
  x509TtlSeconds: number;
  jwtTtlSeconds: number;
  agentTtlSeconds: number;
  available = true;
  entries: RegistrationEntry[] = [];
  federatedBundles: Bundle[] = [];
  readonly joinTokens: Set<string>;
  /** Sizes of the BatchNewX509SVID calls received. */
  readonly batches: number[] = [];
  readonly jwtMints: { entryId: string; audience: string[] }[] = [];
  readonly renewals: number[] = [];
  /** Attestation types of every accepted AttestAgent call, in order. */
  readonly attestations: string[] = [];
  /** Agent IDs the server no longer accepts (evicted): their renewals and streams are UNAUTHENTICATED until they attest again. */
  readonly evicted = new Set<string>();
  readonly #nodeAttestation: FakeServerConfig['nodeAttestation'];
  /** Entry IDs the server refuses to sign for (per-item PERMISSION_DENIED). */
  readonly refuse = new Set<string>();
  /** The credentials of every client created. */
  readonly clientCredentials: ServerClientCredentials[] = [];
  #sequence = 0;
  readonly #streams = new Set<{ onUpdate: (u: AuthorizedUpdate) => void; onError: (e: ServerCallError) => void }>();

  constructor(cfg: FakeServerConfig) {
    this.trustDomain = TrustDomain.parse(cfg.trustDomain ?? 'example.org');
    this.#sched = cfg.scheduler;
    this.ca = makeTestCa({ trustDomain: this.trustDomain.name, now: new Date(cfg.scheduler.now().getTime() - 60_000), ttlSeconds: 10 * 365 * 86_400 });
    this.#signer = new JwtSvidSigner({ privateKey: this.#jwtKey.privateKey, kid: 'jwt-1', now: () => this.#sched.now() });
    this.x509TtlSeconds = cfg.x509TtlSeconds ?? 3600;
    this.jwtTtlSeconds = cfg.jwtTtlSeconds ?? 300;
    this.agentTtlSeconds = cfg.agentTtlSeconds ?? 3600;
    this.joinTokens = new Set(cfg.joinTokens ?? []);
    this.#nodeAttestation = cfg.nodeAttestation;
  }

  /** Evicts an agent: open streams end UNAUTHENTICATED and its calls are refused until it attests again. */
  evict(agentId: string): void {
    this.evicted.add(agentId);
    const streams = [...this.#streams];
    this.#streams.clear();
    for (const s of streams) s.onError(new ServerCallError(GrpcCode.UNAUTHENTICATED, `agent ${agentId} was evicted; attest again`));
  }

  bundle(): Bundle {
    return new Bundle({
      trustDomain: this.trustDomain,
      x509Authorities: [this.ca.certificate, ...this.previousCas.map((c) => c.certificate)],
      jwtAuthorities: [[this.#jwtKid, this.#jwtKey.publicKey], ...this.#previousJwtKeys.map(([kid, k]): [string, typeof k.publicKey] => [kid, k.publicKey])],
      sequence: 1,
    });
  }

  /** The X.509 authority ID (SKI hex) of `ca` (default: the signing one). */
  authorityId(ca: TestCa = this.ca): string {
    return (parseCertificate(ca.certificate).subjectKeyId as Buffer).toString('hex');
  }

  /** The kid JWT-SVIDs are signed with now. */
  get jwtKid(): string {
    return this.#jwtKid;
  }

  /** A new signing CA; the old one stays in the bundle (as after prepare + activate). Pushes. */
  rotateCa(): TestCa {
    this.previousCas.push(this.ca);
    this.ca = makeTestCa({ trustDomain: this.trustDomain.name, now: new Date(this.#sched.now().getTime() - 60_000), ttlSeconds: 10 * 365 * 86_400 });
    this.push();
    return this.ca;
  }

  /** A new JWT signing key `kid`; the old one stays in the bundle. Pushes. */
  rotateJwtKey(kid: string): void {
    this.#previousJwtKeys.push([this.#jwtKid, this.#jwtKey]);
    this.#jwtKey = generateKeyPair('ec-p256');
    this.#jwtKid = kid;
    this.#signer = new JwtSvidSigner({ privateKey: this.#jwtKey.privateKey, kid, now: () => this.#sched.now() });
    this.push();
  }

  /** Pushes `ids` as the tainted authorities (as the real server does after a taint). */
  taint(ids: { x509?: string[]; jwt?: string[] }): void {
    this.tainted = { x509: ids.x509 ?? this.tainted.x509, jwt: ids.jwt ?? this.tainted.jwt };
    this.push();
  }

  /** Replaces the CA (as a revocation would): old SVIDs stop verifying against the new bundle. */
  replaceCa(): void {
    this.ca = makeTestCa({ trustDomain: this.trustDomain.name, now: new Date(this.#sched.now().getTime() - 60_000), ttlSeconds: 10 * 365 * 86_400 });
    this.push();
  }

  setEntries(entries: RegistrationEntry[]): void {
    this.entries = entries;
    this.push();
  }

  push(): void {
    if (!this.available) return;
    const u = this.#update();
    for (const s of [...this.#streams]) s.onUpdate(u);
  }

  setAvailable(up: boolean): void {
    this.available = up;
    if (!up) {
      const streams = [...this.#streams];
      this.#streams.clear();
      for (const s of streams) s.onError(new ServerCallError(GrpcCode.UNAVAILABLE, 'server stopped'));
    }
  }

  get streamCount(): number {
    return this.#streams.size;
  }

  #update(): AuthorizedUpdate {
    return {
      entries: [...this.entries], bundle: this.bundle(), federatedBundles: [...this.federatedBundles], sequence: ++this.#sequence,
      taintedX509Authorities: [...this.tainted.x509], taintedJwtAuthorities: [...this.tainted.jwt],
    };
  }

  #check(): void {
    if (!this.available) throw new ServerCallError(GrpcCode.UNAVAILABLE, 'connection refused');
  }

  #mint(spiffeId: string, csr: Buffer, ttl: number, dnsNames: readonly string[] = []): IssuedX509Svid {
    const { publicKey } = parseCsr(csr);
    const leaf = this.ca.minter.mint({ spiffeId: SpiffeId.parse(spiffeId), publicKey, ttlSeconds: ttl, now: this.#sched.now(), dnsNames });
    return { spiffeId, certChain: [leaf], expiresAt: Math.floor(parseCertificate(leaf).notAfter.getTime() / 1000) };
  }

  /** A client, as the agent's factory would create it. */
  client(creds: ServerClientCredentials): ServerClient {
    this.clientCredentials.push(creds);
    let closed = false;
    const mine = new Set<{ onUpdate: (u: AuthorizedUpdate) => void; onError: (e: ServerCallError) => void }>();
    const guard = (): void => {
      if (closed) throw new ServerCallError(GrpcCode.CANCELLED, 'client closed');
      this.#check();
    };
    // As the real server: agent calls need an agent SVID (the client certificate).
    const agentOnly = (): Extract<ServerClientCredentials, { mode: 'agent' }> => {
      guard();
      if (creds.mode !== 'agent') throw new ServerCallError(GrpcCode.UNAUTHENTICATED, 'no agent SVID');
      return creds;
    };
    return {
      attest: async (req): Promise<AttestResult> => {
        guard();
        if (req.type !== 'join_token') {
          const path = this.#nodeAttestation?.(req.type, req.payload);
          if (path === undefined) throw new ServerCallError(GrpcCode.PERMISSION_DENIED, `${req.type} evidence refused`);
          const id = `spiffe://${this.trustDomain.name}${path}`;
          this.evicted.delete(id);
          this.attestations.push(req.type);
          return { svid: this.#mint(id, req.csr, this.agentTtlSeconds), bundle: this.bundle() };
        }
        const token = req.payload.toString('utf8');
        if (!this.joinTokens.delete(token)) throw new ServerCallError(GrpcCode.PERMISSION_DENIED, 'join token is invalid or already used');
        this.attestations.push(req.type);
        return { svid: this.#mint(`spiffe://${this.trustDomain.name}/spire/agent/join_token/${token}`, req.csr, this.agentTtlSeconds), bundle: this.bundle() };
      },
      renewAgent: async (csr): Promise<IssuedX509Svid> => {
        const id = parseCertificate(agentOnly().certChain[0] as Buffer).uriSans[0] as string;
        if (this.evicted.has(id)) throw new ServerCallError(GrpcCode.UNAUTHENTICATED, `agent ${id} is not attested (evicted)`);
        this.renewals.push(this.#sched.now().getTime());
        return this.#mint(id, csr, this.agentTtlSeconds);
      },
      newX509Svids: async (batch): Promise<NewX509SvidResult[]> => {
        agentOnly();
        this.batches.push(batch.length);
        return batch.map((b): NewX509SvidResult => {
          const e = this.entries.find((x) => x.entryId === b.entryId);
          if (e === undefined || this.refuse.has(b.entryId)) return { entryId: b.entryId, ok: false, code: GrpcCode.PERMISSION_DENIED, message: 'not authorised' };
          return { entryId: b.entryId, ok: true, svid: this.#mint(e.spiffeId, b.csr, e.x509SvidTtl || this.x509TtlSeconds, e.dnsNames) };
        });
      },
      newJwtSvid: async (entryId, audience): Promise<IssuedJwtSvidWire> => {
        agentOnly();
        const e = this.entries.find((x) => x.entryId === entryId);
        if (e === undefined) throw new ServerCallError(GrpcCode.PERMISSION_DENIED, 'not authorised');
        this.jwtMints.push({ entryId, audience: [...audience] });
        const token = this.#signer.mint({ spiffeId: SpiffeId.parse(e.spiffeId), audience: [...audience], ttlSeconds: this.jwtTtlSeconds });
        const iat = Math.floor(this.#sched.now().getTime() / 1000);
        return { spiffeId: e.spiffeId, token, issuedAt: iat, expiresAt: iat + this.jwtTtlSeconds };
      },
      subscribe: (onUpdate, onError) => {
        const s = { onUpdate, onError };
        if (closed || !this.available) {
          queueMicrotask(() => onError(new ServerCallError(GrpcCode.UNAVAILABLE, 'connection refused')));
          return () => {};
        }
        if (creds.mode !== 'agent') {
          queueMicrotask(() => onError(new ServerCallError(GrpcCode.UNAUTHENTICATED, 'SubscribeAuthorizedEntries needs an agent SVID')));
          return () => {};
        }
        const caller = this.evicted.size > 0 ? (parseCertificate(creds.certChain[0] as Buffer).uriSans[0] as string) : '';
        if (this.evicted.has(caller)) {
          queueMicrotask(() => onError(new ServerCallError(GrpcCode.UNAUTHENTICATED, `agent ${caller} is not attested (evicted)`)));
          return () => {};
        }
        this.#streams.add(s);
        mine.add(s);
        const first = this.#update();
        queueMicrotask(() => {
          if (this.#streams.has(s)) onUpdate(first);
        });
        return () => {
          this.#streams.delete(s);
          mine.delete(s);
        };
      },
      close: () => {
        closed = true;
        for (const s of mine) this.#streams.delete(s);
        mine.clear();
      },
    };
  }
}

/** An entry with defaults, for tests. */
export function testEntry(p: Partial<RegistrationEntry> & { entryId: string; spiffeId: string }): RegistrationEntry {
  return {
    parentId: 'spiffe://example.org/spire/agent/join_token/t',
    selectors: [{ type: 'unix', value: 'uid:1000' }],
    x509SvidTtl: 0,
    jwtSvidTtl: 0,
    dnsNames: [],
    federatesWith: [],
    admin: false,
    downstream: false,
    hint: '',
    expiresAt: 0,
    owner: '',
    labels: {},
    purpose: '',
    revision: 0,
    createdAt: 1,
    ...p,
  };
}
