/**
 * @module agent/attestation
 *
 * The agent's own identity: node attestation (join token → Agent.AttestAgent), the agent
 * X509-SVID kept in the data directory across restarts, and its renewal at half-life
 * (Agent.RenewAgent with a fresh key).
 *
 * Threats:
 * - attesting to an impostor server: the first attestation verifies the server against
 *   the operator's trust bundle (`trustBundlePath`) or, after a restart, against the bundle
 *   the agent stored; only an explicit `insecureBootstrap: true` skips that check (loudly,
 *   and for that first attestation only: the bundle it returns is stored and used from then on);
 * - accepting a wrong identity: the returned SVID must carry an agent ID of our trust
 *   domain, certify the key generated here, and chain to the trust bundle;
 * - silently running without an identity: an agent SVID that expired (server away for
 *   longer than its lifetime) is reported as a fatal state with what to do, since a join
 *   token cannot attest twice.
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
import type { IssuedX509Svid, ServerClientCredentials, ServerClientFactory } from './server-client.js';
import type { AgentStateStore } from './store.js';

/** The agent's X509-SVID and key. */
export interface AgentSvid {
  readonly spiffeId: string;
  readonly certChain: readonly Buffer[];
  readonly privateKey: KeyObject;
  readonly serialHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface AgentIdentityConfig {
  trustDomain: TrustDomain;
  store: AgentStateStore;
  connect: ServerClientFactory;
  scheduler: Scheduler;
  joinToken?: string;
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

  constructor(cfg: AgentIdentityConfig) {
    this.#cfg = cfg;
    this.#log = cfg.logger ?? SILENT_AGENT_LOGGER;
    this.#random = cfg.random ?? Math.random;
    this.#backoff = new Backoff({ random: this.#random });
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
      const msg = expiredMessage(svid.notAfter);
      if (this.#cfg.joinToken === undefined) {
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
    const token = this.#cfg.joinToken;
    if (token === undefined || token === '') {
      throw new MayflyError('ERR_CONFIG_INVALID', `no agent SVID in ${this.#cfg.store.dataDir} and no join token: create one on the server ("token generate") and pass it as joinToken`);
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
    const key = generateKeyPair('ec-p256');
    const client = this.#cfg.connect(creds);
    let res;
    try {
      res = await client.attest({ type: 'join_token', payload: Buffer.from(token, 'utf8'), csr: createCsr({ privateKey: key.privateKey }) });
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
    this.#log.info({ spiffeId: svid.spiffeId, notAfter: svid.notAfter.toISOString() }, 'node attested');
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
    if (this.#stopped) return;
    const notAfter = this.svid.notAfter;
    const when = at.getTime() < notAfter.getTime() ? at : notAfter;
    this.#cancelTimer = this.#cfg.scheduler.at(when, () => {
      this.#cancelTimer = undefined;
      void this.renewNow();
    });
  }

  /** Renews the agent SVID now (also called by the timer). */
  async renewNow(): Promise<void> {
    if (this.#stopped) return;
    const current = this.svid;
    const now = this.#cfg.scheduler.now();
    if (now.getTime() >= current.notAfter.getTime()) {
      const msg = expiredMessage(current.notAfter);
      this.#log.error({ spiffeId: current.spiffeId }, msg);
      this.#stopped = true;
      this.#onExpired(new MayflyError('ERR_AGENT_SVID_EXPIRED', msg));
      return;
    }
    const key = generateKeyPair('ec-p256');
    const client = this.#cfg.connect(this.credentials());
    try {
      const issued = await client.renewAgent(createCsr({ privateKey: key.privateKey }));
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
      const delay = this.#backoff.next();
      this.#log.warn({ err, retryInMs: delay, notAfter: current.notAfter.toISOString() }, 'agent SVID renewal failed; retrying');
      this.#arm(new Date(this.#cfg.scheduler.now().getTime() + delay));
    } finally {
      client.close();
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }
}
