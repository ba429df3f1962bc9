/**
 * @module attestors/node/attestor
 *
 * The seam every node attestor implements (`join_token` now, `k8s_psat` later). The server
 * hands an attestor the evidence an agent sent (`attestation_data.payload`) and gets back
 * the agent's SPIFFE ID and node selectors. Attestors judge evidence; they keep no state of
 * their own (a join token is consumed from the datastore the server passes in).
 */
import type { Selector } from '../../registration/selector.js';
import type { SpiffeId, TrustDomain } from '../../spiffe/id.js';

export interface NodeAttestationContext {
  /** The server's trust domain: agent IDs are minted inside it. */
  readonly trustDomain: TrustDomain;
  readonly now: Date;
  /**
   * Sends the agent `challenge` and resolves with its answer. Present only where the
   * transport carries challenge–response (SPIRE's `AttestAgent` stream); an attestor that
   * needs proof of possession (x509pop) refuses evidence when it is absent.
   */
  readonly challenge?: (challenge: Uint8Array) => Promise<Uint8Array>;
}

export interface NodeAttestationResult {
  /** `spiffe://<td>/spire/agent/<attestor>/<...>` */
  readonly agentId: SpiffeId;
  /** Node selectors, matched against node-alias entries. */
  readonly selectors: readonly Selector[];
  /** Whether the same node may attest again under the same agent ID (false for single-use evidence). */
  readonly canReattest: boolean;
}

export interface NodeAttestor {
  /** The attestation type agents name in `attestation_data.type`. */
  readonly type: string;
  /** Judges `payload`; throws MayflyError `ERR_ATTESTATION_FAILED` or a more specific code when it is not good evidence. */
  attest(payload: Uint8Array, ctx: NodeAttestationContext): Promise<NodeAttestationResult>;
}
