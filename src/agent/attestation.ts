/**
 * @module agent/attestation
 *
 * The agent's own identity: node attestation (a join token, or a node attestor such as
 * k8s_psat → Agent.AttestAgent), the agent X509-SVID kept in the data directory across
 * restarts, and its renewal at half-life (Agent.RenewAgent with a fresh key), or at once
 * when the server names an authority in its chain as tainted (before any workload SVID is
 * re-issued, and before the operator can revoke that authority and lock the agent out).
 *
 * Re-attestation: evidence that can be presented again (a k8s_psat projected token, read
 * afresh each time) lets the agent attest again instead of failing when its SVID expired
 * (server away too long) or the server stopped accepting it (evicted: UNAUTHENTICATED).
 * Attempts after a refusal are spaced by a backoff, so an agent the server keeps refusing
 * does not hammer it (nor, through it, the Kubernetes API server).
 *
 * Threats:
 * - attesting to an impostor server: the first attestation verifies the server against
 *   the operator's trust bundle (`trustBundlePath`) or, after a restart, against the bundle
 *   the agent stored; only an explicit `insecureBootstrap: true` skips that check (loudly,
 *   and for that first attestation only: the bundle it returns is stored and used from then on);
 * - accepting a wrong identity: the returned SVID must carry an agent ID of our trust
 *   domain, certify the key generated here, and chain to the trust bundle;
 * - silently running without an identity: an agent SVID that expired (server away for
 *   longer than its lifetime) is reported as a fatal state with what to do when the
 *   evidence was a join token, since a join token cannot attest twice.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { MayflyError } from '../spiffe/errors.js';
import type { TrustDomain } from '../spiffe/id.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { parsePemCertificates } from '../spiffe/x509/pem.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import { Backoff, renewalTime, type Scheduler } from './clock.js';
import { SILENT_AGENT_LOGGER, type AgentLogger } from './logger.js';
import { GrpcCode, ServerCallError, type IssuedX509Svid, type ServerClientCredentials, type ServerClientFactory } from './server-client.js';
import type { AgentStateStore } from './store.js';
import { isChainTainted, type TaintedAuthorities } from './taint.js';

/** The agent's X509-SVID and key. */
export interface AgentSvid {
  readonly spiffeId: string;
  readonly certChain: readonly Buffer[];
  readonly privateKey: KeyObject;
  readonly serialHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Node attestation evidence for one Agent.AttestAgent call. */
export interface NodeAttestationData {
  readonly type: string;
  readonly payload: Buffer;
}

/**
 * Where the agent's node attestation evidence comes from (e.g. `K8sPsatAgentAttestor`).
 * `attestationData()` is called once per attestation, so it can return fresh evidence.
 */
export interface AgentNodeAttestor {
  attestationData(): Promise<NodeAttestationData>;
  /** Whether the same evidence source may attest again (after expiry or eviction). Default true. */
  readonly canReattest?: boolean;
}

/** A join token as a node attestor: single use, so it can never re-attest. */
export function joinTokenNodeAttestor(token: string): AgentNodeAttestor {
  if (typeof token !== 'string' || token === '') throw new TypeError('join token must be a non-empty string');
  return { canReattest: false, attestationData: async () => ({ type: 'join_token', payload: Buffer.from(token, 'utf8') }) };
}

export interface AgentIdentityConfig {
  trustDomain: TrustDomain;
  store: AgentStateStore;
  connect: ServerClientFactory;
  scheduler: Scheduler;
  joinToken?: string;
  /** Evidence source other than a join token (give one or the other, not both). */
  nodeAttestor?: AgentNodeAttestor;
  /** PEM file with the server trust domain's roots, for the first attestation. */
  trustBundlePath?: string;
  /** Trust on first use: do not verify the server for the first attestation. */
  insecureBootstrap?: boolean;
  logger?: AgentLogger;
  random?: () => number;
}

const AGENT_PATH_PREFIX = '/spire/agent/';

export function expiredMessage(notAfter: Date): string {
  return `agent SVID expired at ${notAfter.toISOString()}; re-attest with a new join token (start the agent with --join-token)`;
}

/** Holds, obtains and renews the agent SVID. */
export class AgentIdentity {
  readonly #cfg: AgentIdentityConfig;
  readonly #log: AgentLogger;
  readonly #random: () => number;
  readonly #backoff: Backoff;
  #svid: AgentSvid | undefined;
  #roots: Buffer[] = [];
  #cancelTimer: (() => void) | undefined;
  #stopped = false;
  #onRenewed: (svid: AgentSvid) => void = () => {};
  #onExpired: (err: MayflyError) => void = () => {};
  readonly #attestor: AgentNodeAttestor | undefined;
  /** Bumped by every attestation: a renewal that started before one is discarded. */
  #epoch = 0;
  #reattesting = false;
  #reattestScheduled = false;
  /** Spaces re-attestations the server's refusals trigger; reset once the server accepts the agent. */
  readonly #refusalBackoff: Backoff;
  #refusedSinceAccepted = false;
  /** The renewal in flight: concurrent requests (timer, taint) share one RenewAgent call. */
  #renewal: Promise<void> | undefined;

  constructor(cfg: AgentIdentityConfig) {
    if (cfg.joinToken !== undefined && cfg.nodeAttestor !== undefined) throw new TypeError('give joinToken or nodeAttestor, not both');
    this.#cfg = cfg;
    this.#log = cfg.logger ?? SILENT_AGENT_LOGGER;
    this.#random = cfg.random ?? Math.random;
    this.#backoff = new Backoff({ random: this.#random });
    this.#refusalBackoff = new Backoff({ random: this.#random });
    this.#attestor = cfg.nodeAttestor ?? (cfg.joinToken !== undefined && cfg.joinToken !== '' ? joinTokenNodeAttestor(cfg.joinToken) : undefined);
  }

  /** True when the configured evidence can attest again (not a join token). */
  get canReattest(): boolean {
    return this.#attestor !== undefined && this.#attestor.canReattest !== false;
  }

  get svid(): AgentSvid {
    if (this.#svid === undefined) throw new TypeError('the agent has no SVID yet; call init() first');
    return this.#svid;
  }

  /** The trust domain's roots the agent trusts the server with. */
  get roots(): readonly Buffer[] {
    return this.#roots;
  }

  /** mTLS credentials for the server API. */
  credentials(): ServerClientCredentials {
    const s = this.svid;
    return { mode: 'agent', roots: this.#roots, certChain: s.certChain, privateKey: s.privateKey };
  }

  /** Loads the stored agent SVID, or attests with the join token. */
  async init(): Promise<AgentSvid> {
    const { store } = this.#cfg;
    store.ensureDir();
    const storedRoots = store.loadBundle();
    if (storedRoots !== undefined) this.#roots = storedRoots;
    const loaded = store.loadAgentSvid();
    if (loaded.problem !== undefined) this.#log.warn({ dataDir: store.dataDir }, `ignoring stored agent SVID: ${loaded.problem}`);
    if (loaded.svid !== undefined) {
      const svid = this.#describe(loaded.svid.certChain, loaded.svid.privateKey);
      if (svid.notAfter.getTime() > this.#cfg.scheduler.now().getTime()) {
        if (this.#roots.length === 0) this.#roots = this.#bootstrapRoots() ?? [];
        if (this.#roots.length === 0) {
          throw new MayflyError('ERR_CONFIG_INVALID', `the agent has a stored SVID but no trust bundle (${store.dataDir}/bundle.pem is missing); pass trustBundlePath`);
        }
        this.#svid = svid;
        this.#log.info({ spiffeId: svid.spiffeId, notAfter: svid.notAfter.toISOString() }, 'resuming with the stored agent SVID');
        return svid;
      }
      if (this.canReattest) {
        this.#log.warn({ spiffeId: svid.spiffeId }, `the stored agent SVID expired at ${svid.notAfter.toISOString()}; attesting again`);
        return this.#attest();
      }
      const msg = expiredMessage(svid.notAfter);
      if (this.#attestor === undefined) {
        this.#log.error({ spiffeId: svid.spiffeId }, msg);
        throw new MayflyError('ERR_AGENT_SVID_EXPIRED', msg);
      }
      this.#log.warn({ spiffeId: svid.spiffeId }, `${msg}; trying the join token given`);
    }
    return this.#attest();
  }

  #bootstrapRoots(): Buffer[] | undefined {
    const path = this.#cfg.trustBundlePath;
    if (path === undefined) return undefined;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new MayflyError('ERR_CONFIG_INVALID', `cannot read the trust bundle ${path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      return parsePemCertificates(text);
    } catch (err) {
      throw new MayflyError('ERR_CONFIG_INVALID', `trust bundle ${path} holds no usable PEM certificates: ${(err as Error).message}`, { cause: err });
    }
  }

  async #attest(): Promise<AgentSvid> {
    const attestor = this.#attestor;
    if (attestor === undefined) {
      throw new MayflyError(
        'ERR_CONFIG_INVALID',
        `no agent SVID in ${this.#cfg.store.dataDir} and no way to attest: create a join token on the server ("token generate") and pass it as joinToken, or configure a node attestor (k8s_psat)`,
      );
    }
    let creds: ServerClientCredentials;
    const roots = this.#roots.length > 0 ? this.#roots : this.#bootstrapRoots();
    if (roots !== undefined && roots.length > 0) {
      creds = { mode: 'bootstrap', roots };
    } else if (this.#cfg.insecureBootstrap === true) {
      this.#log.warn(
        { insecureBootstrap: true },
        'INSECURE BOOTSTRAP: the server is NOT being authenticated for this first attestation; anyone able to intercept ' +
          'the connection could impersonate the server. Use trustBundlePath in production.',
      );
      creds = { mode: 'insecure-bootstrap' };
    } else {
      throw new MayflyError('ERR_CONFIG_INVALID', 'cannot authenticate the server for the first attestation: pass trustBundlePath (PEM roots of the trust domain) or, for tests only, insecureBootstrap: true');
    }
    const evidence = await attestor.attestationData();
    const key = generateKeyPair('ec-p256');
    const client = this.#cfg.connect(creds);
    let res;
    try {
      res = await client.attest({ type: evidence.type, payload: evidence.payload, csr: createCsr({ privateKey: key.privateKey }) });
    } finally {
      client.close();
    }
    if (!res.bundle.trustDomain.equals(this.#cfg.trustDomain)) {
      throw new MayflyError('ERR_ATTESTATION_FAILED', `the server returned a bundle for ${res.bundle.trustDomain.name}, not for ${this.#cfg.trustDomain.name}`);
    }
    if (res.bundle.x509Authorities.length === 0) throw new MayflyError('ERR_ATTESTATION_FAILED', 'the server returned a bundle without X.509 authorities');
    const newRoots = [...res.bundle.x509Authorities];
    const svid = this.#check(res.svid, key.privateKey, newRoots);
    this.#roots = newRoots;
    this.#cfg.store.saveBundle(newRoots);
    this.#cfg.store.saveAgentSvid({ certChain: svid.certChain, privateKey: svid.privateKey });
    this.#svid = svid;
    this.#epoch++;
    this.#log.info({ spiffeId: svid.spiffeId, notAfter: svid.notAfter.toISOString(), attestationType: evidence.type }, 'node attested');
    return svid;
  }

  #describe(certChain: readonly Buffer[], privateKey: KeyObject): AgentSvid {
    const leaf = parseCertificate(certChain[0] as Buffer);
    const spiffeId = leaf.uriSans[0] ?? '';
    return { spiffeId, certChain: [...certChain], privateKey, serialHex: leaf.serialHex, notBefore: leaf.notBefore, notAfter: leaf.notAfter };
  }

  /** Checks an agent SVID from the server before using or storing it. */
  #check(issued: IssuedX509Svid, key: KeyObject, roots: readonly Buffer[]): AgentSvid {
    const fail = (why: string, cause?: unknown): never => {
      throw new MayflyError('ERR_ATTESTATION_FAILED', `the server returned an unusable agent SVID: ${why}`, cause === undefined ? undefined : { cause });
    };
    if (issued.certChain.length === 0) fail('empty chain');
    let verified;
    try {
      verified = verifyX509Svid(issued.certChain, { trustDomain: this.#cfg.trustDomain, x509Authorities: roots }, { now: this.#cfg.scheduler.now() });
    } catch (err) {
      return fail((err as Error).message, err);
    }
    if (!verified.spiffeId.path.startsWith(AGENT_PATH_PREFIX)) fail(`${verified.spiffeId} is not an agent ID (${AGENT_PATH_PREFIX}…)`);
    const svid = this.#describe(issued.certChain, key);
    const leafKey = createPublicKey({ key: parseCertificate(issued.certChain[0] as Buffer).spki, format: 'der', type: 'spki' });
    if (!leafKey.equals(createPublicKey(key))) fail('it does not certify the key this agent generated');
    return svid;
  }

  /** Stores a newer trust bundle (CA rotation) so a restart trusts the current roots. */
  updateRoots(roots: readonly Buffer[]): void {
    const same = roots.length === this.#roots.length && roots.every((r, i) => r.equals(this.#roots[i] as Buffer));
    if (same || roots.length === 0) return;
    this.#roots = [...roots];
    this.#cfg.store.saveBundle(this.#roots);
  }

  /** Schedules renewals at half-life; `onRenewed` gets each new SVID, `onExpired` the fatal error. */
  startRenewal(hooks: { onRenewed: (svid: AgentSvid) => void; onExpired: (err: MayflyError) => void }): void {
    this.#onRenewed = hooks.onRenewed;
    this.#onExpired = hooks.onExpired;
    this.#stopped = false;
    const s = this.svid;
    this.#arm(renewalTime(s.notBefore, s.notAfter, this.#random));
  }

  #arm(at: Date): void {
    this.#cancelTimer?.();
    this.#reattestScheduled = false;
    if (this.#stopped) return;
    const notAfter = this.svid.notAfter;
    const when = at.getTime() < notAfter.getTime() ? at : notAfter;
    this.#cancelTimer = this.#cfg.scheduler.at(when, () => {
      this.#cancelTimer = undefined;
      void this.renewNow();
    });
  }

  /** Renews the agent SVID now (also called by the timer); joins a renewal already in flight. */
  renewNow(): Promise<void> {
    this.#renewal ??= this.#renew().finally(() => {
      this.#renewal = undefined;
    });
    return this.#renewal;
  }

  /**
   * Renews at once when the agent SVID's chain involves a tainted authority, so that the
   * agent moves to the active authority before the tainted one is revoked (else it could no
   * longer authenticate to the server: a lockout). Returns the renewal, or undefined when
   * the agent SVID is not affected.
   */
  renewIfTainted(tainted: TaintedAuthorities): Promise<void> | undefined {
    const s = this.#svid;
    if (s === undefined || this.#stopped || !isChainTainted(s.certChain, tainted)) return undefined;
    if (this.#renewal === undefined) this.#log.warn({ spiffeId: s.spiffeId, serial: s.serialHex }, 'agent SVID is signed by a tainted authority; renewing it now');
    return this.renewNow();
  }

  async #renew(): Promise<void> {
    if (this.#stopped || this.#reattesting || this.#reattestScheduled) return;
    const current = this.svid;
    const now = this.#cfg.scheduler.now();
    if (now.getTime() >= current.notAfter.getTime()) {
      if (this.canReattest) {
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
    const key = generateKeyPair('ec-p256');
    const client = this.#cfg.connect(this.credentials());
    const epoch = this.#epoch;
    try {
      const issued = await client.renewAgent(createCsr({ privateKey: key.privateKey }));
      // An attestation finished meanwhile: its SVID is the current one on the server.
      if (epoch !== this.#epoch || this.#reattesting) return;
      const svid = this.#check(issued, key.privateKey, this.#roots);
      if (svid.spiffeId !== current.spiffeId) throw new MayflyError('ERR_ATTESTATION_FAILED', `renewal returned ${svid.spiffeId}, not ${current.spiffeId}`);
      this.#cfg.store.saveAgentSvid({ certChain: svid.certChain, privateKey: svid.privateKey });
      this.#svid = svid;
      this.#backoff.reset();
      this.#log.info({ spiffeId: svid.spiffeId, notAfter: svid.notAfter.toISOString() }, 'agent SVID renewed');
      if (this.#stopped) return;
      this.#onRenewed(svid);
      this.#arm(renewalTime(svid.notBefore, svid.notAfter, this.#random));
    } catch (err) {
      if (epoch !== this.#epoch || this.#reattesting || this.#stopped) return;
      if (err instanceof ServerCallError && err.grpcCode === GrpcCode.UNAUTHENTICATED && this.refused(`renewal refused: ${err.message}`)) return;
      const delay = this.#backoff.next();
      this.#log.warn({ err, retryInMs: delay, notAfter: current.notAfter.toISOString() }, 'agent SVID renewal failed; retrying');
      this.#arm(new Date(this.#cfg.scheduler.now().getTime() + delay));
    } finally {
      client.close();
    }
  }

  /**
   * The server no longer accepts the agent SVID (UNAUTHENTICATED: evicted, or its record
   * is gone). Attests again when the evidence allows it, at once the first time and then
   * spaced by a backoff until `accepted()`. Returns false (nothing done) for a join token.
   */
  refused(reason: string): boolean {
    if (!this.canReattest || this.#stopped) return false;
    if (this.#reattesting || this.#reattestScheduled) return true;
    const delay = this.#refusedSinceAccepted ? this.#refusalBackoff.next() : 0;
    this.#refusedSinceAccepted = true;
    this.#log.warn({ reason, reattestInMs: delay }, 'the server refused the agent SVID; attesting again');
    if (delay === 0) void this.#reattestNow();
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
    this.#cancelTimer = this.#cfg.scheduler.at(new Date(this.#cfg.scheduler.now().getTime() + delayMs), () => {
      this.#cancelTimer = undefined;
      this.#reattestScheduled = false;
      void this.#reattestNow();
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
      const svid = await this.#attest();
      this.#backoff.reset();
      if (!this.#stopped) {
        this.#onRenewed(svid);
        this.#reattesting = false;
        this.#arm(renewalTime(svid.notBefore, svid.notAfter, this.#random));
      }
    } catch (err) {
      retryIn = this.#backoff.next();
      this.#log.error({ err, retryInMs: retryIn }, `attesting again failed: ${(err as Error).message}; retrying`);
    } finally {
      this.#reattesting = false;
    }
    if (retryIn !== undefined) this.#scheduleReattest(retryIn);
  }

  stop(): void {
    this.#stopped = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }
}
