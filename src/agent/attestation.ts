/**
 * @module agent/attestation
 *
 * The agent's own identity: node attestation (a join token, or a node attestor such as
 * k8s_psat → Agent.AttestAgent), the agent X509-SVID kept in the data directory across
 * restarts, and its renewal (Agent.RenewAgent with a fresh key). When to renew or attest
 * again — at half-life, at once when the server names an authority in its chain as tainted,
 * after a refusal — is agent-svid-renewal.ts; this module attests, renews on request and
 * checks every agent SVID the server returns.
 *
 * Re-attestation: evidence that can be presented again (a k8s_psat projected token, read
 * afresh each time) lets the agent attest again instead of failing when its SVID expired
 * (server away too long) or the server stopped accepting it (evicted: UNAUTHENTICATED).
 * Attempts after a refusal are spaced by a backoff (agent-svid-renewal.ts), so an agent the
 * server keeps refusing does not hammer it (nor, through it, the Kubernetes API server).
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
 *   evidence was a join token, since a join token cannot attest twice (at start here, while
 *   running in agent-svid-renewal.ts).
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
import type { RevokedSerials } from './revocation.js';
import { AgentSvidRenewal, bannedMessage, evictedMessage, expiredMessage, type AgentSvid, type AgentSvidRenewalHooks } from './agent-svid-renewal.js';
import type { Scheduler } from './clock.js';
import { SILENT_AGENT_LOGGER, type AgentLogger } from './logger.js';
import { GrpcCode, ServerCallError, type IssuedX509Svid, type ServerClientCredentials, type ServerClientFactory } from './server-client.js';
import type { AgentStateStore } from './store.js';
import type { TaintedAuthorities } from './taint.js';

export { expiredMessage, type AgentSvid } from './agent-svid-renewal.js';

/** Codes for which the server never saw (or never judged) the evidence: a join token stays usable. */
const RETRYABLE: ReadonlySet<number> = new Set([GrpcCode.UNAVAILABLE, GrpcCode.DEADLINE_EXCEEDED, GrpcCode.CANCELLED]);

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
  /**
   * Challenge–response evidence (x509pop): the answer to the server's challenge for the
   * evidence `attestationData()` last returned. Such evidence is presented over SPIRE's
   * Agent.AttestAgent stream, which carries challenges.
   */
  answerChallenge?(challenge: Uint8Array): Promise<Buffer>;
}

/** A join token as a node attestor: single use, so it can never re-attest. */
export function joinTokenNodeAttestor(token: string): AgentNodeAttestor {
  if (typeof token !== 'string' || token === '') throw new TypeError('join token must be a non-empty string');
  return { canReattest: false, attestationData: async () => ({ type: 'join_token', payload: Buffer.from(token, 'utf8') }) };
}

/** What node attestation reports (the agent's metrics implement it; agent/metrics). */
export interface AttestationRecorder {
  /** One Agent.AttestAgent attempt with `attestor`'s evidence (`join_token`, `k8s_psat`), and how it ended. */
  nodeAttestation(attestor: string, outcome: 'success' | 'failure'): void;
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
  recorder?: AttestationRecorder;
}

const AGENT_PATH_PREFIX = '/spire/agent/';

/** Holds, obtains and renews the agent SVID. */
export class AgentIdentity {
  readonly #cfg: AgentIdentityConfig;
  readonly #log: AgentLogger;
  #svid: AgentSvid | undefined;
  #roots: Buffer[] = [];
  readonly #attestor: AgentNodeAttestor | undefined;
  /** Bumped by every attestation: a renewal that started before one is discarded. */
  #epoch = 0;
  /** When to renew or attest again: agent-svid-renewal.ts. */
  readonly #renewal: AgentSvidRenewal;
  /** A single-use attestor (join token) was presented and the server answered. */
  #evidenceSpent = false;
  #refusalExplained = false;
  #banExplained = false;

  constructor(cfg: AgentIdentityConfig) {
    if (cfg.joinToken !== undefined && cfg.nodeAttestor !== undefined) throw new TypeError('give joinToken or nodeAttestor, not both');
    this.#cfg = cfg;
    this.#log = cfg.logger ?? SILENT_AGENT_LOGGER;
    this.#attestor = cfg.nodeAttestor ?? (cfg.joinToken !== undefined && cfg.joinToken !== '' ? joinTokenNodeAttestor(cfg.joinToken) : undefined);
    this.#renewal = new AgentSvidRenewal({
      identity: {
        svid: () => this.svid,
        current: () => this.#svid,
        canReattest: () => this.canReattest,
        epoch: () => this.#epoch,
        attest: () => this.#attest(),
        renew: (current, wanted) => this.#renewOnce(current, wanted),
      },
      scheduler: cfg.scheduler,
      logger: this.#log,
      random: cfg.random,
    });
  }

  /**
   * True when the configured evidence can attest (again): always for re-presentable
   * evidence (k8s_psat); for a single-use join token, until this agent has presented it
   * and the server answered. A token given at start while a stored SVID is resumed stays
   * unspent, so if the server refuses that SVID (the agent was evicted) the agent attests
   * with the new token instead of serving nothing until its data directory is deleted.
   */
  get canReattest(): boolean {
    if (this.#attestor === undefined) return false;
    return this.#attestor.canReattest !== false || !this.#evidenceSpent;
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
    const storedRoots = store.loadTrustRoots();
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
    let attestorName = 'unknown';
    try {
      const svid = await this.#attestWith(attestor, creds, (name) => (attestorName = name));
      this.#cfg.recorder?.nodeAttestation(attestorName, 'success');
      return svid;
    } catch (err) {
      this.#cfg.recorder?.nodeAttestation(attestorName, 'failure');
      throw err;
    }
  }

  async #attestWith(attestor: AgentNodeAttestor, creds: ServerClientCredentials, named: (attestor: string) => void): Promise<AgentSvid> {
    const evidence = await attestor.attestationData();
    named(evidence.type);
    const key = generateKeyPair('ec-p256');
    const client = this.#cfg.connect(creds);
    let res;
    try {
      const csr = createCsr({ privateKey: key.privateKey });
      const answer = attestor.answerChallenge?.bind(attestor);
      res = await client.attest({ type: evidence.type, payload: evidence.payload, csr, ...(answer !== undefined ? { answerChallenge: answer } : {}) });
      this.#evidenceSpent = true;
    } catch (err) {
      // The server answered (refused the token): it is spent. Unreachable: try it later.
      if (!(err instanceof ServerCallError) || !RETRYABLE.has(err.grpcCode)) this.#evidenceSpent = true;
      throw err;
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
    this.#cfg.store.saveTrustRoots(newRoots);
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
    this.#cfg.store.saveTrustRoots(this.#roots);
  }

  /**
   * One Agent.RenewAgent call with a fresh key. The client is made before this returns (a
   * factory that throws throws here). The answer is adopted only while `wanted()`: checked,
   * stored and made current.
   */
  #renewOnce(current: AgentSvid, wanted: () => boolean): Promise<AgentSvid | undefined> {
    const key = generateKeyPair('ec-p256');
    const client = this.#cfg.connect(this.credentials());
    return (async () => {
      try {
        const issued = await client.renewAgent(createCsr({ privateKey: key.privateKey }));
        if (!wanted()) return undefined;
        const svid = this.#check(issued, key.privateKey, this.#roots);
        if (svid.spiffeId !== current.spiffeId) throw new MayflyError('ERR_ATTESTATION_FAILED', `renewal returned ${svid.spiffeId}, not ${current.spiffeId}`);
        this.#cfg.store.saveAgentSvid({ certChain: svid.certChain, privateKey: svid.privateKey });
        this.#svid = svid;
        this.#log.info({ spiffeId: svid.spiffeId, notAfter: svid.notAfter.toISOString() }, 'agent SVID renewed');
        return svid;
      } finally {
        client.close();
      }
    })();
  }

  // ------------------------------------------------------------ renewal (agent-svid-renewal.ts)

  /** Schedules renewals at half-life; `onRenewed` gets each new SVID, `onExpired` the fatal error. */
  startRenewal(hooks: AgentSvidRenewalHooks): void {
    this.#renewal.start(hooks);
  }

  /** Renews the agent SVID now; joins a renewal already in flight. */
  renewNow(): Promise<void> {
    return this.#renewal.renewNow();
  }

  /** Renews at once when the agent SVID's chain involves a tainted authority (agent-svid-renewal.ts); undefined when it does not. */
  renewIfTainted(tainted: TaintedAuthorities): Promise<void> | undefined {
    return this.#renewal.renewIfTainted(tainted);
  }

  /** Renews the agent SVID now when the server's CRLs list it (issue 10). */
  renewIfRevoked(revoked: RevokedSerials): Promise<void> | undefined {
    return this.#renewal.renewIfRevoked(revoked);
  }

  /**
   * The server no longer accepts the agent SVID (evicted): attests again when the evidence
   * allows it (a k8s_psat token, or a join token given at start and not yet used); else logs
   * what the operator must do and returns false.
   */
  refused(reason: string): boolean {
    if (this.#renewal.refused(reason)) return true;
    if (!this.#refusalExplained) {
      this.#refusalExplained = true;
      this.#log.error({ reason, spiffeId: this.#svid?.spiffeId, dataDir: this.#cfg.store.dataDir }, evictedMessage(this.#cfg.store.dataDir));
    }
    return false;
  }

  /**
   * The server banned this agent: nothing it holds may be served. Logged once with what to do.
   */
  banned(reason: string): void {
    if (this.#banExplained) return;
    this.#banExplained = true;
    this.#log.error({ reason, spiffeId: this.#svid?.spiffeId }, bannedMessage(this.#svid?.spiffeId ?? 'this agent'));
  }

  /** The server accepted the agent (an entry update arrived): refusals start over. */
  accepted(): void {
    this.#refusalExplained = false;
    this.#banExplained = false;
    this.#renewal.accepted();
  }

  stop(): void {
    this.#renewal.stop();
  }

  /** True when no renewal or re-attestation of the agent SVID is in flight. */
  get idle(): boolean {
    return this.#renewal.idle;
  }

  /** Resolves once no renewal or re-attestation of the agent SVID is in flight (tests). */
  settled(): Promise<void> {
    return this.#renewal.settled();
  }
}
