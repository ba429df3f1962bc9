/**
 * @module agent/agent-svid-renewal
 *
 * When the agent renews its own X509-SVID (Agent.RenewAgent with a fresh key): at
 * half-life ± 10 % (`renewalTime`, clock.ts), at once when the server names an authority in
 * its chain as tainted, and after a failed call on a backoff; and when it attests again
 * instead, with evidence that can be presented again (k8s_psat), after the SVID expired or
 * the server refused it (UNAUTHENTICATED: evicted). The attestation itself and the checks
 * every agent SVID passes are in attestation.ts (`AgentIdentity`, which owns this timer).
 *
 * Threats:
 * - the agent locking itself out: an agent SVID signed by a tainted authority is renewed
 *   at once, before any workload SVID is re-issued and before the operator can revoke that
 *   authority;
 * - silently running without an identity: an agent SVID that expired unrenewed is reported
 *   as a fatal state (`onExpired`), saying what to do, when the evidence cannot attest again
 *   (a join token);
 * - hammering the server (and through it the Kubernetes API server): failed renewals, and
 *   re-attestations after the server's refusals, are spaced by jittered backoffs;
 * - adopting a superseded SVID: a renewal that started before an attestation is discarded.
 */
import type { KeyObject } from 'node:crypto';
import { MayflyError } from '../spiffe/errors.js';
import { Backoff, renewalTime, type Scheduler } from './clock.js';
import { SILENT_AGENT_LOGGER, type AgentLogger } from './logger.js';
import { GrpcCode, ServerCallError } from './server-client.js';
import { isChainTainted, type TaintedAuthorities } from './taint.js';
import { isChainRevoked, type RevokedSerials } from './revocation.js';

/** The agent's X509-SVID and key. */
export interface AgentSvid {
  readonly spiffeId: string;
  readonly certChain: readonly Buffer[];
  readonly privateKey: KeyObject;
  readonly serialHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export function expiredMessage(notAfter: Date): string {
  return `agent SVID expired at ${notAfter.toISOString()}; re-attest with a new join token (start the agent with --join-token)`;
}

/** What an operator does for an agent the server no longer knows (evicted). */
export function evictedMessage(dataDir: string): string {
  return (
    'the server no longer accepts this agent (it was evicted, or its record is gone) and its join token is used: ' +
    'create a new join token ("mayfly-server token generate -spiffeID <node alias>") and restart the agent with ' +
    `-joinToken <token>; it attests with it and replaces the SVID stored in ${dataDir}`
  );
}

/** What an operator does for a banned agent. */
export function bannedMessage(agentId: string): string {
  return (
    `the server banned ${agentId}: its workloads' SVIDs are no longer served. To bring this node back, evict it ` +
    `("mayfly-server agent evict -spiffeID ${agentId}"), create a join token ("mayfly-server token generate") and ` +
    'restart the agent with -joinToken <token>'
  );
}

/** What the renewal drives: the agent's identity (`AgentIdentity`, attestation.ts). */
export interface RenewableIdentity {
  /** The agent SVID; throws before the first one. */
  svid(): AgentSvid;
  /** The agent SVID, if any yet. */
  current(): AgentSvid | undefined;
  /** True when the evidence can attest again (not a join token). */
  canReattest(): boolean;
  /** Bumped by every attestation. */
  epoch(): number;
  /** Attests again; the new SVID is current (and stored) once this resolves. */
  attest(): Promise<AgentSvid>;
  /**
   * Starts one Agent.RenewAgent call for `current` with a fresh key (a client is made at
   * once and closed when the call ends). When the answer arrives and `wanted()` is still
   * true, it is checked, stored and made current, and returned; else undefined.
   */
  renew(current: AgentSvid, wanted: () => boolean): Promise<AgentSvid | undefined>;
}

export interface AgentSvidRenewalConfig {
  identity: RenewableIdentity;
  scheduler: Scheduler;
  logger?: AgentLogger;
  /** Uniform [0, 1): renewal jitter and backoff (tests pin it). */
  random?: () => number;
}

export interface AgentSvidRenewalHooks {
  /** Each new agent SVID, renewed or from a new attestation. */
  onRenewed: (svid: AgentSvid) => void;
  /** The agent SVID expired and cannot be renewed nor attested again: fatal. */
  onExpired: (err: MayflyError) => void;
}

/** The renewal timer of the agent SVID, and re-attestation when renewal cannot work. */
export class AgentSvidRenewal {
  readonly #id: RenewableIdentity;
  readonly #sched: Scheduler;
  readonly #log: AgentLogger;
  readonly #random: () => number;
  readonly #backoff: Backoff;
  #cancelTimer: (() => void) | undefined;
  #stopped = false;
  #onRenewed: (svid: AgentSvid) => void = () => {};
  #onExpired: (err: MayflyError) => void = () => {};
  #reattesting = false;
  #reattestScheduled = false;
  /** Spaces re-attestations the server's refusals trigger; reset once the server accepts the agent. */
  readonly #refusalBackoff: Backoff;
  #refusedSinceAccepted = false;
  /** The renewal in flight: concurrent requests (timer, taint) share one RenewAgent call. */
  #renewal: Promise<void> | undefined;
  /** Renewals and re-attestations in flight (`idle`, `settled`). */
  #busy = 0;
  readonly #idleWaiters: (() => void)[] = [];

  constructor(cfg: AgentSvidRenewalConfig) {
    this.#id = cfg.identity;
    this.#sched = cfg.scheduler;
    this.#log = cfg.logger ?? SILENT_AGENT_LOGGER;
    this.#random = cfg.random ?? Math.random;
    this.#backoff = new Backoff({ random: this.#random });
    this.#refusalBackoff = new Backoff({ random: this.#random });
  }

  /** Schedules renewals at half-life; `onRenewed` gets each new SVID, `onExpired` the fatal error. */
  start(hooks: AgentSvidRenewalHooks): void {
    this.#onRenewed = hooks.onRenewed;
    this.#onExpired = hooks.onExpired;
    this.#stopped = false;
    const s = this.#id.svid();
    this.#arm(renewalTime(s.notBefore, s.notAfter, this.#random));
  }

  /** True when no renewal or re-attestation is in flight. */
  get idle(): boolean {
    return this.#busy === 0;
  }

  /** Resolves once no renewal or re-attestation is in flight (tests: `ManualScheduler.settle`). */
  settled(): Promise<void> {
    if (this.#busy === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Counts `work` as in flight until it settles; returns a promise that settles as it does. */
  #track(work: Promise<void>): Promise<void> {
    this.#busy++;
    return work.finally(() => {
      if (--this.#busy === 0) for (const w of this.#idleWaiters.splice(0)) w();
    });
  }

  #arm(at: Date): void {
    this.#cancelTimer?.();
    this.#reattestScheduled = false;
    if (this.#stopped) return;
    const notAfter = this.#id.svid().notAfter;
    const when = at.getTime() < notAfter.getTime() ? at : notAfter;
    this.#cancelTimer = this.#sched.at(when, () => {
      this.#cancelTimer = undefined;
      void this.renewNow();
    });
  }

  /** Renews the agent SVID now (also called by the timer); joins a renewal already in flight. */
  renewNow(): Promise<void> {
    this.#renewal ??= this.#track(
      this.#renew().finally(() => {
        this.#renewal = undefined;
      }),
    );
    return this.#renewal;
  }

  /**
   * Renews at once when the agent SVID's chain involves a tainted authority, so that the
   * agent moves to the active authority before the tainted one is revoked (else it could no
   * longer authenticate to the server: a lockout). Returns the renewal, or undefined when
   * the agent SVID is not affected.
   */
  renewIfTainted(tainted: TaintedAuthorities): Promise<void> | undefined {
    const s = this.#id.current();
    if (s === undefined || this.#stopped || !isChainTainted(s.certChain, tainted)) return undefined;
    if (this.#renewal === undefined) this.#log.warn({ spiffeId: s.spiffeId, serial: s.serialHex }, 'agent SVID is signed by a tainted authority; renewing it now');
    return this.renewNow();
  }

  /** Renews the agent SVID now when a CRL from the server lists it (issue 10); undefined when not revoked. */
  renewIfRevoked(revoked: RevokedSerials): Promise<void> | undefined {
    const s = this.#id.current();
    if (s === undefined || this.#stopped || !isChainRevoked(s.certChain, revoked)) return undefined;
    if (this.#renewal === undefined) this.#log.warn({ spiffeId: s.spiffeId, serial: s.serialHex }, 'agent SVID revoked by the server; renewing it now with a new key');
    return this.renewNow();
  }

  async #renew(): Promise<void> {
    if (this.#stopped || this.#reattesting || this.#reattestScheduled) return;
    const current = this.#id.svid();
    const now = this.#sched.now();
    if (now.getTime() >= current.notAfter.getTime()) {
      if (this.#id.canReattest()) {
        this.#log.warn({ spiffeId: current.spiffeId }, `agent SVID expired at ${current.notAfter.toISOString()} before it could be renewed; attesting again`);
        await this.#reattestNow();
        return;
      }
      const msg = expiredMessage(current.notAfter);
      this.#log.error({ spiffeId: current.spiffeId }, msg);
      this.#stopped = true;
      this.#onExpired(new MayflyError('ERR_AGENT_SVID_EXPIRED', msg));
      return;
    }
    const epoch = this.#id.epoch();
    // An attestation finished meanwhile: its SVID is the current one on the server.
    const call = this.#id.renew(current, () => epoch === this.#id.epoch() && !this.#reattesting);
    let svid: AgentSvid | undefined;
    try {
      svid = await call;
    } catch (err) {
      if (epoch !== this.#id.epoch() || this.#reattesting || this.#stopped) return;
      if (err instanceof ServerCallError && err.grpcCode === GrpcCode.UNAUTHENTICATED && this.refused(`renewal refused: ${err.message}`)) return;
      const delay = this.#backoff.next();
      this.#log.warn({ err, retryInMs: delay, notAfter: current.notAfter.toISOString() }, 'agent SVID renewal failed; retrying');
      this.#arm(new Date(this.#sched.now().getTime() + delay));
      return;
    }
    if (svid === undefined) return;
    this.#backoff.reset();
    if (this.#stopped) return;
    this.#onRenewed(svid);
    this.#arm(renewalTime(svid.notBefore, svid.notAfter, this.#random));
  }

  /**
   * The server no longer accepts the agent SVID (UNAUTHENTICATED: evicted, or its record
   * is gone). Attests again when the evidence allows it, at once the first time and then
   * spaced by a backoff until `accepted()`. Returns false (nothing done) for a join token.
   */
  refused(reason: string): boolean {
    if (!this.#id.canReattest() || this.#stopped) return false;
    if (this.#reattesting || this.#reattestScheduled) return true;
    const delay = this.#refusedSinceAccepted ? this.#refusalBackoff.next() : 0;
    this.#refusedSinceAccepted = true;
    this.#log.warn({ reason, reattestInMs: delay }, 'the server refused the agent SVID; attesting again');
    if (delay === 0) void this.#track(this.#reattestNow());
    else this.#scheduleReattest(delay);
    return true;
  }

  /** The server accepted the agent (an entry update arrived): refusals start over. */
  accepted(): void {
    this.#refusedSinceAccepted = false;
    this.#refusalBackoff.reset();
  }

  #scheduleReattest(delayMs: number): void {
    this.#cancelTimer?.();
    if (this.#stopped) return;
    this.#reattestScheduled = true;
    this.#cancelTimer = this.#sched.at(new Date(this.#sched.now().getTime() + delayMs), () => {
      this.#cancelTimer = undefined;
      this.#reattestScheduled = false;
      void this.#track(this.#reattestNow());
    });
  }

  /** Attests again; on failure retries with backoff (the SVID may still serve meanwhile). */
  async #reattestNow(): Promise<void> {
    if (this.#stopped || this.#reattesting) return;
    this.#reattesting = true;
    this.#reattestScheduled = false;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    let retryIn: number | undefined;
    try {
      const svid = await this.#id.attest();
      this.#backoff.reset();
      if (!this.#stopped) {
        this.#onRenewed(svid);
        this.#reattesting = false;
        this.#arm(renewalTime(svid.notBefore, svid.notAfter, this.#random));
      }
    } catch (err) {
      if (this.#id.canReattest()) {
        retryIn = this.#backoff.next();
        this.#log.error({ err, retryInMs: retryIn }, `attesting again failed: ${(err as Error).message}; retrying`);
      } else {
        // A join token the server refused: retrying cannot help; the caller explains what to do.
        this.#log.error({ err }, `attesting again failed: ${(err as Error).message}`);
      }
    } finally {
      this.#reattesting = false;
    }
    if (retryIn !== undefined) this.#scheduleReattest(retryIn);
  }

  /** Cancels the timer; nothing is renewed or attested from now on. */
  stop(): void {
    this.#stopped = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }
}
