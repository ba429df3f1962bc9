/**
 * @module attestors/node/k8s_psat/agent
 *
 * The agent side of `k8s_psat`: reads the projected service-account token the DaemonSet
 * mounts (re-read every time: the kubelet rotates it) and builds the attestation data
 * `{ type: 'k8s_psat', payload: {"cluster", "token"} }` for Agent.AttestAgent.
 *
 * The token is checked locally only to give the operator a clear message early (wrong
 * audience, expired, not a JWT); the server's TokenReview is what decides. The token is a
 * bearer credential: it is never logged.
 *
 * Plugging it in: where the agent now sends `{ type: 'join_token', payload }`, it sends
 * `await k8sPsat.attestationData()` instead; since the server marks k8s_psat agents
 * re-attestable, an agent whose SVID expired may simply attest again.
 */
import { readFile } from 'node:fs/promises';
import { MayflyError } from '../../../spiffe/errors.js';
import { DEFAULT_K8S_PSAT_AUDIENCE, DEFAULT_K8S_PSAT_TOKEN_PATH, encodePsatPayload, K8S_PSAT_TYPE } from './payload.js';

export interface K8sPsatAgentConfig {
  /** Cluster name, as configured on the server. */
  cluster: string;
  /** Projected token file. Default /var/run/secrets/tokens/mayfly-agent. */
  tokenPath?: string;
  /** Audience the token must carry (checked locally for a clear early error). Default `mayfly-server`. */
  audience?: string;
  now?: () => Date;
}

export interface NodeAttestationData {
  readonly type: string;
  readonly payload: Buffer;
}

export class K8sPsatAgentAttestor {
  readonly type = K8S_PSAT_TYPE;
  readonly tokenPath: string;
  readonly #cluster: string;
  readonly #audience: string;
  readonly #now: () => Date;

  constructor(cfg: K8sPsatAgentConfig) {
    if (typeof cfg?.cluster !== 'string' || cfg.cluster === '') throw new TypeError('k8s_psat agent: cluster is required');
    this.#cluster = cfg.cluster;
    this.tokenPath = cfg.tokenPath ?? DEFAULT_K8S_PSAT_TOKEN_PATH;
    this.#audience = cfg.audience ?? DEFAULT_K8S_PSAT_AUDIENCE;
    this.#now = cfg.now ?? (() => new Date());
  }

  /** The evidence for one AttestAgent call. Throws ERR_ATTESTATION_FAILED when the token is missing or unusable. */
  async attestationData(): Promise<NodeAttestationData> {
    let token: string;
    try {
      token = (await readFile(this.tokenPath, 'utf8')).trim();
    } catch (err) {
      throw new MayflyError('ERR_ATTESTATION_FAILED', `k8s_psat: cannot read the projected service-account token ${this.tokenPath} (is the projected volume mounted?): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    let claims;
    try {
      // jose loads here, not at start-up: every agent registers this plugin, few use it (issue 18: ~8 MiB of RSS).
      const { decodeJwt } = await import('jose');
      claims = decodeJwt(token);
    } catch (err) {
      throw new MayflyError('ERR_ATTESTATION_FAILED', `k8s_psat: ${this.tokenPath} does not hold a JWT`, { cause: err });
    }
    const aud = typeof claims.aud === 'string' ? [claims.aud] : (claims.aud ?? []);
    if (!aud.includes(this.#audience)) {
      throw new MayflyError('ERR_ATTESTATION_FAILED', `k8s_psat: the token in ${this.tokenPath} is for audience ${aud.join(', ') || '(none)'}, not ${this.#audience}: set the projected volume's audience to ${this.#audience}`);
    }
    if (typeof claims.exp === 'number' && claims.exp * 1000 <= this.#now().getTime()) {
      throw new MayflyError('ERR_ATTESTATION_FAILED', `k8s_psat: the token in ${this.tokenPath} expired at ${new Date(claims.exp * 1000).toISOString()} (is the kubelet rotating it?)`);
    }
    return { type: K8S_PSAT_TYPE, payload: encodePsatPayload({ cluster: this.#cluster, token }) };
  }
}
